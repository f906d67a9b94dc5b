"""Idle page tracking: /sys/kernel/mm/page_idle/bitmap (Documentation/admin-guide/mm/idle_page_tracking.rst).

``CONFIG_IDLE_PAGE_TRACKING``; the bitmap is root-only (0600). Native-endian u64 words,
PFN *i* is bit ``i % 64`` of word ``i // 64``; set = idle. Every read and write must start
on an 8-byte boundary and be a multiple of 8 bytes (EINVAL otherwise); past the last PFN
gives ENXIO. Writing ORs bits in (marks idle, clearing the Accessed bits of every PTE
mapping the page through rmap); reading re-checks idle-marked pages. Only user LRU pages
are tracked; a huge page's Idle flag lives on its head PFN.

Falsely idle pages under MGLRU (``mglru.enabled() & 1``): MGLRU's aging and
``folio_mark_accessed`` do not clear Idle, so page_idle under MGLRU over-reports idleness.

Bulk I/O (added for the ``idle-page`` tracker): ``bitmap_words`` groups PFNs into the sorted
unique u64 words that hold their bits and the OR of those bits per word; ``word_runs`` splits
sorted indices into runs of consecutive ones, so ``write_words``/``read_words`` issue one
``pwrite``/``preadv`` per run, never one per page. ``/proc/kpageflags`` (root, 0400; one u64
per PFN, include/uapi/linux/kernel-page-flags.h) is read the same way by ``read_kpageflags``;
the ``KPF_*`` bits idle tracking needs are defined here. ``compound_heads`` maps tail PFNs of
a large folio to their head, the only PFN whose Idle flag means anything. All raise OSError
naming the file and offset.
"""

from __future__ import annotations

import os

import numpy as np

from bench.kernel import procfs

__all__ = ["PAGE_IDLE_DIR", "PAGE_IDLE_BITMAP", "BITMAP_WORD_BYTES", "bitmap_offset", "probe",
           "KPAGEFLAGS", "KPF_REFERENCED", "KPF_LRU", "KPF_ACTIVE", "KPF_MMAP", "KPF_ANON", "KPF_SWAPBACKED",
           "KPF_COMPOUND_HEAD", "KPF_COMPOUND_TAIL", "KPF_HUGE", "KPF_UNEVICTABLE", "KPF_THP", "KPF_ZERO_PAGE",
           "KPF_IDLE", "MAX_FOLIO_ORDER", "bitmap_words", "word_runs", "write_words", "read_words",
           "read_kpageflags", "read_kpageflags_runs", "compound_heads", "sorted_unique"]

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


# ---------------------------------------------------------------- /proc/kpageflags
# include/uapi/linux/kernel-page-flags.h (bit numbers; the flags word has 1 << bit set).

KPAGEFLAGS = "/proc/kpageflags"
KPF_REFERENCED = 2
KPF_LRU = 5
KPF_ACTIVE = 6
KPF_MMAP = 11
KPF_ANON = 12
KPF_SWAPBACKED = 14
KPF_COMPOUND_HEAD = 15
KPF_COMPOUND_TAIL = 16
KPF_HUGE = 17  # hugetlb
KPF_UNEVICTABLE = 18
KPF_THP = 22
KPF_ZERO_PAGE = 24
KPF_IDLE = 25  # 4.3+; stale for PTE accesses until the bitmap is read

# Largest folio a tail can belong to when searching for its head: PMD order on x86-64 (2 MiB).
# Larger (PUD-mapped, 1 GiB) folios are hugetlb, which is never on an LRU.
MAX_FOLIO_ORDER = 9

_U64 = np.dtype("<u8") if np.little_endian else np.dtype(">u8")  # the files are native-endian


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique(values) by sorting: numpy 2.4's np.unique hashes instead, and took 13 ms for
    32,768 PFNs here where np.sort takes 0.3 ms (its default kind: kind="stable" took 3.5 ms)."""
    values = np.sort(values)
    return values[np.r_[True, values[1:] != values[:-1]]] if values.size else values


def bitmap_words(pfns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(words, values): the sorted unique bitmap word indices holding *pfns*' bits, and per
    word the OR of those bits. Duplicate PFNs are fine; no Python loop over pages."""
    pfns = sorted_unique(np.asarray(pfns, dtype=np.uint64))
    if not pfns.size:
        return np.empty(0, np.uint64), np.empty(0, np.uint64)
    words_of = pfns >> np.uint64(6)
    bits = np.left_shift(np.uint64(1), pfns & np.uint64(63))
    first = np.flatnonzero(np.r_[True, words_of[1:] != words_of[:-1]])
    # Distinct bits of one word: their sum is their OR.
    return words_of[first], np.add.reduceat(bits, first)


def word_runs(indices: np.ndarray) -> np.ndarray:
    """Sorted unique *indices* as runs of consecutive values: int64[n, 2] of (first position, length)."""
    indices = np.asarray(indices)
    if not indices.size:
        return np.empty((0, 2), np.int64)
    starts = np.flatnonzero(np.r_[True, np.diff(indices.astype(np.int64)) != 1])
    lengths = np.diff(np.r_[starts, indices.size])
    return np.stack([starts, lengths], axis=1).astype(np.int64)


