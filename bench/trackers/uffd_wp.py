"""``uffd-wp``: userfaultfd write-protect in async mode, read and re-armed by ``PAGEMAP_SCAN``.

One ``PAGEMAP_SCAN`` with ``PM_SCAN_WP_MATCHING`` returns the pages written since the last
call and write-protects them again, atomically ("get and clear written"); the first write
to a protected page takes one minor fault that the kernel resolves itself (WP_ASYNC).
So ``collect`` also re-arms, and ``arm`` does work only the first time. Writes only.
"""

from __future__ import annotations

import os
from functools import partial

from bench.kernel import mm_events, pagemap, probe, uffd
from bench.micro import kit
from bench.trackers._base import FIRST, PAGE, REPORTED, WRITES, CostMatch, Observation, RawPrimitive, Tracker

_WP = "scan/pagemap_scan/wp_matching/{}/4k"


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
    cost_model = (
        CostMatch("arm", "anon", _WP.format("100pct"), None, None, rows=FIRST, why=(
            "only the first arm scans (later ones were re-armed by the previous collect): every page has been "
            "written since registration, so it re-protects the whole arena, the 100 % scan; no state term")),
        CostMatch("collect", "anon", _WP.format("0pct"), _WP.format("100pct"), REPORTED, _WP.format("1pct"), why=(
            "PAGEMAP_SCAN(WP_MATCHING) walks every PTE, re-protects each written page it reports and flushes "
            "the TLB once per block where it did")),
    )
    style = ("blue", "s")
    order = 40
    kernel_events = (mm_events.PAGEMAP_SCAN_PMD, mm_events.MAKE_UFFD_WP_PTE)

    _SCAN = dict(flags=pagemap.PM_SCAN_WP_MATCHING | pagemap.PM_SCAN_CHECK_WPASYNC,
                 category_mask=pagemap.PAGE_IS_WRITTEN, return_mask=pagemap.PAGE_IS_WRITTEN)

    @classmethod
    def micro_cases(cls) -> list:
        return _cases(cls.mechanism)

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


# ---------------------------------------------------------------- micro cases (hotbench micro)

def _armed(stack, arena) -> uffd.Userfaultfd:
    """uffd-wp async on the arena, every page protected."""
    u = stack.enter_context(uffd.Userfaultfd(uffd.UFFD_FEATURE_WP_ASYNC))
    u.register(arena.addr, arena.size, uffd.UFFDIO_REGISTER_MODE_WP)
    u.writeprotect(arena.addr, arena.size, True)
    return u


def _arm_writeprotect(size, stack):
    arena = kit.new_arena(stack, size, "anon")
    u = _armed(stack, arena)
    pages = kit.pages(arena.npages, kit.ARM_FRACTION)

    def once():
        kit.touch(arena, pages)
        return kit.timed(u.writeprotect, arena.addr, arena.size, True)
    return once


def _scan_pagemap_scan(size, stack, fraction, wp_matching):
    arena = kit.new_arena(stack, size, "anon")
    _armed(stack, arena)
    scanner = stack.enter_context(pagemap.Scanner())
    pages = kit.pages(arena.npages, fraction)
    kit.touch(arena, pages)
    flags = UffdWpTracker._SCAN["flags"] if wp_matching else 0

    def once():
        if wp_matching:  # the previous scan protected them again
            kit.touch(arena, pages)
        return kit.timed(scanner.scan, arena.addr, arena.end, flags=flags, category_mask=pagemap.PAGE_IS_WRITTEN,
                         return_mask=pagemap.PAGE_IS_WRITTEN)
    return once


def _scan_pagemap_read(size, stack, fraction):
    arena = kit.new_arena(stack, size, "anon")
    _armed(stack, arena)
    fd = pagemap.open_pagemap()
    stack.callback(os.close, fd)
    kit.touch(arena, kit.pages(arena.npages, fraction))

    def once():
        return kit.timed(pagemap.read_entries, arena.addr, arena.npages, "self", fd)
    return once


def _fault_write(size, stack, backing):
    arena, loops = kit.fault_arena(stack, size, backing)
    u = _armed(stack, arena)
    return kit.touch_after(loops, arena, partial(u.writeprotect, arena.addr, arena.size, True))


def _cases(mechanism: str) -> list[kit.Case]:
    state = "uffd-wp async armed over the whole arena, then P of its pages written"
    out = [kit.Case("arm/uffdio_writeprotect/1pct/4k", "GiB", mechanism, "anon",
                    "UFFDIO_WRITEPROTECT over the whole arena", _arm_writeprotect)]
    for pct, fraction in kit.PERCENTS.items():
        out += [
            kit.Case(f"scan/pagemap_scan/plain/{pct}/4k", "GiB", mechanism, "anon",
                     f"PAGEMAP_SCAN(PAGE_IS_WRITTEN), no WP_MATCHING; {state}",
                     partial(_scan_pagemap_scan, fraction=fraction, wp_matching=False)),
            kit.Case(f"scan/pagemap_scan/wp_matching/{pct}/4k", "GiB", mechanism, "anon",
                     f"PAGEMAP_SCAN(PAGE_IS_WRITTEN, PM_SCAN_WP_MATCHING|CHECK_WPASYNC): get and re-protect; {state}",
                     partial(_scan_pagemap_scan, fraction=fraction, wp_matching=True)),
            kit.Case(f"scan/pagemap_read/bulk/{pct}/4k", "GiB", mechanism, "anon",
                     f"one pread of the arena's /proc/self/pagemap entries (bit 57 = uffd-wp); {state}",
                     partial(_scan_pagemap_read, fraction=fraction)),
        ]
    return out + kit.fault_cases("uffd-wp-async", mechanism, ("anon", "thp"),
                                 "write to a uffd-wp async protected page", _fault_write)
