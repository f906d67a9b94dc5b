"""``/proc/<pid>/pagemap``: the ``PAGEMAP_SCAN`` ioctl (include/uapi/linux/fs.h, 6.7+) and
the 64-bit entries (Documentation/admin-guide/mm/pagemap.rst).

``PAGEMAP_SCAN`` returns run-length ``struct page_region``s; when the buffer fills the
walk stops early and ``walk_end`` says where to resume — ``Scanner.scan`` always
resumes, so callers get every region. Entries are read in bulk (one ``preadv`` per
range), never 8 bytes per syscall. Failures raise ``OSError`` naming the request.
An unknown category bit in any mask is EINVAL: that is how categories are probed.
"""

from __future__ import annotations

import ctypes
import errno
import os

import numpy as np

from bench.kernel import libc
from bench.kernel.libc import _IOWR

__all__ = ["Scanner", "open_pagemap", "pagemap_path", "read_entries", "regions_to_bitmap", "supported_categories",
           "page_region_dtype", "warmup"]


class pm_scan_arg(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_uint64), ("flags", ctypes.c_uint64),
        ("start", ctypes.c_uint64), ("end", ctypes.c_uint64), ("walk_end", ctypes.c_uint64),
        ("vec", ctypes.c_uint64), ("vec_len", ctypes.c_uint64), ("max_pages", ctypes.c_uint64),
        ("category_inverted", ctypes.c_uint64), ("category_mask", ctypes.c_uint64),
        ("category_anyof_mask", ctypes.c_uint64), ("return_mask", ctypes.c_uint64),
    ]


page_region_dtype = np.dtype([("start", "<u8"), ("end", "<u8"), ("categories", "<u8")])

PAGEMAP_SCAN = _IOWR(ord("f"), 16, ctypes.sizeof(pm_scan_arg))

PM_SCAN_WP_MATCHING = 1 << 0
PM_SCAN_CHECK_WPASYNC = 1 << 1

PAGE_IS_WPALLOWED = 1 << 0
PAGE_IS_WRITTEN = 1 << 1
PAGE_IS_FILE = 1 << 2
PAGE_IS_PRESENT = 1 << 3
PAGE_IS_SWAPPED = 1 << 4
PAGE_IS_PFNZERO = 1 << 5
PAGE_IS_HUGE = 1 << 6
PAGE_IS_SOFT_DIRTY = 1 << 7  # 6.8
PAGE_IS_GUARD = 1 << 8  # 6.15
PAGE_IS_ACCESSED = 1 << 9  # 7.3 (RWP); bit 9 means PAGE_IS_UFFD_DEACTIVATED in the RFC, see uffd_rfc
CATEGORY_NAMES = {
    PAGE_IS_WPALLOWED: "PAGE_IS_WPALLOWED", PAGE_IS_WRITTEN: "PAGE_IS_WRITTEN",
    PAGE_IS_FILE: "PAGE_IS_FILE", PAGE_IS_PRESENT: "PAGE_IS_PRESENT", PAGE_IS_SWAPPED: "PAGE_IS_SWAPPED",
    PAGE_IS_PFNZERO: "PAGE_IS_PFNZERO", PAGE_IS_HUGE: "PAGE_IS_HUGE", PAGE_IS_SOFT_DIRTY: "PAGE_IS_SOFT_DIRTY",
    PAGE_IS_GUARD: "PAGE_IS_GUARD", PAGE_IS_ACCESSED: "PAGE_IS_ACCESSED",
}

# pagemap entry bits
PM_PFRAME_MASK = (1 << 55) - 1
PM_SOFT_DIRTY = 1 << 55
PM_MMAP_EXCLUSIVE = 1 << 56
PM_UFFD_WP = 1 << 57  # 7.3: "uffd-tracked" (WP in WP VMAs, RWP-armed in RWP VMAs)
PM_GUARD_REGION = 1 << 58
PM_FILE = 1 << 61
PM_SWAP = 1 << 62
PM_PRESENT = 1 << 63

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def pagemap_path(pid: int | str = "self") -> str:
    return f"/proc/{pid}/pagemap"


def open_pagemap(pid: int | str = "self") -> int:
    """A read-only fd of *pid*'s pagemap (bulk ``read_entries``, ``PAGEMAP_SCAN``); the caller closes it."""
    return os.open(pagemap_path(pid), os.O_RDONLY | os.O_CLOEXEC)


