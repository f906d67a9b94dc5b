"""A workload whose every page can prove it is intact: the "vCPU" side of the eviction workflow.

Page format (4 KiB = 512 little-endian u64 words; ``PAGE_WORDS``):

    word 0        tag: ``MAGIC << 32 | page index``  (which page this is)
    word 1        sequence number: writes applied to this page's own content
    words 2..510  payload
    word 511      checksum: ``SUM_BASE + sum(word[i] * WEIGHTS[i] for i in 0..510)`` mod 2**64

``WEIGHTS`` are fixed odd 64-bit constants (splitmix64 of the word index), so the checksum of
a page changes whenever any single word does, and an all-zero page does not check out.

A write is read-modify-write on the page itself: read the checksum, replace ``words_per_write``
payload words at random positions (each on its own cache line, most likely), then
``seq = seq + 1`` and ``checksum += delta`` -- the new sequence number comes *from the page*,
the checksum is updated incrementally. Then the writer bumps its own record of that page
(``record[p] += 1``: completed writes). So every fault is sticky: a write that the memory
loses leaves the page's sequence number behind the record forever (later writes continue
from the stale value), and a page assembled from two moments of a write (a copy taken in the
middle of one, or a refetch between its stores) keeps a checksum that does not match, whatever
is written after. After a run, ``verify`` compares every page with the record:

    zeroed     every word 0 (the page's content is gone)
    misplaced  tag is not this page's (another page's content, or garbage)
    torn       checksum mismatch
    lost       seq < record (``record - seq`` writes lost)
    ahead      seq > record (cannot happen without a bug in the checker itself)

Concurrency: thread *t* owns the pages ``p % threads == t`` and is the only writer of its
pages, so no atomics are needed and the record is exact; it may read only its own pages as
well, and each read checks the tag and that the page's sequence number equals the record
(``stale`` counts reads that saw anything else: lost data observed while the run goes on).
Disjoint ownership is what a vCPU-per-page-set model gives anyway; shared pages would need
atomic increments of the sequence number and a lock around the multi-word update, which
would add its own stalls to the ones being measured.

Access pattern: each page is hot with probability ``hot_frac`` (seeded, scattered, so cold
pages form many short runs); an access picks a hot page of its thread with probability
``hot_weight``, else a cold one, uniformly; it writes with probability ``write_ratio``.
``reads``/``writes`` count accesses *started* per page (before the access, so an access that
blocks in a fault counts from the moment it was attempted): the eviction driver snapshots
them to know exactly which pages were touched inside an eviction window.

The loop (``vcpu``) is numba ``nogil``: a page being evicted may block the access in a
synchronous userfaultfd fault that another thread resolves, and a thread holding the GIL
there would deadlock it. It times every batch of ``batch`` accesses with ``clock_gettime``
from compiled code (as ``workloads._batches`` does), so a stall the kernel imposes shows up
in the batch it hit. This module is not a ``Workload`` pattern (its truth is the page
content, not an access set), so the pattern registry does not list it.
"""

from __future__ import annotations

import ctypes
import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

from bench.kernel.nbsys import atomic_load, monotonic_ns

__all__ = ["PAGE_BYTES", "PAGE_WORDS", "STATUS_NAMES", "IntegrityWorkload", "Verdict", "page_array",
           "init_pages", "write_page", "verify", "checksum", "VERSION"]

PAGE_BYTES = 4096
PAGE_WORDS = PAGE_BYTES // 8
TAG, SEQ, SUM = 0, 1, PAGE_WORDS - 1
PAYLOAD_FIRST, PAYLOAD_WORDS = 2, PAGE_WORDS - 3      # words 2..510
MAGIC = 0x48424E43                                      # "HBNC"
OK, LOST, TORN, MISPLACED, ZEROED, AHEAD = 0, 1, 2, 3, 4, 5
STATUS_NAMES = ("ok", "lost", "torn", "misplaced", "zeroed", "ahead")
VERSION = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S13, _S7, _S17 = np.uint64(13), np.uint64(7), np.uint64(17)
_S24, _S30, _S27, _S31, _S33, _S48 = (np.uint64(x) for x in (24, 30, 27, 31, 33, 48))
_MASK16, _MASK24 = np.uint64(0xFFFF), np.uint64(0xFFFFFF)
_ONE = np.uint64(1)
_TAG_HIGH = np.uint64(MAGIC << 32)
SUM_BASE = np.uint64(0x5EEDC0DE12345678)


