"""Shared numba code: the access-stream generators, the touch loops and their truth replays.

Every access of interval *i*, thread *t* comes from an xorshift64 stream whose start state
is ``stream_state(seed, i, t)`` (splitmix64 hashing, in Python, once per thread and interval).
A *touch* kernel walks that stream and loads or stores one byte per access; the matching
*record* kernel walks the very same stream (the per-access step is one ``inline='always'``
helper that both call) and only counts, per page, the reads and the writes. So ground truth
costs nothing in the measured loop and can never diverge from it.

Four generator kinds cover every pattern:

  segments    a table of segments (start page, pages, cumulative weight, write threshold);
              an access picks a segment by weight, then a page uniformly inside it
              (a one-segment table takes a leaner loop, touch_span)
  alias       a per-page alias table (Walker/Vose: one uint64 per page, a 32-bit threshold
              and a 32-bit alias page): one draw picks a page, a second word keeps it or
              takes its alias; one table load per access and no data-dependent branch
  sequential  a cursor walking start, start+stride, ... < start+span, wrapping; the cursor
              position of any access is arithmetic, so truth replays exactly (a full batch
              of a long sweep is made in an interleaved order: see SWEEP_ORDER)
  mixed       a segment table whose rows are either random (a page uniformly inside) or
              sequential (a byte cursor per row walking the segment by its stride, back to
              the segment's start past its end, as DAMON's masim does); the cursors start
              from the table and live in the call, so truth replays exactly (masim configs)

The touch kernels work in batches of ``BATCH`` accesses: first the generator fills a small
buffer with the batch's offsets (write flag in the low bit), then a second loop does the
loads and stores. A random-access loop is memory bound, and how many cache misses the CPU
keeps in flight depends on how many loop iterations fit in its reorder window: the access
loop has a handful of instructions per access whatever the pattern, so every pattern keeps
as many misses in flight as the bare loop (one loop mixing generator and access measured
0.76-0.85x the bare loop for hotcold, phase and masim; batched, 0.93-0.97x the batched
bare loop, which is itself ~10 % faster than the unbatched one). The accesses, their order
and the bytes written are those of the unbatched loop: truth is unchanged.

Every access also picks a 64-byte line inside its page, and read versus write (with 22-bit
resolution: ``write_threshold``). Segment weights have 32-bit resolution.
Reads add the byte to a checksum the kernel returns, so the compiler cannot drop the loads;
writes store a never-zero byte, so a test can see which pages were written.

The touch kernels are ``nogil``: a tracker may make the first touch of a page take a
synchronous fault that another Python thread resolves, and a toucher holding the GIL would
deadlock it. Nothing in the loop allocates, calls Python or checks bounds (callers validate
every table against the arena once, before the loop).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "LINE", "MAX_PAGE_SIZE", "SEG_START", "SEG_PAGES", "SEG_CUM", "SEG_WTHR", "SEG_COLUMNS",
    "MIX_STRIDE", "MIX_OFFSET", "MIX_COLUMNS", "ONE32", "ONE22", "MASK64", "BATCH",
    "touch_segments", "touch_span", "record_segments", "touch_mixed", "record_mixed",
    "touch_alias", "record_alias", "alias_table",
    "touch_sequential", "record_sequential", "bare_touch",
    "mix64", "stream_key", "stream_state", "hash_array", "write_threshold",
    "DOMAIN_STREAM", "DOMAIN_ZIPF_PERMUTATION", "DOMAIN_PHASE_SLOT",
]

LINE = 64                          # bytes per cache line; one access touches one line
BATCH = 64                         # accesses generated before they are made (see above)
MAX_PAGE_SIZE = 1 << 16            # line index uses random bits 0..9 (see _place)
ONE32 = 1 << 32                    # segment choice is 32-bit fixed point
ONE22 = 1 << 22                    # write probabilities are 22-bit fixed point
MASK64 = (1 << 64) - 1

# Columns of a segment table (uint64[k, 4]): first page, pages, cumulative weight (32-bit
# fixed point, the last row's exactly 2**32), write threshold.
SEG_START, SEG_PAGES, SEG_CUM, SEG_WTHR = 0, 1, 2, 3
SEG_COLUMNS = 4
# A mixed table (uint64[k, 6]) adds: stride in bytes (0: random access) and the byte offset,
# inside the segment, where that row's cursor starts.
MIX_STRIDE, MIX_OFFSET = 4, 5
MIX_COLUMNS = 6

# Every constant is a uint64 so numba never mixes signed and unsigned (it would go float64).
_SCRAMBLE = np.uint64(0x2545F4914F6CDD1D)   # odd: spreads a small seed over 64 bits
_WEYL = np.uint64(0x9E3779B97F4A7C15)        # odd, 2**64 / golden ratio
_S7, _S10 = np.uint64(7), np.uint64(10)
_S13, _S17, _S32 = np.uint64(13), np.uint64(17), np.uint64(32)
_LOW22 = np.uint64(ONE22 - 1)
_LOW32 = np.uint64(ONE32 - 1)
_ZERO = np.uint64(0)
_ONE = np.uint64(1)
_LINE = np.uint64(LINE)
_COUNT = np.uint32(1)
_BATCH = np.int64(BATCH)


# ---- the stream ------------------------------------------------------------------------

@njit(inline="always")
def _next(state):
    # Marsaglia's xorshift64 (13, 7, 17), the bare loop's generator. A random-access loop is
    # memory bound and every extra instruction per access leaves fewer cache misses in
    # flight: xorshift64* (one multiply more) measured 5-10% slower than the bare loop.
    # Its weaker low bits only pick the line and the read/write coin.
    state ^= state << _S13
    state ^= state >> _S7
    state ^= state << _S17
    return state, state


@njit(inline="always")
def _below(r32, n):
    # Lemire's multiply-shift: a 32-bit random value scaled to [0, n) without a division.
    return (r32 * n) >> _S32


@njit(inline="always")
def _place(r, start, pages, wthr, line_mask):
    # One random word -> (page, line, write): page from the high 32 bits, line from the low
    # bits, write from bits 10..31 against a 22-bit threshold.
    page = start + _below(r >> _S32, pages)
    return page, r & line_mask, ((r >> _S10) & _LOW22) < wthr


@njit(inline="always")
def _second(r):
    # A second random word for one multiply, where a second xorshift step would cost six
    # instructions (see _next). r ranges over runs of consecutive values for any event of
    # probability >= 2**-32, and r * odd is a Weyl sequence over such a run: its high half
    # stays uniform and its low half runs through a bijection of r's low half.
    return r * _WEYL


@njit(inline="always")
def _segment_step(state, table, line_mask):
    # The high 32 bits pick the segment by cumulative weight; _second(r) places the access.
    # An early-exit search, not a branch-free one: the predicted branch lets the CPU start
    # the access before the comparison resolves (branch-free and alias-method variants
    # measured 10-25% slower in hotcold and masim).
    state, r = _next(state)
    u = r >> _S32
    k = 0
    while u >= table[k, SEG_CUM]:    # last row's cumulative weight is 2**32 > u
        k += 1
    page, line, write = _place(_second(r), table[k, SEG_START], table[k, SEG_PAGES],
                               table[k, SEG_WTHR], line_mask)
    return state, page, line, write


@njit(inline="always")
def _mixed_step(state, table, cursors, line_mask, psize):
    # A segment by weight as in _segment_step; a random row places the access uniformly, a
    # sequential row at its cursor, which then moves on by the row's stride (back to the
    # segment's first byte once past its end, as masim's do_seq_* do).
    state, r = _next(state)
    u = r >> _S32
    k = 0
    while u >= table[k, SEG_CUM]:
        k += 1
    stride = table[k, MIX_STRIDE]
    if stride == _ZERO:
        page, line, write = _place(_second(r), table[k, SEG_START], table[k, SEG_PAGES], table[k, SEG_WTHR],
                                   line_mask)
        return state, page, line, write
    at = cursors[k]
    page = table[k, SEG_START] + at // psize
    line = (at % psize) // _LINE
    at += stride
    if at >= table[k, SEG_PAGES] * psize:
        at = _ZERO
    cursors[k] = at
    write = ((_second(r) >> _S10) & _LOW22) < table[k, SEG_WTHR]
    return state, page, line, write


@njit(inline="always")
def _alias_step(state, table, wthr, line_mask):
    # The high 32 bits pick a page (bucket) uniformly; the high half of _second(r) keeps it
    # when below the bucket's threshold (table >> 32), else takes its alias (low 32 bits).
    # LLVM makes the choice a conditional move: no branch to mispredict.
    state, r = _next(state)
    bucket = _below(r >> _S32, np.uint64(table.size))
    entry = table[bucket]
    r2 = _second(r)
    page = bucket if (r2 >> _S32) < (entry >> _S32) else entry & _LOW32
    _, line, write = _place(r2, _ZERO, _ZERO, wthr, line_mask)
    return state, page, line, write


@njit(inline="always")
def _sequential_step(state, pos, start, stride, span, wthr, line_mask):
    state, r = _next(state)
    page = start + pos * stride
    pos += _ONE
    if pos == span:
        pos = _ZERO
    _, line, write = _place(r, _ZERO, _ZERO, wthr, line_mask)
    return state, pos, page, line, write


@njit(inline="always")
def _line_mask(page_size):
    return np.uint64(page_size // LINE - 1)


@njit(inline="always")
def _stamp(j):
    # The byte a write stores: low bits of the access counter, odd so never zero.
    return np.uint8((j & 0xFF) | 1)


# ---- touch kernels (the measured loop) and their replays --------------------------------
# Arguments: arena uint8[C] (touch) or reads/writes uint32[npages] (record), page_size, n
# accesses, the stream's start state, then the generator's table or scalars. The Python
# side passes every scalar as the numpy type annotated, so each kernel compiles once.
# Offsets are uint64 so numba emits no negative-index wraparound check per access.

@njit(inline="always")
def _access(arena, at, write, j, checksum):
    if write:
        arena[at] = _stamp(j)
    else:
        checksum += arena[at]
    return checksum


@njit(inline="always")
def _encode(at, write):
    # A batch buffer entry: the byte offset, shifted, with the write flag in bit 0.
    return (at << _ONE) | np.uint64(write)


@njit(inline="always")
def _access_batch(arena, offsets, m, first, checksum):
    # The second half of a batch: access j = first + b is the one the generator made b-th.
    for b in range(m):
        entry = offsets[b]
        checksum = _access(arena, entry >> _ONE, entry & _ONE, first + b, checksum)
    return checksum


# A full batch of a long sequential sweep is made in this order: access i of the batch is the
# (i * SWEEP_ORDER mod BATCH)-th the cursor produced. Odd, so a permutation; near BATCH / golden
# ratio, so consecutive accesses land ~40 pages apart. In cursor order a 256 MiB sweep ran at
# 0.87-0.92x the bare loop here, while 1-64 MiB arenas, or the same pages in any scattered
# order, ran at 0.98-1.03x: this CPU serves misses to pages ascending one by one slower than
# the same misses in another order. Interleaved, the sweep runs at 0.98-1.0x.
SWEEP_ORDER = 39


@njit(inline="always")
def _access_batch_in_order(arena, offsets, m, first, checksum, order):
    # _access_batch making the b-th generated access i-th, b = i * order mod BATCH (order 1
    # for a partial batch). Keep one call site per kernel: numba keeps the arrays' reference
    # counts out of the loop only then, and an atomic increment per batch would wait for
    # every miss in flight (two call sites measured as slow as no interleaving).
    for i in range(m):
        b = (i * order) & (BATCH - 1)
        entry = offsets[b]
        checksum = _access(arena, entry >> _ONE, entry & _ONE, first + b, checksum)
    return checksum


@njit(inline="always")
def _count(reads, writes, page, write):
    if write:
        writes[page] += _COUNT
    else:
        reads[page] += _COUNT


@njit(nogil=True, cache=True)
def touch_segments(arena: np.ndarray, page_size: int, n: int, key: np.uint64,
                   table: np.ndarray) -> int:
    """Segment tables of two or more rows; one row goes to touch_span."""
    line_mask, psize = _line_mask(page_size), np.uint64(page_size)
    state, checksum = key, _ZERO
    offsets = np.empty(BATCH, np.uint64)
    for first in range(0, n, _BATCH):
        m = min(_BATCH, n - first)
        for b in range(m):
            state, page, line, write = _segment_step(state, table, line_mask)
            offsets[b] = _encode(page * psize + line * _LINE, write)
        checksum = _access_batch(arena, offsets, m, first, checksum)
    return checksum


@njit(nogil=True, cache=True)
def touch_span(arena: np.ndarray, page_size: int, n: int, key: np.uint64, start: np.uint64,
               pages: np.uint64, wthr: np.uint64) -> int:
    """A one-row segment table (uniform): one draw per access. A kernel of its own because
    inside touch_segments (one more branch) LLVM spilled the arena pointer to the stack,
    which cost ~5% against bare_touch."""
    line_mask, psize = _line_mask(page_size), np.uint64(page_size)
    state, checksum = key, _ZERO
    offsets = np.empty(BATCH, np.uint64)
    for first in range(0, n, _BATCH):
        m = min(_BATCH, n - first)
        for b in range(m):
            state, r = _next(state)
            page, line, write = _place(r, start, pages, wthr, line_mask)
            offsets[b] = _encode(page * psize + line * _LINE, write)
        checksum = _access_batch(arena, offsets, m, first, checksum)
    return checksum


@njit(nogil=True, cache=True)
def record_segments(reads: np.ndarray, writes: np.ndarray, page_size: int, n: int,
                    key: np.uint64, table: np.ndarray) -> None:
    line_mask, state = _line_mask(page_size), key
    if table.shape[0] == 1:       # replays touch_span, which one-row tables go to
        start, pages, wthr = table[0, SEG_START], table[0, SEG_PAGES], table[0, SEG_WTHR]
        for _ in range(n):
            state, r = _next(state)
            page, _line, write = _place(r, start, pages, wthr, line_mask)
            _count(reads, writes, page, write)
    else:
        for _ in range(n):
            state, page, _line, write = _segment_step(state, table, line_mask)
            _count(reads, writes, page, write)


@njit(nogil=True, cache=True)
def touch_mixed(arena: np.ndarray, page_size: int, n: int, key: np.uint64, table: np.ndarray) -> int:
    """Mixed tables (random and sequential rows); the cursors are this call's own copy."""
    line_mask, psize = _line_mask(page_size), np.uint64(page_size)
    cursors = table[:, MIX_OFFSET].copy()
    state, checksum = key, _ZERO
    offsets = np.empty(BATCH, np.uint64)
    for first in range(0, n, _BATCH):
        m = min(_BATCH, n - first)
        for b in range(m):
            state, page, line, write = _mixed_step(state, table, cursors, line_mask, psize)
            offsets[b] = _encode(page * psize + line * _LINE, write)
        checksum = _access_batch(arena, offsets, m, first, checksum)
    return checksum


