"""``uffd-minor``: umap-style tracking — zap a shmem arena, then record every MINOR fault.

``start`` registers the arena for userfaultfd MINOR faults and starts the compiled fault
server (shared with ``shmem-zap-minor``, see ``_uffd_minor``). ``arm`` clears the server's
record, then ``MADV_DONTNEED``s the arena: the PTEs go, the pages stay in the page cache.
Every first access to a page after that, read or write, blocks its thread in a MINOR fault
until the server maps the page back with ``UFFDIO_CONTINUE``; the server marks the page.
``collect`` returns that record — no ``PAGEMAP_SCAN`` — so the answer is exact and costs
nothing to read, while the price is paid by the workload: one kernel -> server -> kernel
round trip per page touched (``extra["uffd_faults"]``; the per-fault cost is measured by
``python -m tests.trackers.test_uffd_minor``). Sync, reads and writes, per page, shmem only.

``stop`` closes the userfaultfd first (unregistering the range: later accesses refault from
the page cache with nobody in the loop), then stops the server thread.
"""

from __future__ import annotations

from bench.kernel import mm_events
from bench.trackers import _primitives
from bench.trackers._base import PAGE, READS_AND_WRITES, CostMatch, Observation
from bench.trackers._uffd_minor import MinorServed


class UffdMinorTracker(MinorServed):
    name = "uffd-minor"
    mechanism = "uffd-minor"
    granularity = PAGE
    sees = READS_AND_WRITES
    backings = ("shmem",)
    summary = "MADV_DONTNEED on shmem + userfaultfd MINOR faults served by compiled code (UFFDIO_CONTINUE): exact"
    kernel_events = (mm_events.ZAP_PTE_RANGE, mm_events.FOLIO_REMOVE_RMAP_PTES, mm_events.SHMEM_FAULT,
                     mm_events.HANDLE_USERFAULT, mm_events.MFILL_CONTINUE, mm_events.PAGEMAP_SCAN_PMD)

    raw_primitives = {"arm": _primitives.ZAP,
                      "collect": "copies the fault server's record; the cost is per fault (fault-served table below)"}
    cost_model = (*_primitives.ZAP_ARMS, CostMatch("collect", "shmem", None, None, None, why=(
        "no kernel primitive: collect copies the fault server's record (user space, one byte per page)")))
    style = ("sky_blue", "D")
    order = 90

    def _live(self):
        if self._server is None or self.arena is None:
            raise RuntimeError("uffd-minor tracker used before start() or after stop()")
        return self._server

    def arm(self) -> None:
        server = self._live()
        server.seen[:] = 0  # nothing touches the arena between intervals (lockstep)
        self._zap()

    def collect(self) -> Observation:
        server = self._live()
        return Observation(accessed=server.seen.astype(bool), extra=self._served_since_arm())


TRACKERS = [UffdMinorTracker]
