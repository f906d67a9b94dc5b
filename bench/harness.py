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

import io
import statistics
import threading
import time
from typing import Callable

import numpy as np
from numba import njit

from bench import clock, trackers
from bench._progress import Progress
from bench.arena import BASE_PAGE, Arena
from bench.kernel import pagemap


# Every cost below is guest ns; under 'hotbench vm --icount' those count instructions, labelled so.
_CLOCK = clock.current()


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
    from workloads import bare_touch

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
            per, ms = _CLOCK.scaled_unit("ns"), _CLOCK.scaled_unit("ms")
            rows.append({"pattern": name, f"workload {per}/access": _CLOCK.to_units(w) / accesses,
                         f"bare {per}/access": _CLOCK.to_units(b) / accesses, "ratio": b / w,
                         f"truth replay {ms} (untimed)": _CLOCK.to_units(statistics.median(truth_ns)) / 1e6,
                         "_ratios": [bb / ww for bb, ww in zip(b_ns, w_ns)]})
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


PHASES = ("arm", "collect")


def _interval(tracker, arena: Arena, pages: np.ndarray, phase: str, timed: Callable[[], object]) -> int:
    """One interval with *timed* in place of the tracker's *phase*; its ns."""
    if phase == "arm":
        ns = _ns(timed)
        _touch(arena, pages)
        tracker.collect()
        return ns
    tracker.arm()
    _touch(arena, pages)
    return _ns(timed)


def phase_cost(size: int, fraction: float, repeats: int,
               only: list[str] | None = None) -> tuple[list[dict], dict[str, str]]:
    """Each tracker's arm and collect (ms/GiB) against its raw primitive, alternating A/B on
    the same arena after the same *fraction* of pages were written; (rows, skipped)."""
    rows, skipped = [], {}
    rng = np.random.default_rng(1)
    for name, cls in trackers.registry().items():
        if only is not None and name not in only:
            continue
        backing = "anon" if "anon" in cls.backings else cls.backings[0]
        primitives = {p: raw for p, raw in cls.raw_primitives.items() if not isinstance(raw, str)}
        reason = cls.unavailable(backing) or \
            (None if primitives else f"{cls.__qualname__} names no raw primitive (Tracker.raw_primitives)")
        if reason:
            skipped[name] = reason
            continue
        skipped.update({f"{name} {phase}": why for phase, why in cls.raw_primitives.items() if isinstance(why, str)})
        with Arena(size, backing) as arena, pagemap.Scanner() as scanner:
            pages = rng.choice(arena.npages, max(1, int(arena.npages * fraction)), replace=False).astype(np.int64)
            tracker = cls()
            try:
                tracker.start(arena)
                tracker.arm()
                _touch(arena, pages)
                tracker.collect()  # the first interval: state every raw primitive needs (idle-page's words)
                for phase, primitive in primitives.items():
                    raw = primitive.make(tracker, scanner)
                    own = getattr(tracker, phase)
                    t_ns, r_ns = [], []
                    for _ in range(repeats):
                        t_ns.append(_interval(tracker, arena, pages, phase, own))
                        r_ns.append(_interval(tracker, arena, pages, phase, raw))
                        if phase == "collect":
                            tracker.collect()  # the raw scan may have left the tracker's state as it was
                    gib, ms = size / (1 << 30), _CLOCK.scaled_unit("ms")
                    t, r = (_CLOCK.to_units(statistics.median(v)) / 1e6 / gib for v in (t_ns, r_ns))
                    rows.append({"tracker": name, "phase": phase, "backing": backing, f"{ms}/GiB": t,
                                 "primitive": primitive.name, f"primitive {ms}/GiB": r, "ratio": t / r,
                                 "_ratios": [tt / rr for tt, rr in zip(t_ns, r_ns)]})
            finally:
                tracker.stop()
    return rows, skipped


