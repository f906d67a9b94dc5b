"""``soft-dirty``: ``clear_refs`` 4, then the soft-dirty bit of each page (Documentation/admin-guide/mm/soft-dirty.rst).

``arm`` writes 4 to ``/proc/self/clear_refs``: the kernel clears the soft-dirty bit of every
PTE *of the whole process* and write-protects them, so the next write to each page takes a
fault that sets the bit again. ``collect`` reads the bits back: one ``PAGEMAP_SCAN`` for
``PAGE_IS_SOFT_DIRTY`` where the kernel has that category (6.8+), else pagemap bit 55 read in
bulk (one ``preadv`` for the arena). Writes only; reads are invisible. Per page (2 MiB on a
PMD-mapped THP). There is no per-range clear and no scan-and-clear.

Consequences to know (kernel-interfaces.md §7.3):
- ``clear_refs`` 4 is process-wide: arming also erases the soft-dirty state of every other
  mapping of this process — another soft-dirty user in the same process (CRIU-style
  incremental dumps, a second tracker, ``hotbench probe``'s functional check) loses its
  history, and every first write anywhere in the process costs a fault afterwards. ``stop``
  cannot give that state back: the bits it cleared are gone.
- A VMA created or expanded after the clear (and an unmap + remap at the same address)
  carries the VMA-level ``VM_SOFTDIRTY`` flag (``sd`` in smaps VmFlags) and reads all dirty
  until the next clear. The first ``arm`` clears the arena's; should the arena's VMA get
  the flag back during an interval (merged with a new neighbour), every page reads dirty.
  Since 6.7 a new thread stack next to an anonymous arena is such a neighbour (``MAP_STACK``
  implies ``VM_NOHUGEPAGE``, the arena's flag), so the tracker keeps the arena in a VMA of its
  own while it runs (``MADV_DONTFORK``, undone by ``stop``; see ``_vma``), and ``collect``
  still detects the case (the only way every page can read dirty with ``sd`` set) and marks
  the interval ``vma-soft-dirty``.
- hugetlb is not offered: ``clear_refs`` does not walk hugetlb VMAs.
"""

from __future__ import annotations

import os
from functools import partial

import numpy as np

from bench.kernel import mm_events, pagemap, probe, procfs
from bench.micro import kit
from bench.trackers import _primitives, _vma
from bench.trackers._base import PAGE, WRITES, Observation, Tracker

SOURCES = ("auto", "scan", "pagemap")


class SoftDirtyTracker(Tracker):
    """Options: ``source`` = ``auto`` (PAGEMAP_SCAN when the kernel has PAGE_IS_SOFT_DIRTY, else
    pagemap bit 55), ``scan`` or ``pagemap`` (force one)."""

    name = "soft-dirty"
    mechanism = "soft-dirty"
    granularity = PAGE
    sees = WRITES
    backings = ("anon", "shmem", "thp")
    summary = "clear_refs 4 (process-wide) then PAGEMAP_SCAN(PAGE_IS_SOFT_DIRTY) or pagemap bit 55: written pages"
    kernel_events = (mm_events.CLEAR_REFS_PTE_RANGE, mm_events.PAGEMAP_SCAN_PMD)

    kernel_probe = staticmethod(probe.probe_soft_dirty)
    kconfig = ("MEM_SOFT_DIRTY", "PROC_PAGE_MONITOR")
    raw_primitives = {
        "arm": _primitives.clear_refs("clear_refs 4", procfs.CLEAR_REFS_SOFT_DIRTY),
        "collect": _primitives.category_scan("PAGEMAP_SCAN SOFT_DIRTY", pagemap.PAGE_IS_SOFT_DIRTY),
    }
    interferences = {"tlb-flush": "write-protects for soft-dirty (clear_refs 4 flushes the TLB already)"}
    style = ("sky_blue", "h")
    order = 50

    @classmethod
    def micro_cases(cls) -> list:
        return [kit.Case("arm/clear_refs_4/1pct/4k", "GiB", cls.mechanism, "anon",
                         "write 4 to /proc/self/clear_refs (whole process; the arena dominates)",
                         partial(_primitives.clear_refs_arm, value=procfs.CLEAR_REFS_SOFT_DIRTY))]

    def __init__(self, source: str = "auto", **options):
        if source not in SOURCES:
            raise ValueError(f"soft-dirty source must be one of {', '.join(SOURCES)}, not {source!r}")
        super().__init__(source=source, **options)
        self.source = source
        self._scanner: pagemap.Scanner | None = None
        self._pagemap_fd = -1
        self._isolated = False

    def start(self, arena) -> None:
        super().start(arena)
        self._isolated = _vma.isolate(arena)
        if self.source == "auto":
            categories = pagemap.supported_categories()
            self.source = "scan" if categories & pagemap.PAGE_IS_SOFT_DIRTY else "pagemap"
        if self.source == "scan":
            self._scanner = pagemap.Scanner()
            pagemap.regions_to_bitmap(self._scanner.vec[:0], arena.addr, 1)  # load the compiled expander now, untimed
        else:
            self._pagemap_fd = pagemap.open_pagemap()

    def arm(self) -> None:
        if self.arena is None:
            raise RuntimeError("soft-dirty tracker used before start() or after stop()")
        procfs.clear_refs(procfs.CLEAR_REFS_SOFT_DIRTY)

    def _dirty(self) -> np.ndarray:
        a = self.arena
        if self._scanner is not None:
            regions = self._scanner.scan(a.addr, a.end, category_mask=pagemap.PAGE_IS_SOFT_DIRTY,
                                         return_mask=pagemap.PAGE_IS_SOFT_DIRTY)
            return pagemap.regions_to_bitmap(regions, a.addr, a.npages)
        entries = pagemap.read_entries(a.addr, a.npages, fd=self._pagemap_fd)
        return (entries & np.uint64(pagemap.PM_SOFT_DIRTY)) != 0

    def collect(self) -> Observation:
        if self.arena is None:
            raise RuntimeError("soft-dirty tracker used before start() or after stop()")
        written = self._dirty()
        status = "ok"
        if written.all():  # the one case where the VMA-level flag can be hiding the PTE bits
            vma = procfs.smaps_vma(self.arena.addr) or {}
            if "sd" in vma.get("VmFlags", ()):
                status = ("vma-soft-dirty: the arena's VMA carries VM_SOFTDIRTY (new or merged since the "
                          "clear), every page reads dirty")
        return Observation(accessed=written, written=written, status=status, extra={"source": self.source})

    def stop(self) -> None:
        # Nothing to undo that can be undone: the soft-dirty bits clear_refs cleared stay cleared.
        if self._scanner is not None:
            self._scanner.close()
            self._scanner = None
        if self._pagemap_fd >= 0:
            os.close(self._pagemap_fd)
            self._pagemap_fd = -1
        _vma.release(self.arena, self._isolated)
        self._isolated = False
        self.source = self.options["source"]
        super().stop()


TRACKERS = [SoftDirtyTracker]
