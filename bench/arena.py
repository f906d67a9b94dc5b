"""The memory under test: one mapping of a given size and backing, with a numpy view.

Backings:
  anon     private anonymous memory, 4 KiB pages forced with MADV_NOHUGEPAGE
  shmem    a memfd (shmem) mapped shared, 4 KiB pages; ``fd`` is the file
  thp      private anonymous, 2 MiB aligned, MADV_HUGEPAGE (needs THP not 'never')
  hugetlb  hugetlbfs pages from the reserved pool (needs /proc/sys/vm/nr_hugepages)
"""

from __future__ import annotations

import ctypes
import os
import re

import numpy as np

from bench.errors import HotbenchError
from bench.kernel import libc, procfs

__all__ = ["Arena", "BACKINGS", "parse_size", "size_token", "backing_unavailable", "size_problem"]

BACKINGS = ("anon", "shmem", "thp", "hugetlb")
BASE_PAGE = os.sysconf("SC_PAGE_SIZE")
HUGE_PAGE = 2 << 20

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str | int) -> int:
    """'64M', '4G', '256MiB', '4096' -> bytes."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise HotbenchError(f"bad size {text!r}: use a number with an optional K/M/G suffix, e.g. 256M or 4G")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def size_token(nbytes: int) -> str:
    """The spelling ``--size`` takes and cell keys use (16M, 1G: ``parse_size``'s inverse), bytes
    when no unit divides; prose says sizes with ``analysis.data.format_size`` (16 MiB)."""
    for unit in ("T", "G", "M", "K"):
        if nbytes >= _UNITS[unit] and nbytes % _UNITS[unit] == 0:
            return f"{nbytes // _UNITS[unit]}{unit}"
    return str(nbytes)


def size_problem(size: int, backing: str) -> str | None:
    """None when *size* bytes make an arena of *backing*, else what is wrong (one line)."""
    align = HUGE_PAGE if backing in ("thp", "hugetlb") else BASE_PAGE
    if size <= 0 or size % align:
        return f"arena size {size} must be a positive multiple of {size_token(align)} for {backing}"
    return None


def backing_unavailable(backing: str, size: int = HUGE_PAGE) -> str | None:
    """None when *backing* can be had here for *size* bytes, else the reason."""
    if backing not in BACKINGS:
        return f"unknown backing {backing!r}; choose from {', '.join(BACKINGS)}"
    if backing == "thp":
        mode = procfs.thp_mode()
        if mode is None:
            return "no /sys/kernel/mm/transparent_hugepage (CONFIG_TRANSPARENT_HUGEPAGE off)"
        if mode == "never":
            return "THP is 'never': echo madvise > /sys/kernel/mm/transparent_hugepage/enabled"
    if backing == "hugetlb":
        info = procfs.meminfo()
        free = info.get("HugePages_Free", 0) - info.get("HugePages_Rsvd", 0)
        need = -(-size // HUGE_PAGE)
        if info.get("Hugepagesize") != HUGE_PAGE:
            return "no 2 MiB hugetlbfs pages (CONFIG_HUGETLBFS off?)"
        if free < need:
            return (f"hugetlb needs {need} free 2 MiB pages, {max(free, 0)} reserved and free: "
                    f"echo {need} > /proc/sys/vm/nr_hugepages")
    return None


class Arena:
    """One mapping of *size* bytes; ``close()`` is idempotent.

    ``page_size`` is the backing's page size (4 KiB, or 2 MiB for hugetlb); ground truth
    is always kept per base page (``npages`` of ``BASE_PAGE``).
    """

    def __init__(self, size: int | str, backing: str = "anon", *, prefault: bool = True):
        self.backing = backing
        self.size = parse_size(size)
        self.fd = -1
        self.addr = 0
        reason = backing_unavailable(backing, self.size)
        if reason:
            raise HotbenchError(reason)
        problem = size_problem(self.size, backing)
        if problem:
            raise HotbenchError(problem)
        self._check_memory()
        self.page_size = HUGE_PAGE if backing == "hugetlb" else BASE_PAGE
        try:
            self._map()
            if prefault:
                self.prefault()
        except BaseException:
            self.close()
            raise
        self.view = np.ctypeslib.as_array((ctypes.c_uint8 * self.size).from_address(self.addr))

    @property
    def npages(self) -> int:
        return self.size // BASE_PAGE

    @property
    def end(self) -> int:
        return self.addr + self.size

    def _check_memory(self) -> None:
        available = procfs.meminfo().get("MemAvailable", 0)
        if self.backing != "hugetlb" and self.size > available * 0.9:
            raise HotbenchError(f"arena of {size_token(self.size)} does not fit: only "
                                f"{available >> 20} MiB available; choose a smaller --size")

    def _map(self) -> None:
        prot = libc.PROT_READ | libc.PROT_WRITE
        if self.backing == "shmem":
            self.fd = libc.memfd_create("hotbench-arena", libc.MFD_CLOEXEC)
            os.ftruncate(self.fd, self.size)
            self.addr = libc.mmap(self.size, prot, libc.MAP_SHARED, self.fd)
        elif self.backing == "hugetlb":
            self.addr = libc.mmap(self.size, prot, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS | libc.MAP_HUGETLB)
        elif self.backing == "thp":
            self.addr = self._map_aligned(prot)
        else:
            self.addr = libc.mmap(self.size, prot, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS)
        if self.backing in ("anon", "shmem"):
            libc.madvise(self.addr, self.size, libc.MADV_NOHUGEPAGE)
        elif self.backing == "thp":
            libc.madvise(self.addr, self.size, libc.MADV_HUGEPAGE)

    def _map_aligned(self, prot: int) -> int:
        """A 2 MiB-aligned anonymous mapping (over-map, then trim both ends)."""
        raw = libc.mmap(self.size + HUGE_PAGE, prot, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS)
        addr = (raw + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1)
        if addr > raw:
            libc.munmap(raw, addr - raw)
        tail = raw + self.size + HUGE_PAGE - (addr + self.size)
        if tail:
            libc.munmap(addr + self.size, tail)
        return addr

    def prefault(self) -> None:
        """Populate every page writable, so the first measured interval sees no first-touch faults."""
        try:
            libc.madvise(self.addr, self.size, libc.MADV_POPULATE_WRITE)
        except OSError:  # before 5.14: touch one byte per page
            view = np.ctypeslib.as_array((ctypes.c_uint8 * self.size).from_address(self.addr))
            view[:: BASE_PAGE] = 0

    def repopulate(self) -> None:
        """Free every page and fault it in again (content becomes zero).

        For trackers that must own the memory's charge: a memcg is charged when a page is
        allocated and (cgroup v2) the charge never moves, so after moving the process into a
        new memcg the arena has to be allocated anew there.
        """
        if self.fd >= 0:
            libc.fallocate(self.fd, libc.FALLOC_FL_PUNCH_HOLE | libc.FALLOC_FL_KEEP_SIZE, 0, self.size)
        else:
            libc.madvise(self.addr, self.size, libc.MADV_DONTNEED)
        self.prefault()

    def huge_bytes(self) -> int | None:
        """Bytes of the arena mapped by 2 MiB page-table entries now (smaps AnonHugePages, ShmemPmdMapped,
        FilePmdMapped; hugetlb: all of it); None when its smaps entry cannot be read.

        A THP arena gets huge pages only where the allocator found free 2 MiB blocks: a
        fragmented machine silently gives 4 KiB pages, so the runner records what it got.
        """
        from bench.kernel import procfs

        if self.backing == "hugetlb":
            return self.size
        entry = procfs.smaps_vma(self.addr)
        if entry is None:
            return None
        return sum(int(entry.get(key, 0)) for key in ("AnonHugePages", "ShmemPmdMapped", "FilePmdMapped"))

    def describe(self) -> dict:
        return {"backing": self.backing, "size_bytes": self.size, "page_size": self.page_size,
                "npages": self.npages}

    def close(self) -> None:
        if self.addr:
            libc.munmap(self.addr, self.size)
            self.addr = 0
            self.view = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Arena:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
