"""The compiled kernels: nogil, one signature each, and the bare yardstick loop."""

import ctypes
import mmap

import numpy as np

import workloads
from workloads import _kernels as K

TOUCH = [K.touch_segments, K.touch_span, K.touch_cdf, K.touch_sequential, K.bare_touch]
RECORD = [K.record_segments, K.record_cdf, K.record_sequential]


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
