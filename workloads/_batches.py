"""Continuous running for overhead measurements: a thread touches the arena batch after batch
until a deadline, timing every batch inside compiled code.

Batch latencies are measured with ``clock_gettime`` from the nogil loop itself, so a stall
the kernel imposes (a fault, a lock a tracker holds) shows up in the batch it hit, while the
harness's own Python work (GIL waits included) never does. The touch kernel is the
workload's own, passed in as a first-class function; each batch uses its own stream key.
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit

from bench.kernel.nbsys import monotonic_ns

KEYS_PER_THREAD = 1024  # distinct batch streams per thread, reused cyclically


@njit(nogil=True)
def run_batches(touch, arena, page_size, batch, keys, deadline_ns, latencies, args):
    """Touch batch after batch until *deadline_ns*; latencies[k] = ns of batch k. Returns (batches, checksum)."""
    ts = np.zeros(2, np.int64)
    checksum = np.uint64(0)
    k = 0
    while k < latencies.size:
        t0 = monotonic_ns(ts)
        checksum += touch(arena, page_size, batch, keys[k % keys.size], *args)
        t1 = monotonic_ns(ts)
        latencies[k] = t1 - t0
        k += 1
        if t1 >= deadline_ns:
            break
    return k, checksum


def batch_plan(workload, thread: int, batch: int) -> tuple:
    """(touch kernel, keys, generator args) for one thread: interval 0's distribution, fresh keys."""
    from workloads._kernels import stream_state

    plans = workload._plan(0)
    touch, args = workload._touch_call(plans[thread % len(plans)])
    n, _key, *gen = args
    keys = np.array([stream_state(workload.seed, (1 << 40) + k, thread) for k in range(KEYS_PER_THREAD)],
                    dtype=type(_key))
    return touch, keys, tuple(gen)


def run_for(workload, arena: np.ndarray, thread: int, seconds: float, batch: int,
            latencies: np.ndarray) -> int:
    """Run one workload thread's share for *seconds*; fills *latencies*, returns the batches done."""
    touch, keys, gen = batch_plan(workload, thread, batch)
    deadline = time.monotonic_ns() + int(seconds * 1e9)
    done, _ = run_batches(touch, arena, np.int64(workload.page_size), np.int64(batch), keys, deadline, latencies, gen)
    return int(done)