@njit(nogil=True, cache=True)
def record_mixed(reads: np.ndarray, writes: np.ndarray, page_size: int, n: int, key: np.uint64,
                 table: np.ndarray) -> None:
    line_mask, psize = _line_mask(page_size), np.uint64(page_size)
    cursors = table[:, MIX_OFFSET].copy()
    state = key
    for _ in range(n):
        state, page, _line, write = _mixed_step(state, table, cursors, line_mask, psize)
        _count(reads, writes, page, write)


@njit(nogil=True, cache=True)
def touch_alias(arena: np.ndarray, page_size: int, n: int, key: np.uint64, table: np.ndarray,
                wthr: np.uint64) -> int:
    line_mask, psize = _line_mask(page_size), np.uint64(page_size)
    state, checksum = key, _ZERO
    offsets = np.empty(BATCH, np.uint64)
    for first in range(0, n, _BATCH):
        m = min(_BATCH, n - first)
        for b in range(m):
            state, page, line, write = _alias_step(state, table, wthr, line_mask)
            offsets[b] = _encode(page * psize + line * _LINE, write)
        checksum = _access_batch(arena, offsets, m, first, checksum)
    return checksum


@njit(nogil=True, cache=True)
def record_alias(reads: np.ndarray, writes: np.ndarray, page_size: int, n: int, key: np.uint64,
                 table: np.ndarray, wthr: np.uint64) -> None:
    line_mask, state = _line_mask(page_size), key
    for _ in range(n):
        state, page, _line, write = _alias_step(state, table, wthr, line_mask)
        _count(reads, writes, page, write)