def _in_run_us_per_fault(name: str, placement: str, size: int, accesses: int) -> float:
    """µs of workload time per served fault over a 3-interval lockstep cell (uniform)."""
    import json

    from bench import runner

    cls = trackers.get(name)
    cell = runner.Cell(name, "uniform", cls.backings[0], size, 3, 0, 1, accesses, 1, None, None, "none", placement)
    rows = runner.run_cell(cell, progress=Progress(1, stream=io.StringIO()))  # no progress bar in the table
    served = sum(json.loads(r["extra"])["uffd_faults"] for r in rows)
    return sum(r["workload_ns"] for r in rows) / 1e3 / max(served, 1)


def fault_cost(size: int, accesses: int, rounds: int, breakdown: bool = True,
               only: list[str] | None = None) -> tuple[list[dict], list[dict], dict[str, str]]:
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
    chosen = {n: c for n, c in trackers.registry().items() if only is None or n in only}
    wanted = {n: c.fault_kind for n, c in chosen.items() if c.fault_kind}
    available = {n: k for n, k in wanted.items() if not trackers.get(n).unavailable()}
    skipped.update({n: trackers.get(n).unavailable() for n in wanted if n not in available})
    # synchronous modes no lockstep tracker serves (RWP's, for eviction): micro and breakdown only
    sync = {f"{n} (sync)": c.sync_fault_kind for n, c in chosen.items() if c.sync_fault_kind and not c.unavailable()}
    kinds = set(available.values()) | set(sync.values())
    for placement, place in places.items():
        micro = {kind: statistics.median(fault_path.round_trip(kind, place, size, rounds)) for kind in kinds}
        us = _CLOCK.scaled_unit("µs")
        for label, kind in sync.items():
            rows.append({"tracker": label, "placement": placement,
                         f"micro {us}/fault": _CLOCK.to_units(micro[kind]), f"in-run {us}/fault": "-", "ratio": "-"})
        for name, kind in available.items():
            in_run = _in_run_us_per_fault(name, placement, size, accesses)
            rows.append({"tracker": name, "placement": placement, f"micro {us}/fault": _CLOCK.to_units(micro[kind]),
                         f"in-run {us}/fault": _CLOCK.to_units(in_run), "ratio": in_run / micro[kind]})
        for kind in sorted(kinds) if breakdown else ():
            if tracefs.unavailable():
                skipped["breakdown"] = tracefs.unavailable()
                continue
            split = fault_path.breakdown(kind, place)
            splits.append({"kind": kind, "placement": placement, **split})
    return rows, splits, skipped


# The family of the nightly's harness metrics (analysis.compare). Every value is a cost over
# its yardstick, so up is worse: the workload loop's time over the bare loop's (the inverse of
# the printed speed ratio), a tracker phase over its raw primitive, in-run fault cost over micro.
FAMILY = "harness"


def nightly_metrics(section: dict, only: list[str] | None = None) -> list[dict]:
    """Run the harness with a nightly suite's ``[harness]`` settings (trackers: *only*, or all);
    one row per metric and value (per A/B pair where there are pairs): metric, family, value."""
    from bench.arena import parse_size

    repeats = int(section.get("repeats", 5))
    out = []
    for row in loop_speed(parse_size(section.get("size", "64M")), list(section.get("patterns", ["uniform"])),
                          int(section.get("accesses", 1_000_000)), repeats):
        out += [{"metric": f"harness:loop/{row['pattern']}", "family": FAMILY, "value": 1 / v} for v in row["_ratios"]]
    rows, _ = phase_cost(parse_size(section.get("collect_size", "256M")), float(section.get("fraction", 0.01)), repeats,
                         only)
    for row in rows:
        out += [{"metric": f"harness:{row['phase']}/{row['tracker']}", "family": FAMILY, "value": v}
                for v in row["_ratios"]]
    if section.get("faults", True):
        faults, _, _ = fault_cost(parse_size(section.get("fault_size", "16M")),
                                  int(section.get("fault_accesses", 20_000)), repeats, breakdown=False, only=only)
        out += [{"metric": f"harness:fault/{r['tracker']}/{r['placement']}", "family": FAMILY,
                 "value": r["ratio"]} for r in faults if r["ratio"] != "-"]
    return out
