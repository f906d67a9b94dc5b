"""``uffd-wp``: userfaultfd write-protect in async mode, read and re-armed by ``PAGEMAP_SCAN``.

One ``PAGEMAP_SCAN`` with ``PM_SCAN_WP_MATCHING`` returns the pages written since the last
call and write-protects them again, atomically ("get and clear written"); the first write
to a protected page takes one minor fault that the kernel resolves itself (WP_ASYNC).
So ``collect`` also re-arms, and ``arm`` does work only the first time. Writes only.
"""

from __future__ import annotations

from bench.kernel import mm_events, pagemap, probe, uffd
from bench.trackers._base import PAGE, WRITES, Observation, RawPrimitive, Tracker


class UffdWpTracker(Tracker):
    name = "uffd-wp"
    mechanism = "uffd-wp"
    granularity = PAGE
    sees = WRITES
    backings = ("anon", "shmem", "thp", "hugetlb")
    summary = "userfaultfd WP_ASYNC + PAGEMAP_SCAN(WP_MATCHING): written pages, re-armed in the same call"

    kernel_probe = staticmethod(probe.probe_uffd_wp)
    kconfig = ("USERFAULTFD", "PTE_MARKER_UFFD_WP", "PROC_PAGE_MONITOR")
    raw_primitives = {
        "arm": "nothing after the first interval: collect's WP_MATCHING re-protects",
        "collect": RawPrimitive("PAGEMAP_SCAN WP_MATCHING", lambda t, scanner: lambda: scanner.scan(
            t.arena.addr, t.arena.end, **UffdWpTracker._SCAN)),
    }
    interferences = {"tlb-flush": "write-protects through userfaultfd (its arm flushes already)"}
    style = ("blue", "s")
    order = 40
    kernel_events = (mm_events.PAGEMAP_SCAN_PMD, mm_events.MAKE_UFFD_WP_PTE)

    _SCAN = dict(flags=pagemap.PM_SCAN_WP_MATCHING | pagemap.PM_SCAN_CHECK_WPASYNC,
                 category_mask=pagemap.PAGE_IS_WRITTEN, return_mask=pagemap.PAGE_IS_WRITTEN)

    def __init__(self, **options):
        super().__init__(**options)
        self._uffd: uffd.Userfaultfd | None = None
        self._scanner: pagemap.Scanner | None = None
        self._armed = False

    def start(self, arena) -> None:
        super().start(arena)
        features = uffd.UFFD_FEATURE_WP_ASYNC
        if arena.backing in ("shmem", "hugetlb"):
            features |= uffd.UFFD_FEATURE_WP_HUGETLBFS_SHMEM
        self._uffd = uffd.Userfaultfd(features)
        self._uffd.register(arena.addr, arena.size, uffd.UFFDIO_REGISTER_MODE_WP)
        self._scanner = pagemap.Scanner()

    def _scan_and_protect(self):
        return self._scanner.scan(self.arena.addr, self.arena.end, **self._SCAN)

    def arm(self) -> None:
        if not self._armed:  # later intervals were re-armed by the previous collect
            self._scan_and_protect()
            self._armed = True

    def collect(self) -> Observation:
        regions = self._scan_and_protect()
        written = pagemap.regions_to_bitmap(regions, self.arena.addr, self.arena.npages)
        return Observation(accessed=written, written=written, extra={"scan_calls": self._scanner.calls})

    def stop(self) -> None:
        if self._scanner is not None:
            self._scanner.close()
            self._scanner = None
        if self._uffd is not None:
            self._uffd.close()  # unregisters the range and drops every WP marker
            self._uffd = None
        self._armed = False
        super().stop()


TRACKERS = [UffdWpTracker]