@njit(nogil=True, cache=True)
def alias_table(weights: np.ndarray) -> np.ndarray:
    """Vose's alias method over pages: uint64[n], (threshold << 32) | alias, from weights >= 0
    (not all 0). Page i keeps a draw with probability threshold / 2**32, else yields alias."""
    n = weights.size
    scaled = weights * (n / weights.sum())       # mean 1
    small = np.empty(n, np.int64)
    large = np.empty(n, np.int64)
    n_small = n_large = 0
    for i in range(n):
        if scaled[i] < 1.0:
            small[n_small] = i
            n_small += 1
        else:
            large[n_large] = i
            n_large += 1
    table = np.empty(n, np.uint64)
    while n_small and n_large:
        n_small -= 1
        s = small[n_small]
        big = large[n_large - 1]
        table[s] = (np.uint64(min(scaled[s] * ONE32, ONE32 - 1)) << _S32) | np.uint64(big)
        scaled[big] = (scaled[big] + scaled[s]) - 1.0
        if scaled[big] < 1.0:                    # the donor became small itself
            n_large -= 1
            small[n_small] = big
            n_small += 1
    full = np.uint64(ONE32 - 1) << _S32          # left over (1 up to rounding): always kept
    for k in range(n_large):
        table[large[k]] = full | np.uint64(large[k])
    for k in range(n_small):
        table[small[k]] = full | np.uint64(small[k])
    return table


