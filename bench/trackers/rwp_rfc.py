"""``rwp-rfc``: the April-2026 RFC ABI (never merged) — untested on a live kernel.

Implemented from the RFC's documentation ("userfaultfd: working set tracking", RFC 00/12,
2026-04-14; kernel-interfaces.md §9.1) and unit-tested only against the documented
encodings and call sequence: no kernel available to this project implements it. The
runner plans it only where probe ``rwp-rfc`` proved the ABI functionally (bits 17/18
granted, ``UFFDIO_REGISTER_MODE_RWP`` refused, ``MODE_MINOR`` on private anon and
``UFFDIO_DEACTIVATE`` accepted), and ``start`` refuses otherwise: the RFC reuses feature
bits 17/18, ioctl nr 0x09 and ``PAGE_IS_*`` bit 9, which mean RWP things on 7.3.

``start``: ``UFFDIO_API{UFFD_FEATURE_MINOR_ANON | UFFD_FEATURE_MINOR_ASYNC}``, then
``UFFDIO_REGISTER{arena, MODE_MINOR}`` (private anonymous memory). ``arm``:
``UFFDIO_DEACTIVATE`` over the arena (PROT_NONE via change_protection, pages and PFNs kept).
Accesses take MINOR faults that the kernel resolves itself (MINOR_ASYNC). ``collect``: one
``PAGEMAP_SCAN`` for present pages that are *not* ``PAGE_IS_UFFD_DEACTIVATED``
(``category_inverted = DEACTIVATED``, ``category_mask = DEACTIVATED | PRESENT``) = accessed
since ``arm``. Swapped-out pages are neither (not present). Reads and writes, per page.
``set_sync``/``set_async`` toggle ``MINOR_ASYNC`` with ``UFFDIO_SET_MODE``; a synchronous
fault is resolved with ``UFFDIO_CONTINUE`` (``resolve``). ``stop`` closes the userfaultfd,
which (per the RFC) unregisters and restores permissions.
"""

from __future__ import annotations

from bench.kernel import mm_events, pagemap, probe, uffd, uffd_rfc
from bench.trackers._base import PAGE, READS_AND_WRITES, Observation, RawPrimitive, Tracker, TrackerUnavailable

UNTESTED = uffd_rfc.UNTESTED


class RwpRfcTracker(Tracker):
    """The RFC's DEACTIVATE + PAGEMAP_SCAN detection loop; untested on a live kernel (see the module)."""

    name = "rwp-rfc"
    mechanism = "rwp-rfc"
    granularity = PAGE
    sees = READS_AND_WRITES
    backings = ("anon",)
    summary = ("April-2026 RFC: MODE_MINOR on anon + UFFDIO_DEACTIVATE, PAGEMAP_SCAN(!PAGE_IS_UFFD_DEACTIVATED); "
               "untested on a live kernel")
    kernel_events = (mm_events.CHANGE_PROTECTION, mm_events.CHANGE_PTE_RANGE, mm_events.ZAP_PTE_RANGE,
                     mm_events.FOLIO_REMOVE_RMAP_PTES, mm_events.PAGEMAP_SCAN_PMD)

    kernel_probe = staticmethod(probe.probe_rwp_rfc)
    kconfig = None  # never merged: no kernel config enables it
    raw_primitives = {
        "arm": RawPrimitive("UFFDIO_DEACTIVATE whole arena", lambda t, scanner: lambda: uffd_rfc.deactivate(
            t._live(), t.arena.addr, t.arena.size)),
        "collect": RawPrimitive("PAGEMAP_SCAN PRESENT & !UFFD_DEACTIVATED", lambda t, scanner: lambda: scanner.scan(
            t.arena.addr, t.arena.end, **RwpRfcTracker._SCAN)),
    }
    interferences = {"tlb-flush": "read-write-protects through userfaultfd (its arm flushes already)"}
    style = ("vermillion", "d")  # shares rwp's colour: the two ABIs never run on one kernel
    order = 11

    FEATURES = uffd_rfc.UFFD_FEATURE_MINOR_ANON | uffd_rfc.UFFD_FEATURE_MINOR_ASYNC
    _SCAN = dict(category_inverted=uffd_rfc.PAGE_IS_UFFD_DEACTIVATED,
                 category_mask=uffd_rfc.PAGE_IS_UFFD_DEACTIVATED | pagemap.PAGE_IS_PRESENT,
                 return_mask=pagemap.PAGE_IS_PRESENT)

    def __init__(self, **options):
        super().__init__(**options)
        self._uffd: uffd.Userfaultfd | None = None
        self._scanner: pagemap.Scanner | None = None
        self.sync = False

    def start(self, arena) -> None:
        verdict = self.probe()
        if not verdict.available:  # never let bits 17/18 be read with the RFC's meaning unproven
            raise TrackerUnavailable(verdict.reason)
        if arena.backing not in self.backings:
            raise TrackerUnavailable(f"{self.name} works on private anonymous memory only, not {arena.backing}")
        super().start(arena)
        self._uffd = uffd.Userfaultfd(self.FEATURES)
        if self._uffd.features & self.FEATURES != self.FEATURES:
            raise TrackerUnavailable(f"UFFDIO_API granted features {self._uffd.features:#x} "
                                     f"without MINOR_ANON/MINOR_ASYNC")
        self._uffd.register(arena.addr, arena.size, uffd.UFFDIO_REGISTER_MODE_MINOR)
        self._scanner = pagemap.Scanner()
        pagemap.regions_to_bitmap(self._scanner.vec[:0], arena.addr, 1)  # load the compiled expander now, untimed

    def _live(self) -> uffd.Userfaultfd:
        if self._uffd is None or self.arena is None:
            raise RuntimeError("rwp-rfc tracker used before start() or after stop()")
        return self._uffd

    def arm(self) -> None:
        uffd_rfc.deactivate(self._live(), self.arena.addr, self.arena.size)

    def collect(self) -> Observation:
        self._live()
        regions = self._scanner.scan(self.arena.addr, self.arena.end, **self._SCAN)
        accessed = pagemap.regions_to_bitmap(regions, self.arena.addr, self.arena.npages)
        return Observation(accessed=accessed, extra={"scan_calls": self._scanner.calls})

    def set_sync(self) -> None:
        """Disable ``MINOR_ASYNC``: accesses to deactivated pages block until ``resolve``."""
        self._live().set_mode(disable=uffd_rfc.UFFD_FEATURE_MINOR_ASYNC)
        self.sync = True

    def set_async(self) -> None:
        """Enable ``MINOR_ASYNC`` again (the RFC wakes blocked faulters)."""
        self._live().set_mode(enable=uffd_rfc.UFFD_FEATURE_MINOR_ASYNC)
        self.sync = False

    def resolve(self, start: int, length: int) -> None:
        """``UFFDIO_CONTINUE`` (extended to anon by the RFC): re-enable the pages and wake the faulter."""
        self._live().continue_(start, length)

    def stop(self) -> None:
        if self._scanner is not None:
            self._scanner.close()
            self._scanner = None
        if self._uffd is not None:
            self._uffd.close()
            self._uffd = None
        self.sync = False
        super().stop()


TRACKERS = [RwpRfcTracker]
