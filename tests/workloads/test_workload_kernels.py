"""The compiled kernels: nogil, one signature each, and the bare yardstick loop."""

import ctypes
import mmap

import numpy as np

import workloads
from workloads import _kernels as K

TOUCH = [K.touch_segments, K.touch_span, K.touch_alias, K.touch_sequential, K.bare_touch]
RECORD = [K.record_segments, K.record_alias, K.record_sequential]


def test_kernels_release_the_gil():
    # A toucher holding the GIL would deadlock a fault handled by a Python thread.
    for kernel in TOUCH + RECORD:
        assert kernel.targetoptions.get("nogil") is True, kernel.__name__


def test_warmup_compiles_what_run_interval_uses():
    # A second signature would mean a compile inside a measured interval. The arena is an
    # mmap'd ctypes view, as bench.arena makes it.
    size = 64 * 4096
    with mmap.mmap(-1, size) as m:
        arena = np.ctypeslib.as_array((ctypes.c_uint8 * size).from_buffer(m))
        for name in workloads.names():
            w = workloads.create(name, npages=64, page_size=4096, seed=1, accesses=100, threads=2)
            w.warmup()
            for interval in range(6):
                w.run_interval(arena, interval)
                w.truth(interval)
        del arena
    for kernel in TOUCH[:-1] + RECORD:
        assert len(kernel.signatures) == 1, (kernel.__name__, kernel.signatures)


def test_bare_touch():
    arena = np.zeros(16 * 4096, np.uint8)
    assert K.bare_touch(arena, 4096, 16, 1000, 1, 0.0) == 0
    K.bare_touch(arena, 4096, 16, 1000, 1, 1.0)
    assert arena.reshape(16, 4096).any(axis=1).all()
    assert K.bare_touch(np.full(16 * 4096, 2, np.uint8), 4096, 16, 1000, 1, 0.0) == 2000


def test_write_threshold_edges():
    assert K.write_threshold(0.0) == 0
    assert K.write_threshold(1.0) == K.ONE22
    assert K.stream_state(0, 0, 0) != 0


def _alias_probabilities(table):
    """Each page's probability implied by an alias table: kept share plus the shares aliased to it."""
    n = table.size
    keep = (table >> np.uint64(32)).astype(np.float64) / K.ONE32
    alias = (table & np.uint64(K.ONE32 - 1)).astype(np.int64)
    p = keep.copy()
    np.add.at(p, alias, 1.0 - keep)
    return p / n


def test_alias_table_reproduces_the_weights():
    rng = np.random.default_rng(3)
    for weights in (rng.random(1000), np.arange(1, 5001, dtype=np.float64) ** -1.2,
                    np.r_[np.zeros(10), np.ones(3), np.zeros(5)], np.ones(7)):
        table = K.alias_table(weights)
        assert table.dtype == np.uint64 and table.size == weights.size
        np.testing.assert_allclose(_alias_probabilities(table), weights / weights.sum(), atol=1e-9)
        assert not (_alias_probabilities(table)[weights == 0]).any()  # never a page of weight 0


def test_batched_touch_matches_its_replay_across_batch_edges():
    # n not a multiple of BATCH: the last, partial batch must still be made and counted.
    arena = np.zeros(64 * 4096, np.uint8)
    table = K.alias_table(np.arange(1, 65, dtype=np.float64))
    n = 3 * K.BATCH + 5
    reads, writes = np.zeros(64, np.uint32), np.zeros(64, np.uint32)
    K.record_alias(reads, writes, np.int64(4096), np.int64(n), np.uint64(9), table, K.write_threshold(1.0))
    K.touch_alias(arena, np.int64(4096), np.int64(n), np.uint64(9), table, K.write_threshold(1.0))
    assert int(writes.sum()) == n and not reads.any()
    assert (arena.reshape(64, 4096).any(axis=1) == (writes > 0)).all()


def _sweep_in_cursor_order(arena, page_size, n, key, start, stride, span, pos, wthr):
    """touch_sequential's accesses one by one in cursor order, in plain Python."""
    mask, state, checksum = (1 << 64) - 1, int(key), 0
    for j in range(n):
        state ^= (state << 13) & mask
        state ^= state >> 7
        state ^= (state << 17) & mask
        at = (start + pos * stride) * page_size + (state & (page_size // K.LINE - 1)) * K.LINE
        pos = (pos + 1) % span
        if ((state >> 10) & (K.ONE22 - 1)) < wthr:
            arena[at] = (j & 0xFF) | 1
        else:
            checksum += int(arena[at])
    return checksum


def test_interleaved_sweep_leaves_what_cursor_order_leaves():
    # Full batches of a sweep >= BATCH pages are made out of cursor order (SWEEP_ORDER): the
    # bytes written, the reads' checksum and so the truth must be those of cursor order.
    # span 40 < BATCH keeps cursor order, a page may come twice in one batch there. Two
    # lines a page, so accesses to one line in one batch are common.
    npages, page = 200, 2 * K.LINE
    for stride, start, span, pos, n in ((1, 0, 200, 0, 5 * K.BATCH + 17), (3, 2, 66, 50, 4 * K.BATCH),
                                         (5, 0, 40, 7, 300)):
        initial = np.random.default_rng(stride).integers(0, 256, npages * page, dtype=np.uint8)
        ours, theirs = initial.copy(), initial.copy()
        wthr = K.write_threshold(0.4)
        got = K.touch_sequential(ours, np.int64(page), np.int64(n), np.uint64(11), np.uint64(start),
                                 np.uint64(stride), np.uint64(span), np.uint64(pos), wthr)
        want = _sweep_in_cursor_order(theirs, page, n, 11, start, stride, span, pos, int(wthr))
        assert got == want
        np.testing.assert_array_equal(ours, theirs)
