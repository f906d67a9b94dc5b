"""``referenced``: ``clear_refs`` 1, then the arena VMA's ``Referenced:`` from smaps — Brendan
Gregg's wss.pl method, a working-set *size* only.

``arm`` writes 1 to ``/proc/self/clear_refs``: the kernel clears the Accessed bit of every
PTE and ``PG_referenced``/page-young of every page *mapped by the whole process*. It does
not flush the TLB (``clear_refs_write`` flushes for value 4 only), and the CPU sets an
Accessed bit only when it walks the page table, on a TLB miss: an access served by a
translation cached before the clear is invisible. ``collect`` reads the smaps entry of the
arena's VMA (only that entry: the file is streamed and left after it) and reports
``Referenced`` kB / 4 as the working set in pages. Aggregate: no per-page answer. For the
whole run the arena is kept in a VMA of its own (``MADV_DONTFORK``, see ``_vma``): since 6.7
a thread stack next to an anonymous arena merges with it, and its pages would count.

Where it goes wrong (kernel-interfaces.md §7.2): TLB-cached re-accesses, as above — on the
6.18 host up to 3.8 % of an interval's pages through the runner, under QEMU TCG (whose
software TLB lives until the guest flushes) most of them; and anything that harvests
Accessed bits between ``arm`` and ``collect`` without parking them in page-young /
``PG_referenced`` (reclaim and LRU rotation, MGLRU aging walks). DAMON and idle page
tracking park the bit in page-young, which smaps counts. Never an over-estimate in our
measurements. The bound is asserted in ``tests/trackers/test_referenced.py``.
``clear_refs`` 1 also ages every other page of the process (reclaim sees them cold) and
cannot be undone: ``stop`` has nothing to restore but the VMA isolation. A PMD-mapped THP
counts whole (2 MiB).
"""

from __future__ import annotations

from functools import partial

from bench.arena import BASE_PAGE
from bench.kernel import mm_events, probe, procfs
from bench.micro import kit
from bench.trackers import _primitives, _vma
from bench.trackers._base import (AGGREGATE, BEFORE, READS_AND_WRITES, REPORTED, CostMatch, Observation, RawPrimitive,
                                  Tracker)


class ReferencedTracker(Tracker):
    name = "referenced"
    mechanism = "referenced"
    granularity = AGGREGATE
    sees = READS_AND_WRITES
    backings = ("anon", "shmem", "thp")  # hugetlb: clear_refs skips it, smaps counts it as *_Hugetlb only
    summary = "clear_refs 1 (process-wide) then smaps Referenced of the arena VMA (wss.pl): working-set size"
    kernel_events = (mm_events.CLEAR_REFS_PTE_RANGE, mm_events.SMAPS_PTE_RANGE)

    kernel_probe = staticmethod(probe.probe_referenced)
    kconfig = ("PROC_PAGE_MONITOR",)
    raw_primitives = {
        "arm": _primitives.clear_refs("clear_refs 1", procfs.CLEAR_REFS_ALL),
        "collect": RawPrimitive("smaps entry of the arena", lambda t, scanner: lambda: procfs.smaps_vma(t.arena.addr)),
    }
    interferences = {"tlb-flush": None}
    cost_model = (
        CostMatch("arm", "anon", "arm/clear_refs_1/0pct/4k", "arm/clear_refs_1/100pct/4k", BEFORE, why=(
            "clear_refs 1 visits every present PTE and clears the young ones: those the previous collect "
            "counted; no TLB flush, and every PTE table stays")),
        CostMatch("collect", "anon", "scan/smaps/read/0pct/4k", "scan/smaps/read/100pct/4k", REPORTED, why=(
            "smaps visits every present PTE and counts the young/referenced ones: Referenced, reported")),
    )
    style = ("yellow", "p")
    order = 70

    @classmethod
    def micro_cases(cls) -> list:
        return _cases(cls.mechanism)

    def __init__(self, **options):
        super().__init__(**options)
        self._isolated = False

    def start(self, arena) -> None:
        super().start(arena)
        self._isolated = _vma.isolate(arena)  # Referenced is per VMA: no merged neighbour in it

    def arm(self) -> None:
        if self.arena is None:
            raise RuntimeError("referenced tracker used before start() or after stop()")
        procfs.clear_refs(procfs.CLEAR_REFS_ALL)

    def collect(self) -> Observation:
        if self.arena is None:
            raise RuntimeError("referenced tracker used before start() or after stop()")
        vma = procfs.smaps_vma(self.arena.addr)
        if vma is None or "Referenced" not in vma:
            raise OSError(f"no smaps entry with Referenced for the arena at {self.arena.addr:#x}")
        extra = {"referenced_kb": vma["Referenced"] // 1024, "rss_kb": vma.get("Rss", 0) // 1024}
        status = "ok"
        if vma["range"] != (self.arena.addr, self.arena.end):
            extra["vma_range"] = list(vma["range"])
            status = (f"vma-mismatch: the VMA holding the arena spans {vma['range'][0]:#x}-{vma['range'][1]:#x}, "
                      f"not just the arena; Referenced covers all of it")
        return Observation(wss_pages=vma["Referenced"] // BASE_PAGE, status=status, extra=extra)

    def stop(self) -> None:
        _vma.release(self.arena, self._isolated)
        self._isolated = False
        super().stop()


TRACKERS = [ReferencedTracker]


# ---------------------------------------------------------------- micro cases (hotbench micro)

def _scan_smaps(size, stack, fraction):
    arena = kit.new_arena(stack, size, "anon")
    procfs.clear_refs(procfs.CLEAR_REFS_ALL)
    kit.touch(arena, kit.pages(arena.npages, fraction))

    def once():
        return kit.timed(procfs.smaps_bytes)
    return once


def _cases(mechanism: str) -> list[kit.Case]:
    def arm(pct: str, fraction: float, state: str = "") -> kit.Case:
        return kit.Case(f"arm/clear_refs_1/{pct}/4k", "GiB", mechanism, "anon",
                        f"write 1 to /proc/self/clear_refs (whole process; the arena dominates){state}",
                        partial(_primitives.clear_refs_arm, value=procfs.CLEAR_REFS_ALL, fraction=fraction))

    out = [arm("1pct", kit.ARM_FRACTION)]
    out += [arm(pct, fraction, f", {pct[:-3]} % of the arena written since the previous one")
            for pct, fraction in kit.STATE_PERCENTS.items()]
    return out + [kit.Case(f"scan/smaps/read/{pct}/4k", "GiB", mechanism, "anon",
                           "read of /proc/self/smaps (whole process; the arena dominates); clear_refs 1, then P "
                           "touched", partial(_scan_smaps, fraction=fraction)) for pct, fraction in kit.PERCENTS.items()]
