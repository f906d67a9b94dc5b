"""Raw primitives several trackers are built on (``Tracker.raw_primitives``): each a
``RawPrimitive`` whose callable runs that kernel call alone over the tracker's arena, for
``hotbench harness`` to time a tracker phase against."""

from __future__ import annotations

from bench.kernel import _libc, procfs
from bench.trackers._base import RawPrimitive


def category_scan(name: str, category: int) -> RawPrimitive:
    """One ``PAGEMAP_SCAN`` of the arena for *category* (reported as itself), in the harness's scanner."""
    def make(tracker, scanner):
        arena = tracker.arena
        return lambda: scanner.scan(arena.addr, arena.end, category_mask=category, return_mask=category)
    return RawPrimitive(name, make)


def mprotect_whole(name: str, prot: int) -> RawPrimitive:
    def make(tracker, scanner):
        arena = tracker.arena
        return lambda: _libc.mprotect(arena.addr, arena.size, prot)
    return RawPrimitive(name, make)


def clear_refs(name: str, value: int) -> RawPrimitive:
    return RawPrimitive(name, lambda tracker, scanner: lambda: procfs.clear_refs(value))


def _zap(tracker, scanner):
    arena = tracker.arena
    return lambda: _libc.madvise(arena.addr, arena.size, _libc.MADV_DONTNEED)


ZAP = RawPrimitive("MADV_DONTNEED whole arena", _zap)
