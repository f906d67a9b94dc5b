"""``shmem-zap``: zap a shmem arena's page-table entries, then ask which came back.

``MADV_DONTNEED`` on shared memory drops only the PTEs (the pages stay in the page
cache), so any later access refaults them; ``PAGEMAP_SCAN`` on ``PAGE_IS_PRESENT``
then lists the pages touched since the zap. Read faults map up to 16 neighbours at
once (fault-around), so reads over-report; write faults map one page.

``shmem-zap-minor`` registers the range with userfaultfd MINOR mode, which disables
fault-around: every first access after the zap is a MINOR fault that a compiled
server resolves with ``UFFDIO_CONTINUE`` — exact, at the price of a round trip per page.
"""

from __future__ import annotations

from bench.kernel import _libc, mm_events, pagemap, probe
from bench.trackers import _primitives
from bench.trackers._base import PAGE, READS_AND_WRITES, Observation, Tracker
from bench.trackers._uffd_minor import MinorServed


class ShmemZapTracker(Tracker):
    name = "shmem-zap"
    mechanism = "shmem-zap"
    granularity = PAGE
    sees = READS_AND_WRITES
    backings = ("shmem",)
    summary = "MADV_DONTNEED on shmem, accessed = present again (PAGEMAP_SCAN); reads over-report by fault-around"
    kernel_events = (mm_events.ZAP_PTE_RANGE, mm_events.FOLIO_REMOVE_RMAP_PTES, mm_events.SHMEM_FAULT,
                     mm_events.FILEMAP_MAP_PAGES, mm_events.PAGEMAP_SCAN_PMD)

    kernel_probe = staticmethod(probe.probe_shmem_zap)
    kconfig = ("SHMEM", "PROC_PAGE_MONITOR")
    raw_primitives = {"arm": _primitives.ZAP,
                      "collect": _primitives.category_scan("PAGEMAP_SCAN PRESENT", pagemap.PAGE_IS_PRESENT)}
    interferences = {"tlb-flush": None}  # a no-op: after its zap there are no PTEs to flush
    style = ("bluish_green", "v")
    order = 80

    def __init__(self, **options):
        super().__init__(**options)
        self._scanner: pagemap.Scanner | None = None

    def start(self, arena) -> None:
        super().start(arena)
        self._scanner = pagemap.Scanner()

    def arm(self) -> None:
        _libc.madvise(self.arena.addr, self.arena.size, _libc.MADV_DONTNEED)

    def _present(self):
        regions = self._scanner.scan(self.arena.addr, self.arena.end, category_mask=pagemap.PAGE_IS_PRESENT,
                                     return_mask=pagemap.PAGE_IS_PRESENT)
        return pagemap.regions_to_bitmap(regions, self.arena.addr, self.arena.npages)

    def collect(self) -> Observation:
        return Observation(accessed=self._present())

    def stop(self) -> None:
        if self._scanner is not None:
            self._scanner.close()
            self._scanner = None
        super().stop()


class ShmemZapMinorTracker(MinorServed, ShmemZapTracker):
    name = "shmem-zap-minor"
    mechanism = "uffd-minor"
    summary = "shmem-zap with the range registered for userfaultfd MINOR faults: no fault-around, exact"
    kernel_events = (*ShmemZapTracker.kernel_events, mm_events.HANDLE_USERFAULT, mm_events.MFILL_CONTINUE)

    style = ("reddish_purple", "^")
    order = 81

    def arm(self) -> None:
        self._zap()

    def collect(self) -> Observation:
        return Observation(accessed=self._present(), extra=self._served_since_arm())


TRACKERS = [ShmemZapTracker, ShmemZapMinorTracker]
