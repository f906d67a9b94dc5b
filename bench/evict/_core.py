"""Compiled parts of the eviction workflow (``bench.evict``): the fault handler and the VMM's
per-run loops (write-out, drop, range ioctls, final restore).

Everything that can block a vCPU, or runs while vCPUs are blocked, is numba ``nogil`` code
calling libc directly (``bench.kernel.nbsys``), so no step of a fault's resolution needs the
GIL and the measured costs are the kernel's, not the interpreter's.

The handler (``serve``) owns the userfaultfd's message queue for a whole run:

  MISSING fault   the page was evicted: ``UFFDIO_COPY`` it back from the store (the store
                  mapping at the page's offset), mark it resident, log a *refault*
  (a COPY or CONTINUE that fails is followed by ``UFFDIO_WAKE``: the thread retries and faults
  again if it must; EEXIST/EAGAIN are benign races and counted apart from errors)
  MINOR fault     (shmem-minor) in RUN mode: ``UFFDIO_CONTINUE`` at once (tracking); in HOLD
                  mode: leave the thread blocked, mark the page touched, log it -- the VMM
                  evicts or rescues it and wakes it
  WP / RWP fault  a write (WP) or any access (RWP) to a page being evicted: mark touched, log
                  it, leave it blocked; the VMM's unprotect / ``UFFDIO_WAKE`` releases it

Mode changes go through the handler itself: the VMM stores the new mode in ``ctl[C_CMD]``,
signals the command eventfd and waits on the acknowledgement eventfd, so once it returns
every message the handler processes uses the new mode (no fault is CONTINUEd behind the
VMM's back after a freeze). Log entries are ``(t_read, t_done, page, kind | flags << 8)`` with
CLOCK_MONOTONIC ns; counters live in ``ctl``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from bench.kernel import nbsys
from bench.kernel.uffd_server import read_messages, wait_either
from bench.kernel.libc import FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, MADV_DONTNEED
from bench.kernel.uffd import (UFFD_EVENT_PAGEFAULT, UFFD_PAGEFAULT_FLAG_MINOR, UFFD_PAGEFAULT_FLAG_RWP,
                               UFFD_PAGEFAULT_FLAG_WP, UFFDIO_CONTINUE, UFFDIO_COPY, UFFDIO_WAKE)

PAGE = 4096
EEXIST, EAGAIN = 17, 11
_MSGS = 64

# ctl slots (int64)
C_CMD, C_MODE, C_LOG, C_LOG_LOST, C_MINOR, C_MINOR_NS, C_MISSING, C_WINDOW = range(8)
C_ERRORS, C_RETRY, C_LAST_ERR, C_OTHER = 8, 9, 10, 11
CTL_SLOTS = 16
# modes / commands
RUN, HOLD, STOP = 0, 1, 2
# log kinds
K_REFAULT, K_WINDOW, K_HELD, K_RETRY, K_ERROR = 1, 2, 3, 4, 5
KIND_NAMES = {K_REFAULT: "refault", K_WINDOW: "window", K_HELD: "held", K_RETRY: "retry", K_ERROR: "error"}

_BLOCKING = UFFD_PAGEFAULT_FLAG_WP | UFFD_PAGEFAULT_FLAG_RWP


@njit(nogil=True, cache=True)
def _log(log, ctl, t0, t1, page, kind):
    i = ctl[C_LOG]
    if i < log.shape[0]:
        log[i, 0] = t0
        log[i, 1] = t1
        log[i, 2] = page
        log[i, 3] = kind
        ctl[C_LOG] = i + 1
    else:
        ctl[C_LOG_LOST] += 1


@njit(nogil=True, cache=True)
def _benign(result):
    """-EEXIST (mapped meanwhile) or -EAGAIN (page table changed under the ioctl, e.g. by the next
    round's zap): wake the thread, it retries the access and faults again if it must."""
    return result == -EEXIST or result == -EAGAIN


@njit(nogil=True, cache=True)
def _process(uffd, msgs, n, mode, base, npages, store_addr, ctl, resident, touched, log, bufs, ts):
    """Handle the *n* bytes of messages in *msgs* in *mode*; bufs = [copy(5) | continue(4) | range(2)]."""
    copy, cont, rng = bufs[0:5], bufs[5:9], bufs[9:11]
    for i in range(max(n, 0) // 32):
        t0 = nbsys.monotonic_ns(ts)
        if msgs[4 * i] & 0xFF != UFFD_EVENT_PAGEFAULT:
            ctl[C_OTHER] += 1
            continue
        flags = np.int64(msgs[4 * i + 1])
        addr = np.int64(msgs[4 * i + 2]) & ~np.int64(PAGE - 1)
        page = (addr - base) // PAGE
        if page < 0 or page >= npages:
            ctl[C_OTHER] += 1
            continue
        if flags & _BLOCKING:
            touched[page] = 1
            ctl[C_WINDOW] += 1
            _log(log, ctl, t0, t0, page, K_WINDOW | (flags << 8))
            continue
        if flags & UFFD_PAGEFAULT_FLAG_MINOR:
            if mode == HOLD:
                touched[page] = 1
                ctl[C_WINDOW] += 1
                _log(log, ctl, t0, t0, page, K_HELD | (flags << 8))
                continue
            cont[0] = addr
            cont[1] = PAGE
            cont[2] = 0
            cont[3] = 0
            if nbsys.ioctl(uffd, UFFDIO_CONTINUE, nbsys.voidptr(cont.ctypes.data)) != 0:
                if _benign(cont[3]):
                    ctl[C_RETRY] += 1
                else:
                    ctl[C_ERRORS] += 1
                    ctl[C_LAST_ERR] = cont[3]
                rng[0] = addr
                rng[1] = PAGE
                nbsys.ioctl(uffd, UFFDIO_WAKE, nbsys.voidptr(rng.ctypes.data))
            ctl[C_MINOR] += 1
            ctl[C_MINOR_NS] += nbsys.monotonic_ns(ts) - t0
            continue
        # MISSING: the page was evicted; fetch it back from the store.
        copy[0] = addr
        copy[1] = store_addr + page * PAGE
        copy[2] = PAGE
        copy[3] = 0
        copy[4] = 0
        if nbsys.ioctl(uffd, UFFDIO_COPY, nbsys.voidptr(copy.ctypes.data)) == 0 and copy[4] == PAGE:
            resident[page] = 1
            ctl[C_MISSING] += 1
            _log(log, ctl, t0, nbsys.monotonic_ns(ts), page, K_REFAULT | (flags << 8))
            continue
        kind = K_RETRY
        if _benign(copy[4]):
            ctl[C_RETRY] += 1
        else:
            kind = K_ERROR
            ctl[C_ERRORS] += 1
            ctl[C_LAST_ERR] = copy[4]
        rng[0] = addr
        rng[1] = PAGE
        nbsys.ioctl(uffd, UFFDIO_WAKE, nbsys.voidptr(rng.ctypes.data))
        _log(log, ctl, t0, nbsys.monotonic_ns(ts), page, kind | (flags << 8))


@njit(nogil=True, cache=True)
def serve(uffd, cmd_fd, ack_fd, base, npages, store_addr, ctl, resident, touched, log):
    """The handler loop; returns when the STOP command arrives (after acknowledging it).

    Leaving HOLD, the queue is drained in HOLD mode before the acknowledgement: a MINOR fault
    queued before the drop of its page must not be CONTINUEd after it (the page is gone); the
    VMM's ``UFFDIO_WAKE`` after the acknowledgement releases every held thread.
    """
    pfd = np.zeros(4, np.int32)            # two struct pollfd
    msgs = np.zeros(_MSGS * 4, np.uint64)  # struct uffd_msg: 4 x u64
    bufs = np.zeros(11, np.int64)          # uffdio_copy, uffdio_continue, uffdio_range
    ev = np.ones(1, np.uint64)             # eventfd value
    ts = np.zeros(2, np.int64)
    cmd_addr = ctl.ctypes.data + C_CMD * 8
    mode = RUN
    while True:
        faults, command = wait_either(uffd, cmd_fd, pfd)
        if command:
            nbsys.read(cmd_fd, nbsys.voidptr(ev.ctypes.data), 8)
            cmd = nbsys.atomic_load(cmd_addr)
            ev[0] = 1
            if cmd == STOP:
                nbsys.write(ack_fd, nbsys.voidptr(ev.ctypes.data), 8)
                return
            if mode == HOLD and cmd != HOLD:
                while True:  # the fd is non-blocking: read until the queue is empty
                    n = read_messages(uffd, msgs)
                    if n <= 0:
                        break
                    _process(uffd, msgs, n, HOLD, base, npages, store_addr, ctl, resident, touched, log, bufs, ts)
            mode = cmd
            ctl[C_MODE] = mode
            nbsys.write(ack_fd, nbsys.voidptr(ev.ctypes.data), 8)
        if not faults:
            continue
        n = read_messages(uffd, msgs)
        _process(uffd, msgs, n, mode, base, npages, store_addr, ctl, resident, touched, log, bufs, ts)


@njit(nogil=True, cache=True)
def range_ioctl(uffd, request, runs, base, mode):
    """One 24-byte ``{range.start, range.len, mode}`` ioctl (WRITEPROTECT, RWPROTECT) per run.

    Returns the number of calls, or -(i + 1) when run *i* failed.
    """
    arg = np.zeros(3, np.int64)
    for i in range(runs.shape[0]):
        arg[0] = base + runs[i, 0] * PAGE
        arg[1] = runs[i, 1] * PAGE
        arg[2] = mode
        if nbsys.ioctl(uffd, request, nbsys.voidptr(arg.ctypes.data)) != 0:
            return -(i + 1)
    return runs.shape[0]


@njit(nogil=True, cache=True)
def write_out(runs, src, store_fd):
    """``pwrite`` every run from *src* (the VMM's view) to the store at the same offset.

    Returns bytes written, or -(i + 1) when run *i* failed.
    """
    total = 0
    for i in range(runs.shape[0]):
        off = runs[i, 0] * PAGE
        n = runs[i, 1] * PAGE
        if nbsys.pwrite(store_fd, nbsys.voidptr(src + off), n, off) != n:
            return -(i + 1)
        total += n
    return total


@njit(nogil=True, cache=True)
def _drop_span(fd, addr, first, count, punch):
    if punch:
        return nbsys.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, first * PAGE, count * PAGE)
    return nbsys.madvise(nbsys.voidptr(addr + first * PAGE), count * PAGE, MADV_DONTNEED)


@njit(nogil=True, cache=True)
def drop(runs, fd, addr, punch, resident, touched, rescue, rescued, out):
    """Drop every page of *runs* from memory: ``fallocate(PUNCH_HOLE|KEEP_SIZE)`` on the memfd
    (*punch*) or ``MADV_DONTNEED`` on the mapping. Each page is marked non-resident *before*
    its drop, so the handler's refault (which marks it resident) always comes after.

    With *rescue*, pages the handler saw touched in the window are kept (``rescued[p] = 1``).
    out = [pages dropped, calls, failed run + 1 or 0].
    """
    out[0] = 0
    out[1] = 0
    out[2] = 0
    for i in range(runs.shape[0]):
        first = runs[i, 0]
        end = first + runs[i, 1]
        p = first
        while p < end:
            if rescue and touched[p]:
                rescued[p] = 1
                p += 1
                continue
            q = p
            while q < end and not (rescue and touched[q]):
                resident[q] = 0
                q += 1
            if _drop_span(fd, addr, p, q - p, punch) != 0:
                for r in range(p, q):
                    resident[r] = 1
                out[2] = i + 1
                return
            out[0] += q - p
            out[1] += 1
            p = q


@njit(nogil=True, cache=True)
def restore(uffd, base, store_addr, resident):
    """``UFFDIO_COPY`` every non-resident page back from the store (vCPUs stopped).

    Returns the pages restored, or -(p + 1) for the first page that failed.
    """
    copy = np.zeros(5, np.int64)
    done = 0
    for p in range(resident.size):
        if resident[p]:
            continue
        copy[0] = base + p * PAGE
        copy[1] = store_addr + p * PAGE
        copy[2] = PAGE
        copy[3] = 0
        copy[4] = 0
        if nbsys.ioctl(uffd, UFFDIO_COPY, nbsys.voidptr(copy.ctypes.data)) != 0 or copy[4] != PAGE:
            return -(p + 1)
        resident[p] = 1
        done += 1
    return done


def runs_of(mask: np.ndarray) -> np.ndarray:
    """int64[n, 2] (first page, pages) of every maximal run of True in *mask*."""
    m = np.concatenate(([False], mask.astype(bool), [False]))
    edges = np.flatnonzero(m[1:] != m[:-1])
    starts, ends = edges[0::2], edges[1::2]
    return np.stack([starts, ends - starts], axis=1).astype(np.int64) if starts.size else np.zeros((0, 2), np.int64)


def warmup() -> None:
    """Compile (or load) every loop outside a measured run."""
    import os

    empty = np.zeros((0, 2), np.int64)
    range_ioctl(-1, 0, empty, 0, 0)
    write_out(empty, 0, -1)
    drop(empty, -1, 0, True, np.zeros(1, np.uint8), np.zeros(1, np.uint8), False, np.zeros(1, np.uint8),
         np.zeros(3, np.int64))
    restore(-1, 0, 0, np.ones(1, np.uint8))
    cmd, ack = os.eventfd(1, os.EFD_CLOEXEC), os.eventfd(0, os.EFD_CLOEXEC)
    try:
        ctl = np.zeros(CTL_SLOTS, np.int64)
        ctl[C_CMD] = STOP
        serve(-1, cmd, ack, 0, 1, 0, ctl, np.ones(1, np.uint8), np.zeros(1, np.uint8), np.zeros((1, 4), np.int64))
    finally:
        os.close(cmd)
        os.close(ack)