@njit(nogil=True, cache=True)
def touch_sequential(arena: np.ndarray, page_size: int, n: int, key: np.uint64,
                     start: np.uint64, stride: np.uint64, span: np.uint64, pos: np.uint64,
                     wthr: np.uint64) -> int:
    line_mask, psize = _line_mask(page_size), np.uint64(page_size)
    state, checksum = key, _ZERO
    # A batch of a sweep at least BATCH pages long holds BATCH distinct pages, so its order
    # decides neither the truth nor the bytes the arena ends up with; shorter sweeps keep theirs.
    interleave = span >= np.uint64(BATCH)
    offsets = np.empty(BATCH, np.uint64)
    for first in range(0, n, _BATCH):
        m = min(_BATCH, n - first)
        for b in range(m):
            state, pos, page, line, write = _sequential_step(state, pos, start, stride, span, wthr,
                                                             line_mask)
            offsets[b] = _encode(page * psize + line * _LINE, write)
        order = SWEEP_ORDER if interleave and m == _BATCH else 1
        checksum = _access_batch_in_order(arena, offsets, m, first, checksum, order)
    return checksum


@njit(nogil=True, cache=True)
def record_sequential(reads: np.ndarray, writes: np.ndarray, page_size: int, n: int,
                      key: np.uint64, start: np.uint64, stride: np.uint64, span: np.uint64,
                      pos: np.uint64, wthr: np.uint64) -> None:
    line_mask, state = _line_mask(page_size), key
    for _ in range(n):
        state, pos, page, _line, write = _sequential_step(state, pos, start, stride, span, wthr,
                                                          line_mask)
        _count(reads, writes, page, write)


