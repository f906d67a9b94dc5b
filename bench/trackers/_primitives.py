"""Primitives several trackers are built on: raw primitives (``Tracker.raw_primitives``), each a
``RawPrimitive`` whose callable runs that kernel call alone over the tracker's arena, for
``hotbench harness`` to time a tracker phase against; and the cost model of the zap that
shmem-zap, shmem-zap-minor and uffd-minor arm with (``Tracker.cost_model``)."""

from __future__ import annotations

from bench.kernel import libc, procfs
from bench.micro import kit
from bench.trackers._base import BEFORE, FIRST, LATER, CostMatch, RawPrimitive


def category_scan(name: str, category: int) -> RawPrimitive:
    """One ``PAGEMAP_SCAN`` of the arena for *category* (reported as itself), in the harness's scanner."""
    def make(tracker, scanner):
        arena = tracker.arena
        return lambda: scanner.scan(arena.addr, arena.end, category_mask=category, return_mask=category)
    return RawPrimitive(name, make)


def mprotect_whole(name: str, prot: int) -> RawPrimitive:
    def make(tracker, scanner):
        arena = tracker.arena
        return lambda: libc.mprotect(arena.addr, arena.size, prot)
    return RawPrimitive(name, make)


def clear_refs(name: str, value: int) -> RawPrimitive:
    return RawPrimitive(name, lambda tracker, scanner: lambda: procfs.clear_refs(value))


def _zap(tracker, scanner):
    arena = tracker.arena
    return lambda: libc.madvise(arena.addr, arena.size, libc.MADV_DONTNEED)


ZAP = RawPrimitive("MADV_DONTNEED whole arena", _zap)


# ---------------------------------------------------------------- the zap's cost (CostMatch)

ZAP_CASE = "arm/madv_dontneed/{}/4k"  # micro cases of shmem-zap's arm
ZAP_ARMS = (
    # The first zap and the later ones: the first meets every page just populated and activates each
    # folio on the LRU (its young PTE marks it accessed again); pages zapped later are active already.
    CostMatch("arm", "shmem", "arm/madv_dontneed_fresh/100pct/4k", None, None, rows=FIRST,
              why="the first arm zaps the whole just-populated arena, and the zap activates every folio "
                  "(pgactivate: one per page): the fresh-arena case; no state term"),
    CostMatch("arm", "shmem", ZAP_CASE.format("0pct"), ZAP_CASE.format("100pct"), BEFORE, ZAP_CASE.format("1pct"),
              rows=LATER, why="MADV_DONTNEED unmaps every present page (those the previous collect found, read "
              "fault-around included; active on the LRU since the first zap) and walks, then frees, each PTE "
              "table holding one; the other tables are gone"),
)


# ---------------------------------------------------------------- micro cases (hotbench micro)

def clear_refs_arm(size, stack, value, fraction=kit.ARM_FRACTION):
    """micro's arm/clear_refs_<value>: *fraction* of an anon arena written since the previous clear."""
    arena = kit.new_arena(stack, size, "anon")
    procfs.clear_refs(value)
    pages = kit.pages(arena.npages, fraction)

    def once():
        kit.touch(arena, pages)
        return kit.timed(procfs.clear_refs, value)
    return once
