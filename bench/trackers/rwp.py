"""``rwp``: userfaultfd read-write-protect (RWP) as merged for Linux 7.3, read by ``PAGEMAP_SCAN``.

``start`` negotiates ``UFFD_FEATURE_RWP | UFFD_FEATURE_RWP_ASYNC`` and registers the arena
with ``UFFDIO_REGISTER_MODE_RWP``; ``arm`` is one ``UFFDIO_RWPROTECT`` over the arena (every
present PTE becomes PAGE_NONE + the uffd PTE bit); the first access to a protected page, read
or write, takes a fault that the kernel resolves itself in async mode (restores the
protection, clears the uffd bit, marks the page young). ``collect`` is one ``PAGEMAP_SCAN``
with ``category_mask = return_mask = PAGE_IS_ACCESSED``: the hot set — present (or swapped)
pages of the RWP VMA whose uffd bit is clear. The non-inverted scan is the documented one:
an inverted "cold" scan would also report holes (Documentation/admin-guide/mm/userfaultfd.rst).
Reads and writes alike, per page (per 2 MiB page on hugetlb and PMD-mapped THP).

Limits (the kernel's, from the v10 series): only present PTEs are armed — a page populated
after ``arm`` comes back without the uffd bit, so it reads accessed, which is the truth; the
mark is lost on ``MADV_DONTNEED`` (anon), hole punch, truncation, reclaim of shmem pages and
the split of a PMD-mapped *file* THP — the arena maps shmem with ``MADV_NOHUGEPAGE``, and
``start`` reports a shmem arena that is PMD-mapped anyway (``shmem_enabled=force``) in every
interval's status. RWP and uffd-wp share the PTE bit, so a VMA takes one or the other.

For the eviction workflow the tracker exposes the synchronous mode: ``set_sync()`` (SET_MODE
disabling ``RWP_ASYNC``: the next access to a protected page blocks its thread and queues a
``UFFD_EVENT_PAGEFAULT`` with ``UFFD_PAGEFAULT_FLAG_RWP``), ``read_faults()``, ``resolve()``
(``UFFDIO_RWPROTECT`` without ``MODE_RWP``: unprotect and wake) and ``set_async()``. A thread
that faults synchronously while holding the GIL deadlocks a Python handler: touch the memory
from nogil code. ``stop`` closes the userfaultfd, which unregisters the range, restores every
protected PTE and wakes any blocked thread.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from bench.kernel import mm_events, pagemap, probe, uffd
from bench.micro import kit
from bench.trackers import _primitives
from bench.trackers._base import PAGE, READS_AND_WRITES, Observation, RawPrimitive, Tracker, TrackerUnavailable


class RwpTracker(Tracker):
    name = "rwp"
    mechanism = "rwp"
    granularity = PAGE
    sees = READS_AND_WRITES
    backings = ("anon", "shmem", "thp", "hugetlb")
    summary = "userfaultfd RWP (7.3): UFFDIO_RWPROTECT arms, PAGEMAP_SCAN(PAGE_IS_ACCESSED) reads the hot set"
    kernel_events = (mm_events.MRWPROTECT_RANGE, mm_events.CHANGE_PROTECTION, mm_events.CHANGE_PTE_RANGE,
                     mm_events.PAGEMAP_SCAN_PMD)

    kernel_probe = staticmethod(probe.probe_rwp)
    kconfig = ("USERFAULTFD", "USERFAULTFD_RWP", "PROC_PAGE_MONITOR")
    raw_primitives = {
        "arm": RawPrimitive("UFFDIO_RWPROTECT whole arena", lambda t, scanner: lambda: t._live().rwprotect(
            t.arena.addr, t.arena.size, True)),
        "collect": _primitives.category_scan("PAGEMAP_SCAN ACCESSED", pagemap.PAGE_IS_ACCESSED),
    }
    sync_fault_kind = "rwp-sync"  # the eviction workflow's mode; no lockstep run serves its faults
    interferences = {"tlb-flush": "read-write-protects through userfaultfd (its arm flushes already)"}
    style = ("vermillion", "o")
    order = 10

    FEATURES = uffd.UFFD_FEATURE_RWP | uffd.UFFD_FEATURE_RWP_ASYNC
    _SCAN = dict(category_mask=pagemap.PAGE_IS_ACCESSED, return_mask=pagemap.PAGE_IS_ACCESSED)

    @classmethod
    def micro_cases(cls) -> list:
        return _cases(cls.mechanism)

    def __init__(self, **options):
        super().__init__(**options)
        self._uffd: uffd.Userfaultfd | None = None
        self._scanner: pagemap.Scanner | None = None
        self._msgs = np.zeros(64, uffd.uffd_msg_dtype)
        self.range_ioctls = 0
        self.sync = False
        self._status = "ok"

    def start(self, arena) -> None:
        super().start(arena)
        self._uffd = uffd.Userfaultfd(self.FEATURES)
        if self._uffd.features & self.FEATURES != self.FEATURES:
            raise TrackerUnavailable(f"UFFDIO_API granted features {self._uffd.features:#x} without RWP/RWP_ASYNC")
        self.range_ioctls = self._uffd.register(arena.addr, arena.size, uffd.UFFDIO_REGISTER_MODE_RWP)
        if not self.range_ioctls & (1 << uffd._UFFDIO_RWPROTECT):
            raise TrackerUnavailable(f"UFFDIO_REGISTER(MODE_RWP) does not offer UFFDIO_RWPROTECT "
                                     f"(range ioctls {self.range_ioctls:#x})")
        self._scanner = pagemap.Scanner()
        pagemap.regions_to_bitmap(self._scanner.vec[:0], arena.addr, 1)  # load the compiled expander now, untimed
        if arena.backing == "shmem":
            huge = self._scanner.scan(arena.addr, arena.end, category_mask=pagemap.PAGE_IS_HUGE,
                                      return_mask=pagemap.PAGE_IS_HUGE)
            if len(huge):
                self._status = ("file-thp: the shmem arena is PMD-mapped; RWP marks are dropped when a file "
                                "THP splits (use shmem_enabled != force)")

    def _live(self) -> uffd.Userfaultfd:
        if self._uffd is None or self.arena is None:
            raise RuntimeError("rwp tracker used before start() or after stop()")
        return self._uffd

    def arm(self) -> None:
        self._live().rwprotect(self.arena.addr, self.arena.size, True)

    def collect(self) -> Observation:
        self._live()
        regions = self._scanner.scan(self.arena.addr, self.arena.end, **self._SCAN)
        hot = pagemap.regions_to_bitmap(regions, self.arena.addr, self.arena.npages)
        return Observation(accessed=hot, status=self._status, extra={"scan_calls": self._scanner.calls})

    # ---- synchronous mode, for the eviction workflow

    def set_sync(self) -> None:
        """Disable ``RWP_ASYNC``: accesses to protected pages now block until ``resolve``."""
        self._live().set_mode(disable=uffd.UFFD_FEATURE_RWP_ASYNC)
        self.sync = True

    def set_async(self) -> None:
        """Enable ``RWP_ASYNC`` again; the kernel wakes every thread still blocked."""
        self._live().set_mode(enable=uffd.UFFD_FEATURE_RWP_ASYNC)
        self.sync = False

    def fileno(self) -> int:
        """The userfaultfd (non-blocking), to ``poll`` for pending synchronous faults."""
        return self._live().fd

    def read_faults(self) -> np.ndarray:
        """Pending ``struct uffd_msg``s (``uffd.uffd_msg_dtype``); empty when none is queued."""
        return self._live().read_messages(self._msgs).copy()

    def resolve(self, start: int, length: int, *, wake: bool = True) -> None:
        """Unprotect ``[start, start+length)`` (``UFFDIO_RWPROTECT`` mode 0) and wake its faulting threads."""
        self._live().rwprotect(start, length, False, dontwake=not wake)

    def protect(self, start: int, length: int) -> None:
        """Re-arm part of the arena (``UFFDIO_RWPROTECT`` with ``MODE_RWP``)."""
        self._live().rwprotect(start, length, True)

    def stop(self) -> None:
        if self._scanner is not None:
            self._scanner.close()
            self._scanner = None
        if self._uffd is not None:
            # Unregisters the range, restores every armed PTE, wakes any thread blocked in sync mode.
            self._uffd.close()
            self._uffd = None
        self.sync = False
        self._status = "ok"
        super().stop()


TRACKERS = [RwpTracker]


# ---------------------------------------------------------------- micro cases (hotbench micro)

def _registered(stack, arena, asynchronous: bool = True) -> uffd.Userfaultfd:
    """7.3 RWP registered over the arena (async: the kernel resolves faults itself); not yet protected."""
    features = uffd.UFFD_FEATURE_RWP | (uffd.UFFD_FEATURE_RWP_ASYNC if asynchronous else 0)
    u = stack.enter_context(uffd.Userfaultfd(features))
    u.register(arena.addr, arena.size, uffd.UFFDIO_REGISTER_MODE_RWP)
    return u


def _arm_rwprotect(size, stack):
    arena = kit.new_arena(stack, size, "anon")
    u = _registered(stack, arena)
    u.rwprotect(arena.addr, arena.size, True)
    pages = kit.pages(arena.npages, kit.ARM_FRACTION)

    def once():
        kit.touch(arena, pages)
        return kit.timed(u.rwprotect, arena.addr, arena.size, True)
    return once


def _scan_accessed(size, stack, fraction):
    arena = kit.new_arena(stack, size, "anon")
    u = _registered(stack, arena)
    scanner = stack.enter_context(pagemap.Scanner())
    u.rwprotect(arena.addr, arena.size, True)
    kit.touch(arena, kit.pages(arena.npages, fraction))

    def once():
        return kit.timed(scanner.scan, arena.addr, arena.end, **RwpTracker._SCAN)
    return once


def _fault_async(size, stack, backing):
    arena, loops = kit.fault_arena(stack, size, backing)
    u = _registered(stack, arena)
    return kit.touch_after(loops, arena, partial(u.rwprotect, arena.addr, arena.size, True))


def _fault_sync(size, stack, backing, placement="unpinned"):
    arena, loops = kit.fault_arena(stack, size, backing)
    u = _registered(stack, arena, asynchronous=False)
    server = loops.RwpServer(u, arena.page_size, kit.placed(stack, placement).server)
    stack.callback(server.stop)
    stack.callback(u.close)  # unregister first, so no fault can wait with nobody to resolve it
    return kit.touch_after(loops, arena, partial(u.rwprotect, arena.addr, arena.size, True))


def _cases(mechanism: str) -> list[kit.Case]:
    out = [kit.Case("arm/uffdio_rwprotect/1pct/4k", "GiB", mechanism, "anon",
                    "UFFDIO_RWPROTECT over the whole arena (7.3)", _arm_rwprotect)]
    out += [kit.Case(f"scan/pagemap_scan/accessed/{pct}/4k", "GiB", mechanism, "anon",
                     "PAGEMAP_SCAN(PAGE_IS_ACCESSED) (7.3); RWP armed, then P of the pages written",
                     partial(_scan_accessed, fraction=fraction)) for pct, fraction in kit.PERCENTS.items()]
    out += kit.fault_cases("rwp-async", mechanism, ("anon", "thp"), "write to an RWP async protected page (7.3)",
                           _fault_async)
    out += kit.fault_cases("rwp-sync", mechanism, ("anon",), "write to an RWP sync protected page: round trip "
                           "through a compiled server resolving with UFFDIO_RWPROTECT (7.3)", _fault_sync)
    for placement, where in kit.PLACEMENTS.items():
        out += kit.fault_cases(f"rwp-sync-{placement}", mechanism, ("anon",), f"as fault/rwp-sync, {where}",
                               partial(_fault_sync, placement=placement), placement)
    return out