@njit(nogil=True, cache=True)
def bare_touch(arena: np.ndarray, page_size: int, npages: int, n: int, seed: int,
               write_ratio: float = 0.3) -> int:
    """The cheapest loop doing the same per-access work: one plain xorshift64 draw gives a
    uniform page, a line and read/write (write with *write_ratio*), laid out as in the
    workloads and accessed in the same batches; returns the read checksum. The yardstick for
    the workloads' accesses/s: only the generator differs."""
    line_mask, psize = _line_mask(page_size), np.uint64(page_size)
    pages = np.uint64(npages)
    wthr = np.uint64(write_ratio * ONE22)
    x = np.uint64(seed) * _SCRAMBLE | _ONE           # xorshift state must be non-zero
    checksum = _ZERO
    offsets = np.empty(BATCH, np.uint64)
    for first in range(0, n, _BATCH):
        m = min(_BATCH, n - first)
        for b in range(m):
            x ^= x << _S13                        # written out: the simplest generator
            x ^= x >> _S7
            x ^= x << _S17
            page, line, write = _place(x, _ZERO, pages, wthr, line_mask)
            offsets[b] = _encode(page * psize + line * _LINE, write)
        checksum = _access_batch(arena, offsets, m, first, checksum)
    return checksum


# ---- keys, in plain Python (computed once per thread and interval, outside the loop) ----

def mix64(x: int) -> int:
    """splitmix64's finaliser on a Python int: a bijection of 64-bit values."""
    x &= MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def stream_key(seed: int, *path: int) -> int:
    """A 64-bit key for the stream named by *seed* and *path* (e.g. interval, thread).
    Chained bijections with distinct offsets per level, so nearby paths share nothing."""
    key = mix64(seed + 0x9E3779B97F4A7C15)
    for level, item in enumerate(path, start=1):
        key = mix64(key ^ ((item + level * 0xD1B54A32D192ED03) & MASK64))
    return key


def hash_array(values: np.ndarray, key: int) -> np.ndarray:
    """mix64 of (values ^ key), elementwise; numpy uint64 arithmetic wraps like the C code."""
    x = values.astype(np.uint64) ^ np.uint64(key)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


# First path element of every key, so the streams and the patterns' own seeded choices
# (zipf's permutation, phase's slots) never share a key.
DOMAIN_STREAM, DOMAIN_ZIPF_PERMUTATION, DOMAIN_PHASE_SLOT = 1, 2, 3


def stream_state(seed: int, interval: int, thread: int) -> np.uint64:
    """The generator's start state for (seed, interval, thread); never 0 (xorshift's fixpoint)."""
    return np.uint64(stream_key(seed, DOMAIN_STREAM, interval, thread) or 1)


def write_threshold(p: float) -> np.uint64:
    """Write probability *p* as the 22-bit threshold the kernels compare random bits against."""
    return np.uint64(min(ONE22, max(0, round(p * ONE22))))
