"""Concurrent (overhead) mode: workload threads run continuously while a tracker thread
cycles arm -> sleep(cycle) -> collect, the way a VMM would track a running guest.

Each cell is measured A/B/A/B — no-tracker baseline, tracker, baseline, tracker — in the
same invocation, so a slowdown is a ratio of neighbours, never against "a baseline from
earlier". Workload threads time every fixed-size batch inside compiled code (stalls show
as tail latency); the runner times the tracker's arm and collect (wall, and the tracker
thread's CPU clock). For DAMON the kdamond's own CPU time comes from /proc/<pid>/stat.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import threading
import time
from dataclasses import dataclass

import numpy as np

from bench import arena as arena_mod
from bench import attribution, clock, trackers
from bench.kernel import procfs

LATENCY_SLOTS = 1 << 20  # batches per thread and run (preallocated; a run stops early if full)


@dataclass(frozen=True)
class Overhead:
    """Concurrent-mode parameters: seconds per A or B run, tracker cycle, accesses per batch, pairs."""

    duration: float = 5.0
    cycle: float = 0.1
    batch: int = 10_000
    pairs: int = 2


def _kthread_cpu_ns(pid: int | None) -> int:
    """CPU time of a kernel thread (e.g. a kdamond) in ns, 0 when unknown."""
    return procfs.task_cpu_ns(pid) or 0


def _run_workload(workload, arena, seconds: float, batch: int, counters=attribution.NONE):
    """Start the workload threads for *seconds* (each counting its kernel events as phase
    ``workload`` when *counters* count); returns handles for ``_join``."""
    from workloads import run_for

    lats = [np.zeros(LATENCY_SLOTS, np.int64) for _ in range(workload.threads)]
    done = [0] * workload.threads

    def work(t: int) -> None:
        with counters.thread_phase("workload"):
            done[t] = run_for(workload, arena.view, t, seconds, batch, lats[t])

    threads = [threading.Thread(target=work, args=(t,), name=f"hotbench-vcpu-{t}") for t in range(workload.threads)]
    t0 = time.monotonic()
    for th in threads:
        th.start()
    return lats, done, threads, t0


def _join(lats, done, threads, t0) -> tuple[np.ndarray, float]:
    try:
        for th in threads:
            th.join()
    except BaseException:  # the watchdog's CellTimeout: the threads stop by themselves after the
        for th in threads:  # duration, and the arena must outlive them
            th.join()
        raise
    wall = time.monotonic() - t0
    return np.concatenate([lat[:n] for lat, n in zip(lats, done)]), wall


def _cycles(tracker, stop_at: float, cycle: float, counters=attribution.NONE) -> dict:
    """arm -> sleep -> collect until *stop_at*; per-cycle wall and CPU of arm and collect (and
    their kernel events, summed over the cycles, when *counters* count)."""
    arm_ns, collect_ns, cpu_ns, statuses = [], [], [], set()
    while time.monotonic() + cycle < stop_at:
        with counters.phase("arm"):
            c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
            tracker.arm()
            w1, c1 = time.perf_counter_ns(), time.thread_time_ns()
        time.sleep(cycle)
        with counters.phase("collect"):
            c2, w2 = time.thread_time_ns(), time.perf_counter_ns()
            observation = tracker.collect()
            w3, c3 = time.perf_counter_ns(), time.thread_time_ns()
        arm_ns.append(w1 - w0)
        collect_ns.append(w3 - w2)
        cpu_ns.append((c1 - c0) + (c3 - c2))
        statuses.add(observation.status)
    return {"arm_ns": arm_ns, "collect_ns": collect_ns, "cpu_ns": cpu_ns, "statuses": statuses}


def _percentiles(lat: np.ndarray) -> dict:
    if lat.size == 0:
        return {"p50": None, "p99": None, "p999": None, "max": None}
    p = np.percentile(lat, [50, 99, 99.9])
    return {"p50": float(p[0]), "p99": float(p[1]), "p999": float(p[2]), "max": int(lat.max())}


def _baseline(workload, arena, params: Overhead) -> tuple[float, np.ndarray]:
    lat, wall = _join(*_run_workload(workload, arena, params.duration, params.batch))
    return lat.size * params.batch / wall, lat


def _tracked(cls, workload, arena, params: Overhead, events=None) -> tuple[float, np.ndarray, dict, int, int]:
    tracker = cls()
    # The tracker thread's counters are not inherited: each workload thread counts its own.
    counters = events.for_cell(cls, inherit=False) if events else attribution.NONE
    handles = None
    try:
        with counters:
            tracker.start(arena)
            counters.attach(tracker)
            kpid = getattr(tracker, "kdamond_pid", None)
            k0, f0 = _kthread_cpu_ns(kpid), procfs.minor_faults()
            counters.begin_interval()
            handles = _run_workload(workload, arena, params.duration, params.batch, counters)
            cycles = _cycles(tracker, handles[3] + params.duration, params.cycle, counters)
            lat, wall = _join(*handles)
            handles = None
            faults, kcpu = procfs.minor_faults() - f0, _kthread_cpu_ns(kpid) - k0
            cycles["kernel_events"] = counters.take()
    finally:
        tracker.stop()
        if handles is not None:  # the cycles failed: the workload threads still run, and the arena
            for th in handles[2]:  # must outlive them (they stop by themselves after the duration)
                th.join()
    return lat.size * params.batch / wall, lat, cycles, faults, kcpu


def run_concurrent_cell(cell, params: Overhead, run_id: str, on_pair=None,
                        watchdog=None, events=None) -> tuple[list[dict], list[dict]]:
    """A/B pairs for one cell; returns (rows, latency rows for latency.parquet). *on_pair(row,
    latency rows)* runs after each finished pair; *watchdog* (``bench.watchdog.Watchdog``) ends
    a cell whose A or B run makes no progress (an ``error:`` row). A signal ends the cell after
    the A or B run in flight (``Interrupted`` propagates). With *events* (an
    ``attribution.Session``) each tracked run's kernel events are counted: arm and collect summed
    over its cycles, the workload threads' over the whole run (``kev.*`` columns)."""
    import workloads

    from bench import interrupts
    from bench.watchdog import CellTimeout, Watchdog

    cls = trackers.get(cell.tracker)
    watchdog = watchdog or Watchdog(enabled=False)
    if cell.cycle:
        params = dataclasses.replace(params, cycle=cell.cycle)
    rows, latency_rows = [], []
    with interrupts.deferred("finishing the current A/B run"), arena_mod.Arena(cell.size_bytes, cell.backing) as arena:
        workload = workloads.create(cell.workload, npages=arena.npages, page_size=arena_mod.BASE_PAGE,
                                    seed=cell.seed, accesses=cell.accesses, threads=cell.threads,
                                    write_ratio=cell.write_ratio)
        _warm(workload, arena, params)
        base = {"run_id": run_id, "mode": "concurrent", "tracker": cls.name, "mechanism": cls.mechanism,
                "granularity": cls.granularity, "sees": cls.sees, "workload": workload.name,
                "workload_spec": cell.workload, "workload_params": json.dumps(workload.params(), sort_keys=True),
                "workload_version": workload.version, "backing": cell.backing, "size_bytes": arena.size,
                "page_size": arena.page_size, "npages": arena.npages, "threads": workload.threads,
                "repeat": cell.repeat, "seed": cell.seed, "duration_s": params.duration,
                "cycle_ms": params.cycle * 1e3, "batch": params.batch, **clock.row_fields()}
        try:
            with watchdog.cell(params.duration + 1.0) as watch:
                for pair in range(params.pairs):
                    interrupts.check()
                    base_aps, base_lat = _baseline(workload, arena, params)
                    watch.beat()
                    interrupts.check()
                    aps, lat, cycles, faults, kcpu = _tracked(cls, workload, arena, params, events)
                    watch.beat()
                    rows.append(_row(base, pair, base_aps, base_lat, aps, lat, cycles, faults, kcpu, arena.size))
                    pair_latencies = [{"run_id": run_id, "tracker": name, "workload": workload.name,
                                       "backing": cell.backing, "size_bytes": arena.size, "repeat": cell.repeat,
                                       "pair": pair, "batch_ns": values}
                                      for name, values in (("baseline", base_lat), (cls.name, lat))]
                    latency_rows.extend(pair_latencies)
                    if on_pair is not None:
                        on_pair(rows[-1], pair_latencies)
        except CellTimeout as e:
            rows.append({**base, "pair": len(rows), "status": f"error: {e}"})
    return rows, latency_rows


