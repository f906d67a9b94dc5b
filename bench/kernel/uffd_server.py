"""A compiled userfaultfd fault server: resolves synchronous MINOR faults with ``UFFDIO_CONTINUE``.

Synchronous userfaultfd faults block the faulting thread until someone resolves them.
A Python handler thread needs the GIL, and a faulting thread that holds the GIL can
never be resolved — so the server loop is numba ``nogil`` code and the memory is
touched only by nogil code too. Every resolved page is recorded, so the server's
record *is* the exact set of pages faulted (what ``uffd-minor`` reports).
"""

from __future__ import annotations

import os
import threading
from typing import Callable

import numpy as np
from numba import njit

from bench.kernel import nbsys
from bench.kernel.uffd import (UFFD_EVENT_PAGEFAULT, UFFDIO_CONTINUE, UFFDIO_WAKE, Userfaultfd,
                               uffd_msg_dtype)

POLLIN = 0x1
_MSGS_PER_READ = 64


@njit(inline="always")
def wait_either(uffd: int, other_fd: int, pfd: np.ndarray) -> tuple[bool, bool]:
    """Block in poll(2) until the userfaultfd or *other_fd* (a stop or command eventfd) is readable.

    *pfd* is two ``struct pollfd`` as int32[4]; returns (uffd readable, other readable).
    """
    pfd[0] = uffd
    pfd[1] = POLLIN
    pfd[2] = other_fd
    pfd[3] = POLLIN
    nbsys.poll(nbsys.voidptr(pfd.ctypes.data), 2, -1)
    return bool((pfd[1] >> 16) & POLLIN), bool((pfd[3] >> 16) & POLLIN)


@njit(inline="always")
def read_messages(uffd: int, msgs: np.ndarray) -> int:
    """Read pending ``struct uffd_msg``s (4 x u64 each) into *msgs*; returns the byte count (<= 0: none)."""
    return nbsys.read(uffd, nbsys.voidptr(msgs.ctypes.data), msgs.size * 8)


@njit(inline="always")
def resolve_or_wake(uffd: int, request: int, arg: np.ndarray, rng: np.ndarray, addr: int, length: int) -> bool:
    """Issue the resolving ioctl (*arg* already filled); if it fails (raced: EEXIST, EAGAIN) wake the
    range so the faulting thread retries. Returns False on failure."""
    if nbsys.ioctl(uffd, request, nbsys.voidptr(arg.ctypes.data)) == 0:
        return True
    rng[0] = addr
    rng[1] = length
    nbsys.ioctl(uffd, UFFDIO_WAKE, nbsys.voidptr(rng.ctypes.data))
    return False


@njit(nogil=True, cache=True)
def _serve(uffd: int, stop_fd: int, base: int, page_size: int, seen: np.ndarray, counters: np.ndarray) -> None:
    """Loop until *stop_fd* is readable: read fault messages, CONTINUE each page, mark it in *seen*.

    counters: [0] faults resolved, [1] CONTINUE failures (followed by WAKE so the thread retries).
    """
    pfd = np.zeros(4, np.int32)  # two struct pollfd {int fd; short events; short revents;}
    msgs = np.zeros(_MSGS_PER_READ * 4, np.uint64)  # struct uffd_msg is 4 x u64
    arg = np.zeros(4, np.int64)  # struct uffdio_continue {range.start, range.len, mode, mapped}
    rng = np.zeros(2, np.int64)  # struct uffdio_range
    npages = seen.size
    while True:
        _, stop = wait_either(uffd, stop_fd, pfd)
        if stop:
            return
        n = read_messages(uffd, msgs)
        for i in range(max(n, 0) // 32):
            if msgs[4 * i] & 0xFF != UFFD_EVENT_PAGEFAULT:
                continue
            addr = msgs[4 * i + 2] & ~np.uint64(page_size - 1)
            page = (np.int64(addr) - base) // 4096
            for p in range(page, min(page + page_size // 4096, npages)):
                seen[p] = 1
            counters[0] += 1  # before CONTINUE wakes the thread: an interval never ends before its count
            arg[0] = np.int64(addr)
            arg[1] = page_size
            arg[2] = 0
            arg[3] = 0
            if not resolve_or_wake(uffd, UFFDIO_CONTINUE, arg, rng, np.int64(addr), page_size):
                counters[1] += 1


def start_server_thread(target, name: str, cpus: set[int] | None) -> threading.Thread:
    """Start a daemon thread running *target*, on *cpus* (None: wherever the caller may run).

    The affinity is set by the thread itself before it serves its first fault, so no fault
    is ever served from another CPU than the one the placement names.
    """
    def pinned() -> None:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)  # 0: the calling thread
        target()

    thread = threading.Thread(target=pinned, name=name, daemon=True)
    thread.start()
    return thread


class ServerThread:
    """A compiled serving loop, ``serve(stop_fd)``, on its own thread until ``stop()`` writes
    its stop eventfd."""

    def __init__(self, serve: Callable[[int], None], name: str, cpus: set[int] | None):
        self._stop_fd = stop_fd = os.eventfd(0, os.EFD_CLOEXEC)
        self._thread = start_server_thread(lambda: serve(stop_fd), name, cpus)

    @property
    def native_id(self) -> int:
        return self._thread.native_id

    def stop(self) -> None:
        """Stop the loop (idempotent); unregister or close the uffd first so no fault waits forever."""
        if self._stop_fd >= 0:
            os.eventfd_write(self._stop_fd, 1)
            self._thread.join()
            os.close(self._stop_fd)
            self._stop_fd = -1


class MinorFaultServer(ServerThread):
    """A thread serving MINOR faults on ``[base, base + npages*4096)`` for one ``Userfaultfd``."""

    def __init__(self, uffd: Userfaultfd, base: int, npages: int, page_size: int, cpus: set[int] | None = None):
        self.seen = np.zeros(npages, np.uint8)
        self.counters = np.zeros(2, np.int64)
        super().__init__(lambda stop_fd: _serve(uffd.fd, stop_fd, base, page_size, self.seen, self.counters),
                         "hotbench-uffd-minor", cpus)


def warmup() -> None:
    """Compile (or load) the server loop outside any measured region."""
    stop = os.eventfd(1, os.EFD_CLOEXEC)
    try:
        _serve(-1, stop, 0, 4096, np.zeros(1, np.uint8), np.zeros(2, np.int64))
    finally:
        os.close(stop)


assert uffd_msg_dtype.itemsize == 32