def _splitmix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & (2**64 - 1)
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
    return x ^ (x >> 31)


WEIGHTS = np.array([_splitmix(0xC0FFEE + i) | 1 for i in range(PAGE_WORDS - 1)], dtype=np.uint64)


@njit(inline="always")
def _mix(x):
    x = x + _GOLDEN
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


@njit(inline="always")
def _xorshift(s):
    s ^= s << _S13
    s ^= s >> _S7
    s ^= s << _S17
    return s


@njit(inline="always")
def _tag(p):
    return _TAG_HIGH | np.uint64(p)


@njit(nogil=True, cache=True)
def checksum(mem, page, weights):
    """The checksum page *page* of *mem* (u64 words) should carry in its last word."""
    b = page * PAGE_WORDS
    acc = SUM_BASE
    for i in range(PAGE_WORDS - 1):
        acc += mem[b + i] * weights[i]
    return acc


@njit(nogil=True, cache=True)
def init_pages(mem, npages, weights, seed):
    """Give every page its initial content: tag, seq 0, seeded payload, checksum."""
    s = np.uint64(seed)
    for p in range(npages):
        b = p * PAGE_WORDS
        mem[b + TAG] = _tag(p)
        mem[b + SEQ] = 0
        for i in range(PAYLOAD_FIRST, PAYLOAD_FIRST + PAYLOAD_WORDS):
            mem[b + i] = _mix(s ^ (np.uint64(p) << _S24) ^ np.uint64(i))
        mem[b + SUM] = checksum(mem, p, weights)


@njit(inline="always")
def _write(mem, p, weights, words, state):
    """One write: payload words, then seq + 1, then the checksum, each from the page's own content."""
    b = p * PAGE_WORDS
    c = mem[b + SUM]
    delta = np.uint64(0)
    for _ in range(words):
        state = _xorshift(state)
        pos = PAYLOAD_FIRST + np.int64((state >> _S33) % np.uint64(PAYLOAD_WORDS))
        old = mem[b + pos]
        new = state * _GOLDEN
        mem[b + pos] = new
        delta += (new - old) * weights[pos]
    mem[b + SEQ] = mem[b + SEQ] + _ONE
    mem[b + SUM] = c + delta + weights[SEQ]
    return state


@njit(nogil=True, cache=True)
def _write_page(mem, p, weights, words, state):
    return _write(mem, p, weights, words, state)


def write_page(mem: np.ndarray, p: int, weights: np.ndarray, words: int, state: int) -> int:
    """A single write outside the vCPU loop (tests, hand-made corruption). Returns the new state."""
    return int(_write_page(mem, p, weights, words, np.uint64(state & (2**64 - 1))))


@njit(nogil=True, cache=True)
def vcpu(mem, weights, hot, cold, record, reads, writes, stop_addr, deadline_ns, batch, hot_thr, write_thr,
         words, state, latencies, starts):
    """Access batch after batch until the int64 at *stop_addr* is non-zero or *deadline_ns* passes.

    Returns (batches, stale reads, read checksum). ``latencies[k]``/``starts[k]``: ns and start
    (CLOCK_MONOTONIC ns) of batch k, while slots last.
    """
    ts = np.zeros(2, np.int64)
    s = np.uint64(state) | _ONE
    stale = 0
    acc = np.uint64(0)
    k = 0
    nhot, ncold = hot.size, cold.size
    while atomic_load(stop_addr) == 0:
        t0 = monotonic_ns(ts)
        for _ in range(batch):
            s = _xorshift(s)
            use_hot = (s & _MASK24) < np.uint64(hot_thr)
            if (use_hot and nhot > 0) or ncold == 0:
                p = hot[np.int64((s >> _S24) % np.uint64(nhot))]
            else:
                p = cold[np.int64((s >> _S24) % np.uint64(ncold))]
            if ((s >> _S48) & _MASK16) < np.uint64(write_thr):
                writes[p] += 1
                s = _write(mem, p, weights, words, s)
                record[p] += 1
            else:
                reads[p] += 1
                b = p * PAGE_WORDS
                if mem[b + TAG] != _tag(p) or mem[b + SEQ] != record[p]:
                    stale += 1
                acc += mem[b + PAYLOAD_FIRST + np.int64((s >> _S33) % np.uint64(PAYLOAD_WORDS))]
        t1 = monotonic_ns(ts)
        if k < latencies.size:
            latencies[k] = t1 - t0
            starts[k] = t0
        k += 1
        if t1 >= deadline_ns:
            break
    return k, stale, acc


