"""The April-2026 RFC ABI ("userfaultfd: working set tracking", RFC 00/12, 2026-04-14). Never merged.

Generation 1 of the series that became RWP in 7.3: ``MODE_MINOR`` on private anonymous
memory, ``UFFDIO_DEACTIVATE`` and ``PAGE_IS_UFFD_DEACTIVATED``. Its numbers collide with
7.3's on purpose of history, not design — bit 17/18, ioctl nr 0x09 and ``PAGE_IS_*`` bit 9
mean different things there — so they live here, under their RFC names, and are used only
once a probe has proved this ABI. No kernel available to this project implements it:
everything here is checked against the documented encodings only, untested on a live kernel.
"""

from __future__ import annotations

import ctypes

from bench.kernel import libc
from bench.kernel.libc import _IOR, _IOW
from bench.kernel.uffd import UFFDIO, uffdio_range, uffdio_set_mode

UFFD_FEATURE_MINOR_ANON = 1 << 17  # == 7.3 UFFD_FEATURE_RWP
UFFD_FEATURE_MINOR_ASYNC = 1 << 18  # == 7.3 UFFD_FEATURE_RWP_ASYNC
_UFFDIO_DEACTIVATE = 0x09  # == 7.3 _UFFDIO_RWPROTECT
_UFFDIO_SET_MODE = 0x0A
UFFDIO_DEACTIVATE = _IOR(UFFDIO, _UFFDIO_DEACTIVATE, ctypes.sizeof(uffdio_range))
UFFDIO_SET_MODE = _IOW(UFFDIO, _UFFDIO_SET_MODE, ctypes.sizeof(uffdio_set_mode))
PAGE_IS_UFFD_DEACTIVATED = 1 << 9  # == 7.3 PAGE_IS_ACCESSED, inverted meaning

UNTESTED = "untested on a live kernel: implemented from the RFC's documented ABI"


def deactivate(u, start: int, length: int) -> None:
    """RFC ``UFFDIO_DEACTIVATE`` on *u* (a ``uffd.Userfaultfd`` negotiated with ``UFFD_FEATURE_MINOR_ANON``).

    Private anon: PROT_NONE via change_protection, page and PFN kept; shmem/hugetlbfs: PTEs
    zapped. ENOENT when the range is not MINOR-registered. Untested on a live kernel.
    """
    libc.ioctl(u.fd, UFFDIO_DEACTIVATE, uffdio_range(start, length), "UFFDIO_DEACTIVATE")
