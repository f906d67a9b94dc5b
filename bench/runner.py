"""Lockstep runs: per cell, the workload and the tracker alternate interval by interval.

A cell is one (tracker, workload, backing, size, interference, repeat). For each interval i:
``arm`` -> the workload touches the arena (its own nogil threads) -> ``collect``; then,
outside every timed region, the workload replays interval i's ground truth and the
observation is scored. A cell's interference (``bench.interference``, ``none`` by default)
runs right after ``arm`` or right before ``collect``, untimed and with no workload thread
running; its cost is the row's ``interfere_ns``. The runner times the tracker (wall and
thread CPU) — trackers never time themselves. ``stop`` always runs: on success, on a tracker error, on
SIGINT, SIGTERM and SIGHUP (``bench.interrupts``: an interval in flight is finished first,
because unmapping memory under running workload threads would crash them) and when the
per-cell watchdog (``bench.watchdog``) ends a cell that makes no progress. ``run_plan``
records every finished interval as it goes (``results.RunWriter``), so even a killed run
leaves them readable.
"""

from __future__ import annotations

import gc
import itertools
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from bench import arena as arena_mod
from bench import attribution, clock
from bench import interference as interference_mod
from bench import fault_path, interrupts, results, trackers
from bench._progress import Progress
from bench.errors import HotbenchError, Interrupted
from bench.kernel import pagemap, procfs
from bench.scoring import score
from bench.watchdog import CellTimeout, Watchdog

DEFAULT_WORKLOADS = ("uniform", "zipf", "hotcold", "phase")


@dataclass(frozen=True)
class Cell:
    tracker: str
    workload: str  # a workload spec, e.g. "zipf:s=1.2"
    backing: str
    size_bytes: int
    intervals: int
    repeat: int
    seed: int
    accesses: int | None = None
    threads: int | None = None
    write_ratio: float | None = None
    cycle: float | None = None  # concurrent mode: seconds between arm and collect
    interfere: str = interference_mod.NONE  # lockstep mode: a bench.interference name
    placement: str = "auto"  # fault-served trackers: where server and workload run (bench.fault_path)


@dataclass
class Plan:
    cells: list[Cell]
    skipped: dict[str, str]  # "tracker", "tracker@backing", "tracker + interference" or "interference" -> reason


def _choose_backing(cls: type[trackers.Tracker], requested: str) -> tuple[str | None, str | None]:
    """(backing, None) or (None, reason). 'auto' takes anon when the tracker works there."""
    if requested == "auto":
        return ("anon" if "anon" in cls.backings else cls.backings[0]), None
    if requested not in cls.backings:
        return None, f"needs {' or '.join(cls.backings)} memory, not {requested}"
    return requested, None


def check_inputs(tracker_names: list[str] | None, workload_specs: list[str], backings: list[str],
                 sizes: list[int], intervals: int, repeats: int, *, threads: list[int | None] = (None,),
                 accesses: list[int | None] = (None,), write_ratio: float | None = None,
                 interferences: list[str] = (interference_mod.NONE,), seed: int = 1) -> None:
    """Every user input of a run, checked before anything exists (one-line HotbenchError): tracker
    and interference names, backings and their sizes, counts, the seeds, and each workload built
    once with its parameters (a masim config read, a zipf exponent parsed) at the smallest size."""
    import workloads

    for name in tracker_names or ():
        trackers.get(name)
    for name in interferences:
        interference_mod.get(name)
    for backing in backings:
        if backing != "auto" and backing not in arena_mod.BACKINGS:
            raise HotbenchError(f"unknown backing {backing!r}; choose from auto, {', '.join(arena_mod.BACKINGS)}")
        _check_sizes_for("anon" if backing == "auto" else backing, sizes)  # auto: the 4K rule every backing has
    if intervals < 1 or repeats < 1:
        raise HotbenchError("--intervals and --repeats must be at least 1")
    if any(t is not None and t < 1 for t in threads) or any(a is not None and a < 1 for a in accesses):
        raise HotbenchError("--threads and --accesses must be at least 1")
    npages = max(min(sizes), arena_mod.BASE_PAGE) // arena_mod.BASE_PAGE
    try:
        workloads.check_seeds(seed, repeats)
        for spec, n_threads, n_accesses in itertools.product(workload_specs, threads, accesses):
            workloads.create(spec, npages=npages, page_size=arena_mod.BASE_PAGE, seed=seed, accesses=n_accesses,
                             threads=n_threads, write_ratio=write_ratio)
    except workloads.WorkloadError as e:
        raise HotbenchError(str(e)) from None


