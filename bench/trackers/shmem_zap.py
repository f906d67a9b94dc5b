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

from functools import partial

from bench.kernel import libc, mm_events, pagemap, probe
from bench.micro import kit
from bench.trackers import _primitives
from bench.trackers._base import PAGE, READS_AND_WRITES, REPORTED, CostMatch, Observation, Tracker
from bench.trackers._uffd_minor import MinorServed

_PRESENT = "scan/pagemap_scan/present/{}/4k"


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
    cost_model = (*_primitives.ZAP_ARMS, CostMatch(
        "collect", "shmem", _PRESENT.format("0pct"), _PRESENT.format("100pct"), REPORTED, _PRESENT.format("1pct"),
        why="PAGEMAP_SCAN(PAGE_IS_PRESENT) reports the present pages and walks the PTE tables refaulted since the "
            "zap: one per block holding one"))
    style = ("bluish_green", "v")
    order = 80

    @classmethod
    def micro_cases(cls) -> list:
        return _cases(cls.mechanism)

    def __init__(self, **options):
        super().__init__(**options)
        self._scanner: pagemap.Scanner | None = None

    def start(self, arena) -> None:
        super().start(arena)
        self._scanner = pagemap.Scanner()

    def arm(self) -> None:
        libc.madvise(self.arena.addr, self.arena.size, libc.MADV_DONTNEED)

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


# ---------------------------------------------------------------- micro cases (hotbench micro)

def _arm_dontneed(size, stack, fraction=kit.ARM_FRACTION):
    arena = kit.new_arena(stack, size, "shmem")
    libc.madvise(arena.addr, arena.size, libc.MADV_DONTNEED)
    pages = kit.pages(arena.npages, fraction)

    def once():
        kit.touch(arena, pages)  # refault the fraction (write faults: no fault-around)
        return kit.timed(libc.madvise, arena.addr, arena.size, libc.MADV_DONTNEED)
    return once


def _arm_dontneed_fresh(size, stack):
    """The first zap of a shmem arena: every page just allocated and populated, never zapped.

    Its young PTEs make the zap mark each folio accessed, which moves it to the active LRU list
    (measured: /proc/vmstat pgactivate +261,981 for 1 GiB, 40 against 14 ms/GiB for the zaps
    after it). The other zap cases time that later state; a tracker's first arm meets this one.
    """
    arena = kit.new_arena(stack, size, "shmem")

    def once():
        arena.repopulate()  # punch the pages out of the page cache, then allocate and populate anew
        return kit.timed(libc.madvise, arena.addr, arena.size, libc.MADV_DONTNEED)
    return once


def _scan_present(size, stack, fraction):
    """The collect: zapped shmem, P refaulted by writes (no fault-around), then who is present."""
    arena = kit.new_arena(stack, size, "shmem")
    scanner = stack.enter_context(pagemap.Scanner())
    libc.madvise(arena.addr, arena.size, libc.MADV_DONTNEED)
    kit.touch(arena, kit.pages(arena.npages, fraction))  # the scan changes nothing: state set up once

    def once():
        return kit.timed(scanner.scan, arena.addr, arena.end, category_mask=pagemap.PAGE_IS_PRESENT,
                         return_mask=pagemap.PAGE_IS_PRESENT)
    return once


def _cases(mechanism: str) -> list[kit.Case]:
    def zap(pct: str) -> str:
        return f"MADV_DONTNEED over a shmem arena whose {pct[:-3]} % was refaulted since the previous zap"

    out = [kit.Case(_primitives.ZAP_CASE.format("1pct"), "GiB", mechanism, "shmem", zap("1pct"), _arm_dontneed),
           kit.Case("arm/madv_dontneed_fresh/100pct/4k", "GiB", mechanism, "shmem",
                    "MADV_DONTNEED over a shmem arena just populated and never zapped (a tracker's first arm): "
                    "the zap also activates every folio on the LRU", _arm_dontneed_fresh)]
    out += [kit.Case(_primitives.ZAP_CASE.format(pct), "GiB", mechanism, "shmem", zap(pct),
                     partial(_arm_dontneed, fraction=fraction)) for pct, fraction in kit.STATE_PERCENTS.items()]
    out += [kit.Case(_PRESENT.format(pct), "GiB", mechanism, "shmem",
                     "PAGEMAP_SCAN(PAGE_IS_PRESENT) of a shmem arena (the shmem-zap collect); MADV_DONTNEED, then "
                     "P of the pages refaulted by writes", partial(_scan_present, fraction=fraction))
            for pct, fraction in kit.PERCENTS.items()]
    return out + kit.fault_cases("shmem-refault", mechanism, ("shmem",),
                                 "write to a shmem page zapped by MADV_DONTNEED", kit.zap_refault)