def _warm(workload, arena, params: Overhead) -> None:
    """Compile the batch driver and the trackers' range->bitmap helper, fault the arena in, outside
    any measured run."""
    from bench.kernel import pagemap

    workload.warmup()
    pagemap.warmup()
    _join(*_run_workload(workload, arena, 0.0, params.batch))


def _row(base, pair, base_aps, base_lat, aps, lat, cycles, faults, kcpu, size) -> dict:
    n = len(cycles["cpu_ns"])
    med = (lambda xs: statistics.median(xs) if xs else None)
    p, bp = _percentiles(lat), _percentiles(base_lat)
    cpu = med(cycles["cpu_ns"])
    statuses = sorted(cycles["statuses"] - {"ok"})
    return {**base, "pair": pair, "baseline_aps": base_aps, "throughput_aps": aps,
            "slowdown": base_aps / aps - 1 if aps else None,
            "lat_p50_ns": p["p50"], "lat_p99_ns": p["p99"], "lat_p999_ns": p["p999"], "lat_max_ns": p["max"],
            "base_lat_p50_ns": bp["p50"], "base_lat_p99_ns": bp["p99"], "base_lat_p999_ns": bp["p999"],
            "base_lat_max_ns": bp["max"], "cycles": n, "arm_ns": med(cycles["arm_ns"]),
            "collect_ns": med(cycles["collect_ns"]), "tracker_cpu_ns_per_cycle": cpu,
            "tracker_cpu_ns_per_cycle_per_gib": cpu / (size / (1 << 30)) if cpu is not None else None,
            "minor_faults": faults, "kdamond_cpu_ns": kcpu or None,
            "status": "ok" if not statuses else "; ".join(statuses), **cycles.get("kernel_events", {})}