def _check_sizes_for(backing: str, sizes: list[int]) -> None:
    for size in sizes:
        problem = arena_mod.size_problem(size, backing)
        if problem:
            raise HotbenchError(f"--size {arena_mod.size_token(size)}: {problem}")


def make_plan(tracker_names: list[str] | None, workload_specs: list[str], backings: list[str], sizes: list[int],
              intervals: int, repeats: int, seed: int, *, threads: list[int | None] = (None,),
              accesses: list[int | None] = (None,), cycles: list[float | None] = (None,),
              write_ratio: float | None = None, interferences: list[str] = (interference_mod.NONE,),
              placement: str = "auto") -> Plan:
    """The cells of a run (a sweep is just longer lists), and the trackers (and interferences, or
    tracker + interference pairs) skipped with their reasons. Bad input raises HotbenchError
    (``check_inputs``) before anything is run."""
    check_inputs(tracker_names, workload_specs, backings, sizes, intervals, repeats, threads=threads,
                 accesses=accesses, write_ratio=write_ratio, interferences=interferences, seed=seed)
    interferers = [interference_mod.get(name) for name in dict.fromkeys(interferences)]
    names = tracker_names or list(trackers.registry())
    classes = [trackers.get(n) for n in names]
    skipped = {name: f"module failed to load: {why}" for name, why in trackers.broken().items()}
    for kind in list(interferers):
        why = kind.unavailable()
        if why:
            skipped[kind.name] = why
            interferers.remove(kind)
    cells = []
    for cls in classes:
        for backing in backings:
            chosen, why = _choose_backing(cls, backing)
            if not why:
                _check_sizes_for(chosen, sizes)
            reason = why or cls.unavailable(chosen) or arena_mod.backing_unavailable(chosen, max(sizes))
            if reason:
                skipped[cls.name if len(backings) == 1 else f"{cls.name}@{backing}"] = reason
                continue
            kinds = []
            for kind in interferers:
                why = kind.refuses(cls)
                if why:
                    skipped[f"{cls.name} + {kind.name}"] = why
                else:
                    kinds.append(kind.name)
            for size, spec, n_threads, n_accesses, cycle, interfere in itertools.product(
                    sizes, workload_specs, threads, accesses, cycles, kinds):
                for repeat in range(repeats):
                    cells.append(Cell(cls.name, spec, chosen, size, intervals, repeat, seed + repeat,
                                      n_accesses, n_threads, write_ratio, cycle, interfere, placement))
    return Plan(cells, skipped)


def cell_seconds(cell: Cell, overhead=None) -> float:
    """A rough duration of one cell (prefault ~0.5 s/GiB on this class of machine, ~20 M
    accesses/s per thread, a truth replay as long as the interval)."""
    seconds = 0.5 * cell.size_bytes / (1 << 30) + 1.0
    if overhead is None:
        return seconds + cell.intervals * (2 * (cell.accesses or 100_000) / 20e6 + 0.02 * cell.size_bytes / (1 << 30))
    return seconds + overhead.pairs * 2 * overhead.duration


def estimate_seconds(plan: Plan, overhead=None) -> float:
    """A rough duration, to announce long sweeps before they start."""
    return sum(cell_seconds(cell, overhead) for cell in plan.cells)


def check_sizes(sizes: list[int]) -> None:
    available = procfs.meminfo().get("MemAvailable", 0)
    for size in sizes:
        if size <= 0:
            raise HotbenchError(f"--size must be positive, got {size}")
        if size > available * 0.9:
            raise HotbenchError(f"--size {arena_mod.size_token(size)} is more than this machine can give "
                                f"({available >> 20} MiB available); choose a smaller --size")


