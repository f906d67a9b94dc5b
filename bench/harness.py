"""Is the harness honest? Two benchmarks that print numbers (never assertions):

1. The workload loop against a bare numba touch loop doing the same work per access on
   the same arena (goal: >= 0.9x the bare loop's accesses/s), with the ground-truth
   replay timed apart to show it is not in the measured region. Loops are timed in thread
   CPU time: they never block (one thread, a prefaulted arena, no tracker), so CPU time is
   their speed, and other processes on a shared machine do not count against them.
2. Each page tracker's ``collect`` against the raw kernel primitive it is built on, on the
   same arena after the same 1 % of pages were written (goal: <= 1.3x).
3. Each fault-served tracker's cost per fault inside a lockstep run (workload time / faults
   its server resolved) against the micro round trip (``bench.fault_path.round_trip``, the
   loop and server of ``hotbench micro``'s fault/uffd-minor*), in each thread placement
   (goal: <= 1.3x), with the traced per-fault breakdown of each placement beside it.

Runs alternate A/B/A/B and report medians: this machine is noisy.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Callable

import numpy as np
from numba import njit

from bench import trackers
from bench.arena import BASE_PAGE, Arena
from bench.kernel import _libc, pagemap


def _ns(fn: Callable[[], object]) -> int:
    t0 = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - t0


def _cpu_ns(fn: Callable[[], object]) -> int:
    t0 = time.thread_time_ns()
    fn()
    return time.thread_time_ns() - t0


def loop_speed(size: int, patterns: list[str], accesses: int, repeats: int) -> list[dict]:
    import workloads
    from workloads._kernels import bare_touch

    rows = []
    with Arena(size, "anon") as arena:
        for name in patterns:
            workload = workloads.create(name, npages=arena.npages, page_size=BASE_PAGE, seed=1, accesses=accesses,
                                        threads=1)
            workload.warmup()
            bare_touch(arena.view, BASE_PAGE, arena.npages, 1000, 1, workload.write_ratio)
            w_ns, b_ns, truth_ns = [], [], []
            for i in range(repeats):
                w_ns.append(_cpu_ns(lambda: workload.run_interval(arena.view, i)))
                b_ns.append(_cpu_ns(lambda: bare_touch(arena.view, BASE_PAGE, arena.npages, accesses, i + 1,
                                                       workload.write_ratio)))
                truth_ns.append(_cpu_ns(lambda: workload.truth(i)))
            w, b = statistics.median(w_ns), statistics.median(b_ns)
            rows.append({"pattern": name, "workload Macc/s": accesses / w * 1e3, "bare Macc/s": accesses / b * 1e3,
                         "ratio": b / w, "truth replay ms (untimed)": statistics.median(truth_ns) / 1e6})
    return rows


@njit(nogil=True, cache=True)
def _write_pages(view, pages, page_size):
    for p in pages:
        view[p * page_size] = 1


def _touch(arena: Arena, pages: np.ndarray) -> None:
    """Write the pages from a nogil thread: some trackers take synchronous faults that need the GIL free."""
    thread = threading.Thread(target=_write_pages, args=(arena.view, pages, BASE_PAGE))
    thread.start()
    thread.join()


def _raw_uffd_wp(tracker, arena, scanner):
    return lambda: scanner.scan(arena.addr, arena.end, **type(tracker)._SCAN)


def _raw_present_scan(tracker, arena, scanner):
    return lambda: scanner.scan(arena.addr, arena.end, category_mask=pagemap.PAGE_IS_PRESENT,
                                return_mask=pagemap.PAGE_IS_PRESENT)


def _raw_mprotect_restore(tracker, arena, scanner):
    return lambda: _libc.mprotect(arena.addr, arena.size, _libc.PROT_READ | _libc.PROT_WRITE)


def _raw_category_scan(category: int):
    def factory(tracker, arena, scanner):
        return lambda: scanner.scan(arena.addr, arena.end, category_mask=category, return_mask=category)
    return factory


def _raw_smaps(tracker, arena, scanner):
    from bench.kernel import procfs

    return lambda: procfs.smaps_vma(arena.addr)


# tracker -> (primitive's name, a factory of a callable running only that primitive)
RAW_PRIMITIVES = {
    "uffd-wp": ("PAGEMAP_SCAN WP_MATCHING", _raw_uffd_wp),
    "shmem-zap": ("PAGEMAP_SCAN PRESENT", _raw_present_scan),
    "shmem-zap-minor": ("PAGEMAP_SCAN PRESENT", _raw_present_scan),
    "mprotect": ("mprotect(RW) whole arena", _raw_mprotect_restore),
    "rwp": ("PAGEMAP_SCAN ACCESSED", _raw_category_scan(pagemap.PAGE_IS_ACCESSED)),
    "soft-dirty": ("PAGEMAP_SCAN SOFT_DIRTY", _raw_category_scan(pagemap.PAGE_IS_SOFT_DIRTY)),
    "referenced": ("smaps entry of the arena", _raw_smaps),
}
# Trackers whose collect is not one primitive over the arena, and where their cost is measured instead.
NO_PRIMITIVE = {
    "uffd-minor": "collect copies the fault server's record; the cost is per fault (hotbench micro fault/uffd-minor)",
    "idle-page": "collect is the bitmap read of the arena's PFN words (hotbench micro scan/idle_bitmap/read)",
    "mglru": "collect is one lru_gen aging pass of a whole memcg (a physical-memory walk, not an arena primitive)",
    "damon-vaddr": "collect waits for DAMON's next aggregation; its cost is the kdamond's CPU (concurrent mode)",
    "damon-paddr": "collect waits for DAMON's next aggregation; its cost is the kdamond's CPU (concurrent mode)",
}


def collect_cost(size: int, fraction: float, repeats: int) -> tuple[list[dict], dict[str, str]]:
    rows, skipped = [], {}
    rng = np.random.default_rng(1)
    for name, cls in trackers.registry().items():
        backing = "anon" if "anon" in cls.backings else cls.backings[0]
        reason = cls.unavailable(backing) or NO_PRIMITIVE.get(name) or \
            (None if name in RAW_PRIMITIVES else "no raw primitive defined for it in bench/harness.py")
        if reason:
            skipped[name] = reason
            continue
        primitive, factory = RAW_PRIMITIVES[name]
        with Arena(size, backing) as arena, pagemap.Scanner() as scanner:
            pages = rng.choice(arena.npages, max(1, int(arena.npages * fraction)), replace=False).astype(np.int64)
            tracker = cls()
            try:
                tracker.start(arena)
                raw = factory(tracker, arena, scanner)
                c_ns, r_ns = [], []
                for _ in range(repeats):
                    tracker.arm()
                    _touch(arena, pages)
                    c_ns.append(_ns(tracker.collect))
                    tracker.arm()
                    _touch(arena, pages)
                    r_ns.append(_ns(raw))
                    tracker.collect()
            finally:
                tracker.stop()
        gib = size / (1 << 30)
        c, r = statistics.median(c_ns) / 1e6 / gib, statistics.median(r_ns) / 1e6 / gib
        rows.append({"tracker": name, "backing": backing, "collect ms/GiB": c, "primitive": primitive,
                     "primitive ms/GiB": r, "ratio": c / r})
    return rows, skipped


# fault-served tracker -> the fault_path round trip it is held against
FAULT_KINDS = {"uffd-minor": "uffd-minor", "shmem-zap-minor": "uffd-minor"}


def _in_run_us_per_fault(name: str, placement: str, size: int, accesses: int) -> float:
    """µs of workload time per served fault over a 3-interval lockstep cell (uniform)."""
    import json

    from bench import runner

    cls = trackers.get(name)
    cell = runner.Cell(name, "uniform", cls.backings[0], size, 3, 0, 1, accesses, 1, None, None, "none", placement)
    rows = runner.run_cell(cell)
    served = sum(json.loads(r["extra"])["uffd_faults"] for r in rows)
    return sum(r["workload_ns"] for r in rows) / 1e3 / max(served, 1)


def fault_cost(size: int, accesses: int, rounds: int) -> tuple[list[dict], list[dict], dict[str, str]]:
    """(per tracker and placement: micro round trip vs in-run cost per fault; per placement: the
    traced breakdown; skipped trackers or placements with the reason)."""
    from bench import fault_path
    from bench.kernel import tracefs

    rows, splits, skipped = [], [], {}
    places = {}
    for name in fault_path.PLACEMENTS:
        try:
            places[name] = fault_path.placement_cpus(name)
        except ValueError as e:
            skipped[name] = str(e)
    available = {n: k for n, k in FAULT_KINDS.items() if not trackers.get(n).unavailable()}
    skipped.update({n: trackers.get(n).unavailable() for n in FAULT_KINDS if n not in available})
    for placement, place in places.items():
        micro = {kind: statistics.median(fault_path.round_trip(kind, place, size, rounds))
                 for kind in set(available.values())}
        for name, kind in available.items():
            in_run = _in_run_us_per_fault(name, placement, size, accesses)
            rows.append({"tracker": name, "placement": placement, "micro µs/fault": micro[kind],
                         "in-run µs/fault": in_run, "ratio": in_run / micro[kind]})
        for kind in sorted(set(available.values())):
            if tracefs.unavailable():
                skipped["breakdown"] = tracefs.unavailable()
                continue
            split = fault_path.breakdown(kind, place)
            splits.append({"kind": kind, "placement": placement, **split})
    return rows, splits, skipped
