"""The primitives ``hotbench micro`` times: one ``Case`` per benchmark, in a fixed order.

A case's ``setup(size, stack)`` builds everything outside the timed region (arena,
registration, prefault, the pages of the accessed fraction, numba loads) and returns
``once``; ``once()`` puts the memory back in the state the primitive expects (untimed)
and returns the seconds of one run of the primitive alone. Everything ``setup`` takes
is released by closing *stack*.

Names (see ``bench/micro.py`` for units):
  arm/<primitive>/<P>/4k               one arm of the whole arena, P of its pages accessed
                                       since the previous arm: 1pct for every primitive (the
                                       steady state of a tracker whose working set is 1 %);
                                       0pct and 100pct too where the arm's cost depends on the
                                       pages in that state (clear_refs 1 clears young PTEs,
                                       MADV_DONTNEED unmaps present pages), so a fit of a
                                       tracker's cost can be predicted (analysis._micro_match)
  scan/<primitive>/<variant>/<P>/4k    one collect of the whole arena with P = 0pct, 1pct or
                                       100pct of its pages accessed (written, for uffd-wp state)
  fault/<kind>/<4k|thp>                touching every 4 KiB page of an armed arena once;
                                       the round trips through a server thread (uffd-minor,
                                       rwp-sync) unpinned, and as <kind>-same-cpu and
                                       <kind>-other-cpu with toucher and server pinned
                                       (bench.fault_path: the placement decides the cost)

Timed touches (the fault benchmarks) run in numba ``nogil`` loops (``_micro_loops``):
synchronous userfaultfd faults block the toucher until a compiled server thread resolves
them. The untimed touches of arm/scan setups use numpy (see ``_touch``). The 1 % is a fixed
seeded random set of pages.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from bench.arena import BASE_PAGE, Arena, backing_unavailable
from bench.errors import HotbenchError
from bench.kernel import _libc, page_idle, pagemap, procfs, uffd

__all__ = ["Case", "CASES", "PERCENTS", "STATE_PERCENTS"]

PERCENTS = {"0pct": 0.0, "1pct": 0.01, "100pct": 1.0}
ARM_FRACTION = 0.01
# the arm cases whose cost depends on the pages in state also run at these (after 1pct)
STATE_PERCENTS = {"0pct": 0.0, "100pct": 1.0}
_SEED = 1
VMA_SLACK = 1024  # VMAs a worker may map beyond the manager's (numba, pyperf) when too_big() is asked
_UFFD_WP_SCAN = dict(category_mask=pagemap.PAGE_IS_WRITTEN, return_mask=pagemap.PAGE_IS_WRITTEN)
_WP_MATCHING = pagemap.PM_SCAN_WP_MATCHING | pagemap.PM_SCAN_CHECK_WPASYNC


@dataclass(frozen=True)
class Case:
    name: str
    per: str  # "GiB": seconds per GiB of arena; "page": seconds per 4 KiB page touched
    mechanism: str | None  # a mechanism of bench.trackers.probe; None: plain memory, always there
    backing: str
    what: str  # the timed region and the state before it, one line
    setup: Callable[[int, contextlib.ExitStack], Callable[[], float]]
    splits: float = 0.0  # share of the arena's pages opened one by one, each splitting a VMA (mprotect)

    def too_big(self, size: int) -> str | None:
        """Why this case cannot reach its state in an arena of *size* bytes (None: it can).

        Each scattered page the mprotect handler opens is a VMA of its own, two more in all;
        past vm.max_map_count the handler gives up and opens the whole arena (as the tracker
        does, reporting map-count-limit), so the timed call would meet a state it does not
        name: at 16 GiB, 1 % is 41,943 pages, 83,887 VMAs against the default 65,530.
        """
        if not self.splits:
            return None
        needed = 2 * round(size // BASE_PAGE * self.splits) + 1
        limit = int(procfs.read_text("/proc/sys/vm/max_map_count") or 0)
        in_use = len((procfs.read_text("/proc/self/maps") or "").splitlines()) + VMA_SLACK
        if needed + in_use <= limit:
            return None
        return (f"{needed:,} VMAs for its scattered opened pages, {in_use:,} in use (with slack) and "
                f"vm.max_map_count {limit:,}: raise it or use a smaller --size")

    def unavailable(self) -> str | None:
        """None when this primitive exists on the running kernel, else the one-line reason."""
        if self.mechanism is not None:
            from bench.trackers import probe

            result = probe(self.mechanism)
            if not result.available:
                return f"{self.mechanism}: {result.reason}"
        reason = backing_unavailable(self.backing)
        return f"{self.backing} memory: {reason}" if reason else None


# ---------------------------------------------------------------- building blocks

def _arena(stack: contextlib.ExitStack, size: int, backing: str, prefault: bool = True) -> Arena:
    return stack.enter_context(Arena(size, backing, prefault=prefault))


def _touch(arena: Arena, pages: np.ndarray) -> None:
    """Untimed setup touches of arm/scan: one byte written per listed page, from numpy.

    No synchronous fault can happen in those states (async uffd modes, zapped shmem, PROT_NONE
    with the mprotect tracker's compiled handler), so the GIL is harmless here and their
    workers never load numba (~1.5 s per process).
    """
    arena.view[pages * BASE_PAGE] = 1


def _fault_arena(stack: contextlib.ExitStack, size: int, backing: str, prefault: bool = True):
    """(arena, the compiled loops module) for a fault benchmark, the loops loaded before any timing."""
    from bench import _micro_loops

    _micro_loops.warm()
    return _arena(stack, size, backing, prefault), _micro_loops


def _timed_touch(loops, arena: Arena) -> float:
    """Seconds for one nogil pass writing every 4 KiB page of the arena (the timed region of faults)."""
    return _timed(loops.touch_every, arena.view, BASE_PAGE)


def _pages(npages: int, fraction: float) -> np.ndarray:
    """A fixed seeded set of ``fraction`` of the pages (at least one when fraction > 0), sorted."""
    if fraction <= 0:
        return np.zeros(0, np.int64)
    if fraction >= 1:
        return np.arange(npages, dtype=np.int64)
    count = max(1, round(npages * fraction))
    return np.sort(np.random.default_rng(_SEED).choice(npages, count, replace=False)).astype(np.int64)


# Set by 'hotbench micro --cold' for the duration of a benchmark: called right before every timed
# region, untimed (after a case's own preparation, which would otherwise warm the caches again).
before_timed: Callable[[], None] | None = None


def _timed(fn: Callable, *args, **kwargs) -> float:
    if before_timed is not None:
        before_timed()
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def _uffd_wp(stack: contextlib.ExitStack, arena: Arena) -> uffd.Userfaultfd:
    """uffd-wp async on the arena, every page protected."""
    u = stack.enter_context(uffd.Userfaultfd(uffd.UFFD_FEATURE_WP_ASYNC))
    u.register(arena.addr, arena.size, uffd.UFFDIO_REGISTER_MODE_WP)
    u.writeprotect(arena.addr, arena.size, True)
    return u


def _rwp(stack: contextlib.ExitStack, arena: Arena, asynchronous: bool = True) -> uffd.Userfaultfd:
    """7.3 RWP registered over the arena (async: the kernel resolves faults itself); not yet protected."""
    features = uffd.UFFD_FEATURE_RWP | (uffd.UFFD_FEATURE_RWP_ASYNC if asynchronous else 0)
    u = stack.enter_context(uffd.Userfaultfd(features))
    u.register(arena.addr, arena.size, uffd.UFFDIO_REGISTER_MODE_RWP)
    return u


class _IdleBitmap:
    """The page_idle bitmap words of one arena's PFNs, written and read as the idle-page
    tracker does (``page_idle.write_words`` / ``read_words``: one pwrite/preadv per run of
    consecutive words). PFNs come from pagemap (root: CAP_SYS_ADMIN); 4 KiB arenas only.
    """

    def __init__(self, arena: Arena):
        pfns = pagemap.entry_pfns(pagemap.read_entries(arena.addr, arena.npages))
        if not pfns.all():
            raise HotbenchError("pagemap gave no PFN for some arena pages: reading PFNs needs CAP_SYS_ADMIN")
        self.words, self.values = page_idle.bitmap_words(pfns)
        self.runs = page_idle.word_runs(self.words)
        self.fd = os.open(page_idle.PAGE_IDLE_BITMAP, os.O_RDWR | os.O_CLOEXEC)

    def set(self) -> None:
        page_idle.write_words(self.fd, self.words, self.values, self.runs)

    def read(self) -> None:
        page_idle.read_words(self.fd, self.words, self.runs)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# ---------------------------------------------------------------- arm, per GiB

def _arm_writeprotect(size, stack):
    arena = _arena(stack, size, "anon")
    u = _uffd_wp(stack, arena)
    pages = _pages(arena.npages, ARM_FRACTION)

    def once():
        _touch(arena, pages)
        return _timed(u.writeprotect, arena.addr, arena.size, True)
    return once


def _arm_rwprotect(size, stack):
    arena = _arena(stack, size, "anon")
    u = _rwp(stack, arena)
    u.rwprotect(arena.addr, arena.size, True)
    pages = _pages(arena.npages, ARM_FRACTION)

    def once():
        _touch(arena, pages)
        return _timed(u.rwprotect, arena.addr, arena.size, True)
    return once


def _mprotect_tracked(stack: contextlib.ExitStack, size: int) -> Arena:
    """An anon arena with the mprotect tracker's compiled SIGSEGV handler installed (it opens faulting pages)."""
    from bench.trackers.mprotect import MprotectTracker

    arena = _arena(stack, size, "anon")
    tracker = MprotectTracker()
    tracker.start(arena)
    stack.callback(tracker.stop)
    return arena


def _arm_mprotect(size, stack, restore_timed=True):
    """PROT_NONE then restore, with the 1 % opened in between by the mprotect tracker's handler;
    without *restore_timed*, the tracker's arm alone: PROT_NONE over the one RW VMA that the
    previous collect (the untimed restore, which merges the opened pages back) left."""
    arena = _mprotect_tracked(stack, size)
    pages = _pages(arena.npages, ARM_FRACTION)
    rw = _libc.PROT_READ | _libc.PROT_WRITE

    def once():
        protect = _timed(_libc.mprotect, arena.addr, arena.size, _libc.PROT_NONE)
        _touch(arena, pages)  # each fault opens its page (splits the VMA)
        if restore_timed:
            return protect + _timed(_libc.mprotect, arena.addr, arena.size, rw)
        _libc.mprotect(arena.addr, arena.size, rw)
        return protect
    return once


def _arm_dontneed(size, stack, fraction=ARM_FRACTION):
    arena = _arena(stack, size, "shmem")
    _libc.madvise(arena.addr, arena.size, _libc.MADV_DONTNEED)
    pages = _pages(arena.npages, fraction)

    def once():
        _touch(arena, pages)  # refault the fraction (write faults: no fault-around)
        return _timed(_libc.madvise, arena.addr, arena.size, _libc.MADV_DONTNEED)
    return once


def _arm_dontneed_fresh(size, stack):
    """The first zap of a shmem arena: every page just allocated and populated, never zapped.

    Its young PTEs make the zap mark each folio accessed, which moves it to the active LRU list
    (measured: /proc/vmstat pgactivate +261,981 for 1 GiB, 40 against 14 ms/GiB for the zaps
    after it). The other zap cases time that later state; a tracker's first arm meets this one.
    """
    arena = _arena(stack, size, "shmem")

    def once():
        arena.repopulate()  # punch the pages out of the page cache, then allocate and populate anew
        return _timed(_libc.madvise, arena.addr, arena.size, _libc.MADV_DONTNEED)
    return once


def _arm_idle_set(size, stack):
    arena = _arena(stack, size, "anon")
    bitmap = _IdleBitmap(arena)
    stack.callback(bitmap.close)
    bitmap.set()
    pages = _pages(arena.npages, ARM_FRACTION)

    def once():
        _touch(arena, pages)
        return _timed(bitmap.set)
    return once


def _arm_clear_refs(size, stack, value, fraction=ARM_FRACTION):
    arena = _arena(stack, size, "anon")
    procfs.clear_refs(value)
    pages = _pages(arena.npages, fraction)

    def once():
        _touch(arena, pages)
        return _timed(procfs.clear_refs, value)
    return once


# ---------------------------------------------------------------- scan / collect, per GiB

def _scan_pagemap_scan(size, stack, fraction, wp_matching):
    arena = _arena(stack, size, "anon")
    _uffd_wp(stack, arena)
    scanner = stack.enter_context(pagemap.Scanner())
    pages = _pages(arena.npages, fraction)
    _touch(arena, pages)
    flags = _WP_MATCHING if wp_matching else 0

    def once():
        if wp_matching:  # the previous scan protected them again
            _touch(arena, pages)
        return _timed(scanner.scan, arena.addr, arena.end, flags=flags, **_UFFD_WP_SCAN)
    return once


def _scan_present(size, stack, fraction):
    """The shmem-zap collect: zapped shmem, P refaulted by writes (no fault-around), then who is present."""
    arena = _arena(stack, size, "shmem")
    scanner = stack.enter_context(pagemap.Scanner())
    _libc.madvise(arena.addr, arena.size, _libc.MADV_DONTNEED)
    _touch(arena, _pages(arena.npages, fraction))  # the scan changes nothing: state set up once

    def once():
        return _timed(scanner.scan, arena.addr, arena.end, category_mask=pagemap.PAGE_IS_PRESENT,
                      return_mask=pagemap.PAGE_IS_PRESENT)
    return once


def _scan_mprotect_restore(size, stack, fraction):
    """The mprotect tracker's collect: mprotect(RW) of a PROT_NONE arena whose P pages the handler opened."""
    arena = _mprotect_tracked(stack, size)
    pages = _pages(arena.npages, fraction)
    rw = _libc.PROT_READ | _libc.PROT_WRITE

    def once():
        _libc.mprotect(arena.addr, arena.size, _libc.PROT_NONE)
        _touch(arena, pages)  # each fault opens its page: a scattered page splits its VMA in three
        return _timed(_libc.mprotect, arena.addr, arena.size, rw)
    return once


def _scan_accessed(size, stack, fraction):
    arena = _arena(stack, size, "anon")
    u = _rwp(stack, arena)
    scanner = stack.enter_context(pagemap.Scanner())
    u.rwprotect(arena.addr, arena.size, True)
    _touch(arena, _pages(arena.npages, fraction))

    def once():
        return _timed(scanner.scan, arena.addr, arena.end, category_mask=pagemap.PAGE_IS_ACCESSED,
                      return_mask=pagemap.PAGE_IS_ACCESSED)
    return once


def _scan_pagemap_read(size, stack, fraction):
    arena = _arena(stack, size, "anon")
    _uffd_wp(stack, arena)
    fd = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    stack.callback(os.close, fd)
    _touch(arena, _pages(arena.npages, fraction))

    def once():
        return _timed(pagemap.read_entries, arena.addr, arena.npages, "self", fd)
    return once


def _scan_idle_read(size, stack, fraction):
    arena = _arena(stack, size, "anon")
    bitmap = _IdleBitmap(arena)
    stack.callback(bitmap.close)
    pages = _pages(arena.npages, fraction)

    def once():
        bitmap.set()
        _touch(arena, pages)
        return _timed(bitmap.read)
    return once


def _read_all(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _scan_smaps(size, stack, fraction):
    arena = _arena(stack, size, "anon")
    procfs.clear_refs(procfs.CLEAR_REFS_ALL)
    _touch(arena, _pages(arena.npages, fraction))

    def once():
        return _timed(_read_all, "/proc/self/smaps")
    return once


# ---------------------------------------------------------------- faults, per 4 KiB page

def _fault_uffd_wp(size, stack, backing):
    arena, loops = _fault_arena(stack, size, backing)
    u = _uffd_wp(stack, arena)

    def once():
        u.writeprotect(arena.addr, arena.size, True)
        return _timed_touch(loops, arena)
    return once


def _fault_rwp_async(size, stack, backing):
    arena, loops = _fault_arena(stack, size, backing)
    u = _rwp(stack, arena)

    def once():
        u.rwprotect(arena.addr, arena.size, True)
        return _timed_touch(loops, arena)
    return once


def _placed(stack: contextlib.ExitStack, name: str):
    """The fault_path placement *name*, the calling thread (the toucher) pinned to it until *stack* closes."""
    from bench import fault_path

    placement = fault_path.placement_cpus(name)
    stack.callback(fault_path.unpin, fault_path.pin(placement))
    return placement


def _fault_rwp_sync(size, stack, backing, placement="unpinned"):
    arena, loops = _fault_arena(stack, size, backing)
    u = _rwp(stack, arena, asynchronous=False)
    server = loops.RwpServer(u, arena.page_size, _placed(stack, placement).server)
    stack.callback(server.stop)
    stack.callback(u.close)  # unregister first, so no fault can wait with nobody to resolve it

    def once():
        u.rwprotect(arena.addr, arena.size, True)
        return _timed_touch(loops, arena)
    return once


def _fault_uffd_minor(size, stack, backing, placement="unpinned"):
    from bench.kernel import uffd_server

    arena, loops = _fault_arena(stack, size, backing)
    uffd_server.warmup()
    u = stack.enter_context(uffd.Userfaultfd(uffd.UFFD_FEATURE_MINOR_SHMEM))
    u.register(arena.addr, arena.size, uffd.UFFDIO_REGISTER_MODE_MINOR)
    server = uffd_server.MinorFaultServer(u, arena.addr, arena.npages, arena.page_size,
                                          _placed(stack, placement).server)
    stack.callback(server.stop)
    stack.callback(u.close)  # unregister first, so no fault can wait with nobody to resolve it

    def once():
        _libc.madvise(arena.addr, arena.size, _libc.MADV_DONTNEED)
        return _timed_touch(loops, arena)
    return once


def _fault_sigsegv(size, stack, backing):
    from bench.trackers.mprotect import MprotectTracker

    arena, loops = _fault_arena(stack, size, backing)
    tracker = MprotectTracker()
    tracker.start(arena)
    stack.callback(tracker.stop)

    def once():
        tracker.arm()
        elapsed = _timed_touch(loops, arena)
        tracker.collect()
        return elapsed
    return once


def _fault_zap(size, stack, backing, prefault=True):
    """Refault after MADV_DONTNEED: shmem keeps its pages in the page cache, anon frees them."""
    arena, loops = _fault_arena(stack, size, backing, prefault)

    def once():
        _libc.madvise(arena.addr, arena.size, _libc.MADV_DONTNEED)
        return _timed_touch(loops, arena)
    return once


# ---------------------------------------------------------------- the table

def _cases() -> list[Case]:
    wp_state = "uffd-wp async armed over the whole arena, then P of its pages written"
    out = [
        Case("arm/uffdio_writeprotect/1pct/4k", "GiB", "uffd-wp", "anon",
             "UFFDIO_WRITEPROTECT over the whole arena", _arm_writeprotect),
        Case("arm/uffdio_rwprotect/1pct/4k", "GiB", "rwp", "anon",
             "UFFDIO_RWPROTECT over the whole arena (7.3)", _arm_rwprotect),
        Case("arm/mprotect/1pct/4k", "GiB", "mprotect", "anon",
             "mprotect(PROT_NONE) + mprotect(RW) of the whole arena; the 1 % opened in between "
             "by the mprotect tracker's SIGSEGV handler (untimed)", _arm_mprotect, splits=ARM_FRACTION),
        Case("arm/madv_dontneed/1pct/4k", "GiB", "shmem-zap", "shmem",
             "MADV_DONTNEED over a shmem arena whose 1 % was refaulted since the previous zap", _arm_dontneed),
        Case("arm/idle_bitmap_set/1pct/4k", "GiB", "idle-page", "anon",
             "pwrite of the arena's PFN bits to /sys/kernel/mm/page_idle/bitmap", _arm_idle_set),
        Case("arm/clear_refs_1/1pct/4k", "GiB", "referenced", "anon",
             "write 1 to /proc/self/clear_refs (whole process; the arena dominates)",
             partial(_arm_clear_refs, value=procfs.CLEAR_REFS_ALL)),
        Case("arm/clear_refs_4/1pct/4k", "GiB", "soft-dirty", "anon",
             "write 4 to /proc/self/clear_refs (whole process; the arena dominates)",
             partial(_arm_clear_refs, value=procfs.CLEAR_REFS_SOFT_DIRTY)),
        Case("arm/mprotect_none/1pct/4k", "GiB", "mprotect", "anon",
             "mprotect(PROT_NONE) of the whole arena alone (the mprotect tracker's arm): one RW VMA, its "
             "1 % opened by the handler and the arena restored since the previous arm (untimed)",
             partial(_arm_mprotect, restore_timed=False)),  # no splits: past the map-count limit the handler re-opens the whole
        #                           arena, and the timed PROT_NONE meets the same one RW VMA either way
    ]
    out.append(Case("arm/madv_dontneed_fresh/100pct/4k", "GiB", "shmem-zap", "shmem",
                    "MADV_DONTNEED over a shmem arena just populated and never zapped (a tracker's first arm): "
                    "the zap also activates every folio on the LRU", _arm_dontneed_fresh))
    for pct, fraction in STATE_PERCENTS.items():
        out += [
            Case(f"arm/madv_dontneed/{pct}/4k", "GiB", "shmem-zap", "shmem",
                 f"MADV_DONTNEED over a shmem arena whose {pct[:-3]} % was refaulted since the previous zap",
                 partial(_arm_dontneed, fraction=fraction)),
            Case(f"arm/clear_refs_1/{pct}/4k", "GiB", "referenced", "anon",
                 f"write 1 to /proc/self/clear_refs (whole process; the arena dominates), {pct[:-3]} % of the "
                 "arena written since the previous one", partial(_arm_clear_refs, value=procfs.CLEAR_REFS_ALL,
                                                                 fraction=fraction)),
        ]
    for pct, fraction in PERCENTS.items():
        out += [
            Case(f"scan/pagemap_scan/plain/{pct}/4k", "GiB", "uffd-wp", "anon",
                 f"PAGEMAP_SCAN(PAGE_IS_WRITTEN), no WP_MATCHING; {wp_state}",
                 partial(_scan_pagemap_scan, fraction=fraction, wp_matching=False)),
            Case(f"scan/pagemap_scan/wp_matching/{pct}/4k", "GiB", "uffd-wp", "anon",
                 f"PAGEMAP_SCAN(PAGE_IS_WRITTEN, PM_SCAN_WP_MATCHING|CHECK_WPASYNC): get and re-protect; {wp_state}",
                 partial(_scan_pagemap_scan, fraction=fraction, wp_matching=True)),
            Case(f"scan/pagemap_scan/accessed/{pct}/4k", "GiB", "rwp", "anon",
                 "PAGEMAP_SCAN(PAGE_IS_ACCESSED) (7.3); RWP armed, then P of the pages written",
                 partial(_scan_accessed, fraction=fraction)),
            Case(f"scan/pagemap_read/bulk/{pct}/4k", "GiB", "uffd-wp", "anon",
                 f"one pread of the arena's /proc/self/pagemap entries (bit 57 = uffd-wp); {wp_state}",
                 partial(_scan_pagemap_read, fraction=fraction)),
            Case(f"scan/idle_bitmap/read/{pct}/4k", "GiB", "idle-page", "anon",
                 "pread of the arena's words of the page_idle bitmap; all marked idle, then P touched",
                 partial(_scan_idle_read, fraction=fraction)),
            Case(f"scan/smaps/read/{pct}/4k", "GiB", "referenced", "anon",
                 "read of /proc/self/smaps (whole process; the arena dominates); clear_refs 1, then P touched",
                 partial(_scan_smaps, fraction=fraction)),
            Case(f"scan/pagemap_scan/present/{pct}/4k", "GiB", "shmem-zap", "shmem",
                 "PAGEMAP_SCAN(PAGE_IS_PRESENT) of a shmem arena (the shmem-zap collect); MADV_DONTNEED, then "
                 "P of the pages refaulted by writes", partial(_scan_present, fraction=fraction)),
        ]
        if fraction < 1:  # 100 %: a SIGSEGV per page per run, and the opened pages merge into one VMA anyway
            out.append(Case(f"scan/mprotect/restore/{pct}/4k", "GiB", "mprotect", "anon",
                            "mprotect(RW) of the whole arena (the mprotect tracker's collect); PROT_NONE, then P "
                            "of the pages opened by the handler, each scattered one a VMA of its own",
                            partial(_scan_mprotect_restore, fraction=fraction), splits=fraction))
    faults = [
        ("uffd-wp-async", "uffd-wp", ("anon", "thp"), "write to a uffd-wp async protected page", _fault_uffd_wp),
        ("rwp-async", "rwp", ("anon", "thp"), "write to an RWP async protected page (7.3)", _fault_rwp_async),
        ("rwp-sync", "rwp", ("anon",), "write to an RWP sync protected page: round trip through a compiled "
         "server resolving with UFFDIO_RWPROTECT (7.3)", _fault_rwp_sync),
        ("uffd-minor", "uffd-minor", ("shmem",), "write to a zapped shmem page registered MODE_MINOR: round trip "
         "through the compiled UFFDIO_CONTINUE server", _fault_uffd_minor),
        ("mprotect-sigsegv", "mprotect", ("anon", "thp"), "write to a PROT_NONE page: SIGSEGV to the mprotect "
         "tracker's compiled handler, which opens the page", _fault_sigsegv),
        ("shmem-refault", "shmem-zap", ("shmem",), "write to a shmem page zapped by MADV_DONTNEED", _fault_zap),
        ("first-touch", None, ("anon", "thp"), "first write to freshly unpopulated anonymous memory",
         partial(_fault_zap, prefault=False)),
    ]
    served = {"same-cpu": "toucher and server pinned to one CPU", "other-cpu": "toucher and server pinned to two CPUs"}
    for placement, where in served.items():  # the unpinned round trips above keep their names
        faults += [
            (f"rwp-sync-{placement}", "rwp", ("anon",), f"as fault/rwp-sync, {where}",
             partial(_fault_rwp_sync, placement=placement)),
            (f"uffd-minor-{placement}", "uffd-minor", ("shmem",), f"as fault/uffd-minor, {where}",
             partial(_fault_uffd_minor, placement=placement)),
        ]
    for kind, mechanism, backings, what, setup in faults:
        for backing in backings:
            out.append(Case(f"fault/{kind}/{'thp' if backing == 'thp' else '4k'}", "page", mechanism, backing,
                            f"{what}; every 4 KiB page of the arena touched once, in order",
                            partial(setup, backing=backing)))
    return out


CASES = _cases()