def expected_step_seconds(cell: Cell, overhead=None) -> float:
    """What one step of *cell* should take (a lockstep interval with the tracker's start, or one
    A or B run), by the same rough model as ``estimate_seconds``: the watchdog's first yardstick."""
    if overhead is not None:
        return 2 * overhead.duration + 1.0
    return 1.0 + 2 * (cell.accesses or 100_000) / 20e6 + 0.02 * cell.size_bytes / (1 << 30)


_NO_WATCHDOG = Watchdog(enabled=False)


def _timed(fn: Callable[[], object]):
    """(fn(), wall ns, thread CPU ns), with Python's cyclic GC held off: a collection of the
    runner's own objects (page bitmaps, rows) is not the tracker's cost; it runs in between."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        wall0, cpu0 = time.perf_counter_ns(), time.thread_time_ns()
        value = fn()
        return value, time.perf_counter_ns() - wall0, time.thread_time_ns() - cpu0
    finally:
        if enabled:
            gc.enable()


def run_cell(cell: Cell, run_id: str = "adhoc", progress: Progress | None = None,
             pages: list[dict] | None = None, number: int | None = None, *,
             on_interval: Callable[[dict], None] | None = None, watchdog: Watchdog = _NO_WATCHDOG,
             events: attribution.Session | None = None) -> list[dict]:
    """One cell in lockstep; returns its rows (a tracker's OSError, or the watchdog ending the
    cell, becomes an ``error:`` row).

    With *pages* (a list), per-interval bitmaps of truth and observation are appended to it
    for page and region trackers (packed bits: ``results.write_pages``), outside timed code.
    *number* (the cell's place in its plan) goes into both as ``cell``, which joins them.
    *on_interval(row)* runs after each finished interval (``results.RunWriter.interval``).
    A signal ends the cell after the interval in flight (``Interrupted`` propagates, after
    the tracker was stopped and the workload's threads joined).
    With *events*, each phase's kernel events are counted (or profiled: ``bench.attribution``).
    """
    import workloads

    cls = trackers.get(cell.tracker)
    interference = interference_mod.get(cell.interfere)()
    progress = progress or Progress(0)  # a cell run on its own draws nothing
    rows = []
    with interrupts.deferred("finishing the current interval"), arena_mod.Arena(cell.size_bytes, cell.backing) as arena:
        workload = workloads.create(cell.workload, npages=arena.npages, page_size=arena_mod.BASE_PAGE,
                                    seed=cell.seed, accesses=cell.accesses, threads=cell.threads,
                                    write_ratio=cell.write_ratio)
        workload.warmup()
        pagemap.warmup()  # else the first collect pays for loading its compiled helper (~0.3 s)
        placement = fault_path.resolve(cell.placement, workload.threads) if cls.serves_faults else None
        tracker = cls(server_cpus=placement.server) if placement else cls()
        base = {"run_id": run_id, "tracker": cls.name, "mechanism": cls.mechanism, "granularity": cls.granularity,
                "sees": cls.sees, "workload": workload.name, "workload_spec": cell.workload,
                "workload_params": json.dumps(workload.params(), sort_keys=True), "workload_version": workload.version,
                "backing": cell.backing, "size_bytes": arena.size, "page_size": arena.page_size,
                "npages": arena.npages, "repeat": cell.repeat, "seed": cell.seed, "intervals": cell.intervals,
                "interfere": cell.interfere, "huge_bytes": arena.huge_bytes(), "cell": number,
                "placement": placement.name if placement else None, **clock.row_fields()}
        affinity = fault_path.pin(placement)
        counters = events.for_cell(cls, key=_profile_key(base)) if events else attribution.NONE
        try:
            # counters opened before start: the threads start makes inherit them
            with watchdog.cell(expected_step_seconds(cell), on_stuck=tracker.stop) as watch, counters:
                tracker.start(arena)
                counters.attach(tracker)
                for i in range(cell.intervals):
                    interrupts.check()
                    progress.update(_label(cell), f"interval {i + 1}/{cell.intervals}", i / cell.intervals)
                    row, observation, truth = _interval(tracker, workload, arena, i, interference, counters)
                    rows.append({**base, "interval": i, **row})
                    if pages is not None:
                        pages.append(_page_bits(base, i, observation, truth, arena.npages))
                    if on_interval is not None:
                        on_interval(rows[-1])
                    watch.beat()
        except (OSError, CellTimeout) as e:
            rows.append({**base, "interval": len(rows), "status": f"error: {e}"})
        finally:
            tracker.stop()
            fault_path.unpin(affinity)
    return rows


def _label(cell: Cell) -> str:
    """The cell as progress names it: every dimension a plan can sweep, e.g.
    ``uffd-wp · hotcold · anon · 256M · rep 1`` (+ threads, accesses, cycle, interference when set)."""
    parts = [cell.tracker, cell.workload, cell.backing, arena_mod.size_token(cell.size_bytes)]
    parts += [f"{name} {value}" for name, value in (("threads", cell.threads), ("accesses", cell.accesses),
                                                    ("cycle", cell.cycle and f"{cell.cycle * 1000:g}ms"))
              if value is not None]
    parts.append(f"rep {cell.repeat + 1}")
    label = " · ".join(parts)
    return label if cell.interfere == interference_mod.NONE else f"{label} + {cell.interfere}"


def _interval(tracker: trackers.Tracker, workload, arena: arena_mod.Arena, i: int,
              interference: interference_mod.Interference | None = None, counters=attribution.NONE):
    """arm -> [interference] -> workload interval i -> [interference] -> collect, arm and collect
    timed (and their kernel events counted, outside the timing, when *counters* count); then
    (untimed) the truth replay and the score."""
    interference = interference or interference_mod.NoInterference()
    kdamond = getattr(tracker, "kdamond_pid", None)  # DAMON's work runs in its kthread, beside our timed calls
    kdamond0 = procfs.task_cpu_ns(kdamond)
    counters.begin_interval()
    with counters.phase("arm"):
        _, arm_ns, arm_cpu_ns = _timed(tracker.arm)
    done = [interference.hook(interference_mod.AFTER_ARM, arena)]
    with counters.phase("workload"):
        faults0, wall0 = procfs.minor_faults(), time.perf_counter_ns()
        workload.run_interval(arena.view, i)
        workload_ns, faults = time.perf_counter_ns() - wall0, procfs.minor_faults() - faults0
    done.append(interference.hook(interference_mod.AFTER_TOUCH, arena))
    with counters.phase("collect"):
        observation, collect_ns, collect_cpu_ns = _timed(tracker.collect)
    kdamond1 = procfs.task_cpu_ns(kdamond)
    truth = workload.truth(i)
    done = [d for d in done if d is not None]
    status, extra = observation.status, dict(observation.extra)
    for d in done:
        if d.status != "ok":
            status = d.status if status == "ok" else f"{status}; {d.status}"
        if d.info:
            extra["interference"] = d.info
    row = {**score(observation, truth, tracker.sees, arena.npages),
           "arm_ns": arm_ns, "arm_cpu_ns": arm_cpu_ns, "collect_ns": collect_ns, "collect_cpu_ns": collect_cpu_ns,
           "workload_ns": workload_ns, "minor_faults": faults, "interfere_ns": sum(d.ns for d in done),
           "kdamond_cpu_ns": kdamond1 - kdamond0 if kdamond0 is not None and kdamond1 is not None else None,
           "status": status, "extra": json.dumps(extra, sort_keys=True), **counters.take()}
    return row, observation, truth


def _profile_key(base: dict) -> dict:
    return {k: base[k] for k in ("run_id", "cell", "tracker", "workload_spec", "backing", "size_bytes", "repeat")}


def _page_bits(base: dict, i: int, observation, truth, npages: int) -> dict:
    import numpy as np

    from bench.scoring import regions_to_pages

    def packed(bits):
        return None if bits is None else np.packbits(bits, bitorder="little").tobytes()

    reported = observation.accessed
    if reported is None and observation.regions is not None:
        reported = regions_to_pages(observation.regions, npages)
    keys = ("run_id", "cell", "tracker", "workload_spec", "backing", "size_bytes", "repeat", "npages")
    return {**{k: base[k] for k in keys}, "interval": i, "truth_read": packed(truth.read),
            "truth_written": packed(truth.written), "reported": packed(reported),
            "reported_read": packed(observation.read), "reported_written": packed(observation.written)}


def run_plan(plan: Plan, run_dir: Path, manifest: dict, overhead=None, keep_pages: bool = False,
             watchdog: Watchdog = _NO_WATCHDOG, events: attribution.Session | None = None) -> list[dict]:
    """Run every cell; the results directory follows along (``results.RunWriter``): each
    finished interval (or A/B pair) at once, samples (and, in concurrent mode, batch
    latencies) and the manifest after each cell. *overhead* (a ``concurrent.Overhead``)
    selects concurrent mode; None is lockstep. *keep_pages* writes per-interval page bitmaps
    too. *watchdog* ends cells that make no progress (off by default). *events* (an entered
    ``attribution.Session``) counts or profiles each phase's kernel work.

    SIGINT, SIGTERM, SIGHUP: the interval (or A/B run) in flight finishes, the tracker
    stops, the results so far are written with the signal named in the manifest, then
    ``Interrupted`` propagates.
    """
    progress = Progress(len(plan.cells), weights=[cell_seconds(c, overhead) for c in plan.cells])
    if events:
        manifest.update(events.describe())
    writer = results.RunWriter(run_dir, manifest, len(plan.cells))
    with interrupts.deferred("finishing the current interval" if overhead is None else
                             "finishing the current A/B run"):
        try:
            for number, cell in enumerate(plan.cells):
                interrupts.check()

                def record(row: dict, latencies: list[dict] = (), number: int = number) -> None:
                    writer.interval(row, number, latencies)

                if overhead is None:
                    pages: list[dict] | None = [] if keep_pages else None
                    rows = run_cell(cell, manifest["run_id"], progress, pages, number, on_interval=record,
                                    watchdog=watchdog, events=events)
                    _record_kernel_work(events, manifest, run_dir)
                    writer.cell(rows, pages=pages, number=number)
                else:
                    from bench.concurrent import run_concurrent_cell

                    progress.update(_label(cell), f"{overhead.pairs} A/B pairs")
                    rows, latencies = run_concurrent_cell(cell, overhead, manifest["run_id"], on_pair=record,
                                                          watchdog=watchdog, events=events)
                    _record_kernel_work(events, manifest, run_dir)
                    writer.cell(rows, latencies)
                progress.advance(_outcome(rows, number))
            writer.finish(results.COMPLETE)
        except Interrupted as e:
            _record_kernel_work(events, manifest, run_dir)  # the interrupted cell's finished intervals
            writer.finish(results.INTERRUPTED, signal=e.signame)
            raise
        except BaseException as e:
            writer.finish(results.FAILED, error=f"{type(e).__name__}: {e}")
            raise
        finally:
            progress.close()
    return writer.rows


def _record_kernel_work(events: attribution.Session | None, manifest: dict, run_dir: Path) -> None:
    """What the kernel-work session counted and profiled so far, into the manifest (written by the
    next ``RunWriter`` call) and profile.parquet."""
    if events:
        manifest.update(events.describe())
        if events.profile_rows:
            results.write_profile(run_dir, events.profile_rows)


def _outcome(rows: list[dict], number: int) -> str:
    """What became of cell *number*, for a progress line: "ok" or its first error."""
    mine = [r for r in rows if r.get("cell") == number] or rows[-1:]
    errors = [str(r["status"]) for r in mine if str(r.get("status", "")).startswith("error")]
    return errors[0] if errors else "ok"


def plan_manifest(plan: Plan) -> dict:
    used = dict.fromkeys(c.interfere for c in plan.cells)
    placements = dict.fromkeys(c.placement for c in plan.cells if trackers.get(c.tracker).serves_faults)
    return {"cells": [asdict(c) for c in plan.cells], "skipped": plan.skipped,
            "interference": {name: interference_mod.get(name).describe() for name in used},
            "fault_placement": {name: fault_path.describe_all(name) for name in placements}}
