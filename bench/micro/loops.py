"""The compiled loops of ``hotbench micro``'s fault benchmarks (numba ``nogil``; imported only
by the workers that time faults, so the others never pay numba's start-up).

Timed touches run here with the GIL released: a synchronous userfaultfd fault blocks the
toucher until a server thread resolves it, and the servers are compiled ``nogil`` loops
too (``uffd_server._serve`` for MINOR, ``_serve_rwp`` below for 7.3 RWP sync).
"""

from __future__ import annotations

import os

import numpy as np
from numba import njit

from bench.kernel import uffd, uffd_server
from bench.kernel.uffd import UFFD_EVENT_PAGEFAULT, UFFDIO_RWPROTECT

__all__ = ["touch_every", "warm", "RwpServer"]

_MSGS_PER_READ = 64
_SCRATCH_PAGE = 4096


@njit(nogil=True, cache=True)
def touch_every(view, page_size):
    """Write one byte of every page, in address order."""
    for offset in range(0, view.size, page_size):
        view[offset] = 1


@njit(nogil=True, cache=True)
def _serve_rwp(uffd_fd, stop_fd, page_size, counters):
    """7.3 RWP sync server: resolve each fault with ``UFFDIO_RWPROTECT`` mode 0 (unprotect + wake).

    Mirrors ``uffd_server._serve``. counters: [0] faults resolved, [1] RWPROTECT failures
    (followed by a WAKE so the faulting thread retries).
    """
    pfd = np.zeros(4, np.int32)  # two struct pollfd {int fd; short events; short revents;}
    msgs = np.zeros(_MSGS_PER_READ * 4, np.uint64)  # struct uffd_msg is 4 x u64
    arg = np.zeros(3, np.int64)  # struct uffdio_rwprotect {range.start, range.len, mode}
    rng = np.zeros(2, np.int64)  # struct uffdio_range
    while True:
        _, stop = uffd_server.wait_either(uffd_fd, stop_fd, pfd)
        if stop:
            return
        n = uffd_server.read_messages(uffd_fd, msgs)
        for i in range(max(n, 0) // 32):
            if msgs[4 * i] & 0xFF != UFFD_EVENT_PAGEFAULT:
                continue
            addr = np.int64(msgs[4 * i + 2] & ~np.uint64(page_size - 1))
            arg[0] = addr
            arg[1] = page_size
            arg[2] = 0
            if not uffd_server.resolve_or_wake(uffd_fd, UFFDIO_RWPROTECT, arg, rng, addr, page_size):
                counters[1] += 1
            counters[0] += 1


def warm() -> None:
    """Load the touch loops from numba's disk cache (or compile them) outside any timed region."""
    touch_every(np.zeros(2 * _SCRATCH_PAGE, np.uint8), _SCRATCH_PAGE)


class RwpServer(uffd_server.ServerThread):
    """A thread running ``_serve_rwp`` for one sync RWP ``Userfaultfd``."""

    def __init__(self, u: uffd.Userfaultfd, page_size: int, cpus: set[int] | None = None):
        self.counters = np.zeros(2, np.int64)
        stop = os.eventfd(1, os.EFD_CLOEXEC)  # compile / load outside the timed region
        try:
            _serve_rwp(-1, stop, page_size, self.counters)
        finally:
            os.close(stop)
        super().__init__(lambda stop_fd: _serve_rwp(u.fd, stop_fd, page_size, self.counters), "hotbench-micro-rwp",
                         cpus)