def write_words(fd: int, words: np.ndarray, values: np.ndarray, runs: np.ndarray | None = None) -> int:
    """Mark idle: OR *values* into the bitmap at *words*, one pwrite per run; returns the pwrite count."""
    runs = word_runs(words) if runs is None else runs
    data = np.ascontiguousarray(values, dtype=_U64)
    for first, length in runs:
        offset = int(words[first]) * BITMAP_WORD_BYTES
        chunk = memoryview(data[first:first + length]).cast("B")
        done = 0
        while done < len(chunk):
            try:
                done += os.pwrite(fd, chunk[done:], offset + done)
            except OSError as e:
                raise OSError(e.errno, f"{e.strerror} (pwrite of {len(chunk)} bytes at offset {offset})",
                              PAGE_IDLE_BITMAP) from None
    return len(runs)


def _pread_runs(fd: int, indices: np.ndarray, runs: np.ndarray, path: str, item: int = 8) -> np.ndarray:
    """u64 items at sorted *indices* of an 8-byte-per-item file, one preadv per run; past EOF reads 0."""
    out = np.zeros(len(indices), dtype=_U64)
    raw = memoryview(out).cast("B")
    for first, length in runs:
        offset = int(indices[first]) * item
        want = int(length) * item
        base = int(first) * item
        done = 0
        while done < want:
            try:
                n = os.preadv(fd, [raw[base + done:base + want]], offset + done)
            except OSError as e:
                raise OSError(e.errno, f"{e.strerror} (read of {want} bytes at offset {offset})", path) from None
            if n <= 0:  # past the last PFN
                break
            done += n
    return out


def read_words(fd: int, words: np.ndarray, runs: np.ndarray | None = None) -> np.ndarray:
    """The bitmap words at *words* (sorted unique), one read per run. Reading re-checks idle pages."""
    runs = word_runs(words) if runs is None else runs
    return _pread_runs(fd, words, runs, PAGE_IDLE_BITMAP)


def read_kpageflags_runs(fd: int, pfns: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """kpageflags of sorted unique *pfns*, one read per run of ``word_runs(pfns)``: the reads alone."""
    return _pread_runs(fd, pfns, runs, KPAGEFLAGS)


def read_kpageflags(fd: int, pfns: np.ndarray) -> np.ndarray:
    """kpageflags of each of *pfns* (any order, duplicates allowed), read in runs of consecutive PFNs."""
    pfns = np.asarray(pfns, dtype=np.uint64)
    uniq, inverse = np.unique(pfns, return_inverse=True)
    flags = read_kpageflags_runs(fd, uniq, word_runs(uniq))
    return flags[inverse.reshape(-1)] if pfns.size else flags


def _has(flags: np.ndarray, bit: int) -> np.ndarray:
    return (flags & np.uint64(1 << bit)) != 0


def compound_heads(pfns: np.ndarray, flags: np.ndarray, flags_of) -> tuple[np.ndarray, int]:
    """(head PFN of each PFN, number of tails resolved). *flags*: kpageflags of *pfns*;
    *flags_of(pfns)* reads more. A tail's head is the first PFN at or below it, aligned to
    2, 4, ... 2**MAX_FOLIO_ORDER, that carries COMPOUND_HEAD (folios are naturally aligned,
    so that is the head of the tail's own folio); a tail whose head is not found maps to
    itself. The flags of each 2**MAX_FOLIO_ORDER block holding a tail are read in one go
    (consecutive PFNs: one read per run of blocks), not candidate by candidate."""
    pfns = np.asarray(pfns, dtype=np.uint64)
    heads = pfns.copy()
    tail = _has(flags, KPF_COMPOUND_TAIL)
    if not tail.any():
        return heads, 0
    tails = pfns[tail]
    shift = np.uint64(MAX_FOLIO_ORDER)
    block_pfns = np.uint64(1 << MAX_FOLIO_ORDER)
    blocks = sorted_unique(tails >> shift)
    span = (blocks[:, None] << shift) + np.arange(1 << MAX_FOLIO_ORDER, dtype=np.uint64)
    span_flags = np.asarray(flags_of(span.ravel()), dtype=np.uint64).reshape(len(blocks), -1)
    row = np.searchsorted(blocks, tails >> shift)
    found = np.zeros(tails.size, dtype=bool)
    resolved = tails.copy()
    for order in range(1, MAX_FOLIO_ORDER + 1):
        todo = ~found
        if not todo.any():
            break
        candidates = tails[todo] & ~np.uint64((1 << order) - 1)
        is_head = _has(span_flags[row[todo], (candidates % block_pfns).astype(np.int64)], KPF_COMPOUND_HEAD)
        idx = np.flatnonzero(todo)[is_head]
        resolved[idx] = candidates[is_head]
        found[idx] = True
    heads[tail] = resolved
    return heads, int(found.sum())