@njit(nogil=True, cache=True)
def _verify(mem, npages, record, weights, status, behind):
    for p in range(npages):
        b = p * PAGE_WORDS
        zero = True
        for i in range(PAGE_WORDS):
            if mem[b + i] != 0:
                zero = False
                break
        if zero:
            status[p] = ZEROED
            continue
        if mem[b + TAG] != _tag(p):
            status[p] = MISPLACED
            continue
        if checksum(mem, p, weights) != mem[b + SUM]:
            status[p] = TORN
            continue
        seq = mem[b + SEQ]
        if seq < record[p]:
            status[p] = LOST
            behind[p] = record[p] - seq
        elif seq > record[p]:
            status[p] = AHEAD
        else:
            status[p] = OK


@dataclass(frozen=True)
class Verdict:
    """The checker's answer for one run: a status per page and counts per kind."""

    status: np.ndarray        # uint8[npages], codes as STATUS_NAMES
    lost_writes: int          # sum of record - seq over lost pages
    stale_reads: int          # reads that saw a wrong tag or sequence number while running

    def count(self, name: str) -> int:
        return int((self.status == STATUS_NAMES.index(name)).sum())

    @property
    def bad_pages(self) -> int:
        return int((self.status != OK).sum())

    @property
    def clean(self) -> bool:
        return self.bad_pages == 0 and self.stale_reads == 0

    def as_dict(self) -> dict:
        out = {f"{name}_pages": self.count(name) for name in STATUS_NAMES[1:]}
        out.update(bad_pages=self.bad_pages, lost_writes=self.lost_writes, stale_reads=self.stale_reads,
                   verdict="clean" if self.clean else "data-loss")
        return out


def verify(mem: np.ndarray, record: np.ndarray, stale_reads: int = 0) -> Verdict:
    """Check every page of *mem* (u64 view) against *record* (completed writes per page)."""
    npages = record.size
    status = np.zeros(npages, np.uint8)
    behind = np.zeros(npages, np.uint64)
    _verify(mem, npages, record, WEIGHTS, status, behind)
    return Verdict(status, int(behind.sum()), int(stale_reads))


