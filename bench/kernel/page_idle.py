"""Idle page tracking: /sys/kernel/mm/page_idle/bitmap (Documentation/admin-guide/mm/idle_page_tracking.rst).

``CONFIG_IDLE_PAGE_TRACKING``; the bitmap is root-only (0600). Native-endian u64 words,
PFN *i* is bit ``i % 64`` of word ``i // 64``; set = idle. Every read and write must start
on an 8-byte boundary and be a multiple of 8 bytes (EINVAL otherwise); past the last PFN
gives ENXIO. Writing ORs bits in (marks idle, clearing the Accessed bits of every PTE
mapping the page through rmap); reading re-checks idle-marked pages. Only user LRU pages
are tracked; a huge page's Idle flag lives on its head PFN.

Falsely idle pages under MGLRU (``mglru.enabled() & 1``): MGLRU's aging and
``folio_mark_accessed`` do not clear Idle, so page_idle under MGLRU over-reports idleness.
"""

from __future__ import annotations

import os

from bench.kernel import procfs

__all__ = ["PAGE_IDLE_DIR", "PAGE_IDLE_BITMAP", "BITMAP_WORD_BYTES", "bitmap_offset", "probe"]

PAGE_IDLE_DIR = "/sys/kernel/mm/page_idle"
PAGE_IDLE_BITMAP = PAGE_IDLE_DIR + "/bitmap"
BITMAP_WORD_BYTES = 8


def bitmap_offset(pfn: int) -> int:
    """File offset of the u64 word holding *pfn*'s bit."""
    return (pfn // 64) * BITMAP_WORD_BYTES


def probe() -> str | None:
    """None when the bitmap exists and this process can open it, else the one-line reason.

    Opens the file without reading or writing it: a read would re-check (and possibly
    un-idle) pages, which is someone else's state.
    """
    if not os.path.exists(PAGE_IDLE_BITMAP):
        missing = PAGE_IDLE_DIR if not os.path.isdir(PAGE_IDLE_DIR) else PAGE_IDLE_BITMAP
        return procfs.config_reason(f"no {missing}", "CONFIG_IDLE_PAGE_TRACKING")
    try:
        fd = os.open(PAGE_IDLE_BITMAP, os.O_RDWR | os.O_CLOEXEC)
    except PermissionError as e:
        return f"needs root ({PAGE_IDLE_BITMAP} is root-only: {os.strerror(e.errno)})"
    except OSError as e:
        return f"cannot open {PAGE_IDLE_BITMAP}: {os.strerror(e.errno)}"
    os.close(fd)
    return None