class Scanner:
    """``PAGEMAP_SCAN`` over one process's pagemap with a reusable numpy ``page_region`` buffer."""

    def __init__(self, pid: int | str = "self", vec_len: int = 1 << 16):
        self.fd = open_pagemap(pid)
        self.vec = np.zeros(vec_len, dtype=page_region_dtype)
        self.calls = 0  # ioctls issued, for cost accounting

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Scanner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def scan(self, start: int, end: int, *, flags: int = 0, category_mask: int = 0,
             category_inverted: int = 0, category_anyof_mask: int = 0, return_mask: int = 0,
             max_pages: int = 0) -> np.ndarray:
        """All matching regions in ``[start, end)``, resuming from ``walk_end`` until done."""
        arg = pm_scan_arg(size=ctypes.sizeof(pm_scan_arg), flags=flags, start=start, end=end,
                          vec=self.vec.ctypes.data, vec_len=len(self.vec), max_pages=max_pages,
                          category_inverted=category_inverted, category_mask=category_mask,
                          category_anyof_mask=category_anyof_mask, return_mask=return_mask)
        chunks = []
        found = 0
        while True:
            n = libc.ioctl(self.fd, PAGEMAP_SCAN, arg, "PAGEMAP_SCAN")
            self.calls += 1
            if n:
                chunks.append(self.vec[:n].copy())
                found += int((self.vec["end"][:n] - self.vec["start"][:n]).sum()) // PAGE_SIZE
            if arg.walk_end >= end or (max_pages and found >= max_pages):
                break
            arg.start = arg.walk_end
            if max_pages:
                arg.max_pages = max_pages - found
        if not chunks:
            return self.vec[:0].copy()
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def regions_to_bitmap(regions: np.ndarray, base: int, npages: int, page_size: int = PAGE_SIZE) -> np.ndarray:
    """bool[npages]: True for pages of ``[base, base + npages*page_size)`` covered by *regions*."""
    from bench.kernel._ranges import fill_ranges

    return fill_ranges(regions["start"], regions["end"], base, page_size.bit_length() - 1, npages)


def warmup() -> None:
    """Load ``regions_to_bitmap``'s compiled code now (from numba's cache, or compile it), so
    that a tracker's first timed collect does not pay for it."""
    # numba compiles (or loads) one version per memory layout, and the scanner answers both: the
    # fields of a one-region answer are contiguous, of a longer one strided
    for rows in (1, 2):
        regions_to_bitmap(np.zeros(rows, dtype=page_region_dtype), 0, 1)


def read_entries(start: int, npages: int, pid: int | str = "self", fd: int | None = None) -> np.ndarray:
    """u64 pagemap entries for *npages* pages from virtual address *start*, in one bulk read."""
    out = np.empty(npages, dtype="<u8")
    own = fd is None
    if own:
        fd = open_pagemap(pid)
    try:
        view = memoryview(out.view(np.uint8))
        offset, done = (start // PAGE_SIZE) * 8, 0
        while done < len(view):
            n = os.preadv(fd, [view[done:]], offset + done)
            if n <= 0:
                raise OSError(errno.EIO, "short read", pagemap_path(pid))
            done += n
    finally:
        if own:
            os.close(fd)
    return out


def entry_pfns(entries: np.ndarray) -> np.ndarray:
    """PFNs of present entries (0 where not present or when the reader lacks CAP_SYS_ADMIN)."""
    present = (entries & np.uint64(PM_PRESENT)) != 0
    return np.where(present, entries & np.uint64(PM_PFRAME_MASK), np.uint64(0))


def supported_categories() -> int:
    """Mask of ``PAGE_IS_*`` bits this kernel's ``PAGEMAP_SCAN`` accepts (OSError ENOTTY: no PAGEMAP_SCAN)."""
    probe_area = libc.mmap(PAGE_SIZE, libc.PROT_READ, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS)
    try:
        with Scanner(vec_len=4) as scanner:
            scanner.scan(probe_area, probe_area + PAGE_SIZE)  # ENOTTY here: no PAGEMAP_SCAN at all
            mask = 0
            for bit in range(16):
                try:
                    scanner.scan(probe_area, probe_area + PAGE_SIZE, category_anyof_mask=1 << bit, return_mask=1 << bit)
                except OSError as e:
                    if e.errno != errno.EINVAL:
                        raise
                    continue
                mask |= 1 << bit
            return mask
    finally:
        libc.munmap(probe_area, PAGE_SIZE)