def page_array(addr: int, size: int) -> np.ndarray:
    """u64 view of ``[addr, addr + size)``; creating it touches no memory."""
    return np.ctypeslib.as_array((ctypes.c_uint64 * (size // 8)).from_address(addr))


class IntegrityWorkload:
    """Threads of ``vcpu`` over one mapping, with the record the checker needs.

    ``start(mem)`` launches the threads (``mem`` is the u64 view the vCPUs use); ``stop()``
    asks them to finish their batch and joins them. ``latencies()``/``starts()`` give every
    recorded batch, all threads concatenated.
    """

    params = ("threads", "seed", "hot_frac", "hot_weight", "write_ratio", "batch", "words_per_write")

    def __init__(self, npages: int, *, threads: int = 2, seed: int = 1, hot_frac: float = 0.25,
                 hot_weight: float = 0.99, write_ratio: float = 0.5, batch: int = 64, words_per_write: int = 8):
        if not 0 < npages < 1 << 32:
            raise ValueError(f"npages {npages} out of range")
        if threads < 1 or batch < 1 or words_per_write < 1:
            raise ValueError("threads, batch and words_per_write must be positive")
        for name, value in (("hot_frac", hot_frac), ("hot_weight", hot_weight), ("write_ratio", write_ratio)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        self.npages, self.threads, self.seed = npages, threads, seed
        self.hot_frac, self.hot_weight, self.write_ratio = hot_frac, hot_weight, write_ratio
        self.batch, self.words_per_write = batch, words_per_write
        rng = np.random.default_rng(seed)
        self.hot = rng.random(npages) < hot_frac
        pages = np.arange(npages, dtype=np.int64)
        self._lists = [(pages[(pages % threads == t) & self.hot], pages[(pages % threads == t) & ~self.hot])
                       for t in range(threads)]
        self.record = np.zeros(npages, np.uint64)
        self.reads = np.zeros(npages, np.uint64)
        self.writes = np.zeros(npages, np.uint64)
        self._stop = np.zeros(1, np.int64)
        self._threads: list[threading.Thread] = []
        self._lat: list[np.ndarray] = []
        self._starts: list[np.ndarray] = []
        self._done: list[tuple[int, int]] = []

    def describe(self) -> dict:
        return {name: getattr(self, name) for name in self.params} | {"workload_version": VERSION}

    def init(self, mem: np.ndarray) -> None:
        """Write every page's initial content (through any mapping of the memory) and zero the record."""
        init_pages(mem, self.npages, WEIGHTS, self.seed)
        for a in (self.record, self.reads, self.writes):
            a[:] = 0

    def warmup(self) -> None:
        """Compile (or load from cache) every loop outside any measured run."""
        mem = np.zeros(PAGE_WORDS * 2, np.uint64)
        init_pages(mem, 2, WEIGHTS, 1)
        write_page(mem, 0, WEIGHTS, 1, 1)
        stop = np.ones(1, np.int64)
        one = np.zeros(1, np.uint64)
        vcpu(mem, WEIGHTS, np.zeros(1, np.int64), np.zeros(0, np.int64), one, one.copy(), one.copy(),
             stop.ctypes.data, 0, 1, 0, 0, 1, np.uint64(1), np.zeros(1, np.int64), np.zeros(1, np.int64))
        _verify(mem, 2, np.zeros(2, np.uint64), WEIGHTS, np.zeros(2, np.uint8), np.zeros(2, np.uint64))

    def start(self, mem: np.ndarray, *, seconds: float = 3600.0, slots: int = 1 << 19) -> None:
        """Start the vCPU threads on *mem*; they run until ``stop()`` (or *seconds*, a safety net)."""
        self._stop[0] = 0
        deadline = time.monotonic_ns() + int(seconds * 1e9)
        hot_thr = int(self.hot_weight * (1 << 24))
        write_thr = int(self.write_ratio * (1 << 16))
        self._lat = [np.zeros(slots, np.int64) for _ in range(self.threads)]
        self._starts = [np.zeros(slots, np.int64) for _ in range(self.threads)]
        self._done = [(0, 0)] * self.threads

        def work(t: int) -> None:
            hot, cold = self._lists[t]
            k, stale, _ = vcpu(mem, WEIGHTS, hot, cold, self.record, self.reads, self.writes, self._stop.ctypes.data,
                               deadline, self.batch, hot_thr, write_thr, self.words_per_write,
                               np.uint64(_splitmix(self.seed * 1_000_003 + t)), self._lat[t], self._starts[t])
            self._done[t] = (int(k), int(stale))

        self._threads = [threading.Thread(target=work, args=(t,), name=f"hotbench-vcpu-{t}", daemon=True)
                         for t in range(self.threads)]
        for th in self._threads:
            th.start()

    @property
    def thread_ids(self) -> list[int]:
        """The running vCPU threads' kernel thread ids (to read their CPU affinity)."""
        return [th.native_id for th in self._threads]

    def wait_running(self, timeout: float = 60.0) -> bool:
        """Wait until every thread has made an access (threads start, and compile if the cache is cold)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.reads[t::self.threads].any() or self.writes[t::self.threads].any()
                   for t in range(self.threads)):
                return True
            time.sleep(0.001)
        return False

    def request_stop(self) -> None:
        """Ask the threads to stop after their current batch (without waiting)."""
        self._stop[0] = 1

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the threads to stop after their current batch and join them; False if one is still stuck."""
        self.request_stop()
        for th in self._threads:
            th.join(timeout)
        return not any(th.is_alive() for th in self._threads)

    @property
    def stale_reads(self) -> int:
        return sum(stale for _, stale in self._done)

    @property
    def batches(self) -> int:
        return sum(k for k, _ in self._done)

    def latencies(self) -> np.ndarray:
        return np.concatenate([lat[:min(k, lat.size)] for lat, (k, _) in zip(self._lat, self._done)])

    def starts(self) -> np.ndarray:
        return np.concatenate([st[:min(k, st.size)] for st, (k, _) in zip(self._starts, self._done)])

    def verify(self, mem: np.ndarray) -> Verdict:
        return verify(mem, self.record, self.stale_reads)
