"""``hotbench nightly``: one fixed, versioned suite (``bench/suites/*.toml``) run on the
mechanisms this kernel has, appended to a history store (``bench/nightly/store.py``).

A nightly run is one ordinary results directory, readable by 'hotbench report' and 'plot':

  manifest.json     the usual manifest (environment, probes, cells, skipped trackers) plus a
                    ``nightly`` block: the suite as it ran (name, version, variant, file digest,
                    effective sections, thresholds), command-line overrides, start time,
                    and per phase its status, duration, skips and the 1-minute load average
                    before and after; ``mode`` is "nightly"
  samples.parquet   lockstep rows (``mode`` = "lockstep") and concurrent rows ("concurrent")
  latency.parquet   the concurrent cells' batch latencies
  micro.json        the pyperf suite written by 'hotbench micro'
  harness.json      the suite's [harness] ratios ('hotbench harness': workload loop vs bare
                    loop, tracker arm/collect vs raw primitive, in-run vs micro fault cost)

Three phases, each reusing the command that does it alone: ``micro`` runs ``python -m
bench.micro`` (pyperf needs its own process tree: a Runner per process, workers re-executed);
``accuracy`` and ``overhead`` build plans with ``runner.make_plan`` and run them with
``runner.run_plan`` into a staging directory each (``run_plan`` owns its directory's
samples file), whose rows are then merged into the run directory after every phase. A
phase that fails is recorded and the others still run (status "partial"); SIGINT, SIGTERM or
SIGHUP (``bench.interrupts``; forwarded to the micro phase's process) stops after the current
interval or benchmark and keeps what was measured (status "interrupted", the signal named).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from bench import interrupts, results
from bench.errors import HotbenchError, Interrupted
from bench.kernel import procfs
from bench.nightly.suite import Suite

__all__ = ["MICRO_FILE", "NightlyRun", "run_nightly", "estimate_seconds"]

MICRO_FILE = "micro.json"
HARNESS_FILE = "harness.json"
PHASES = ("micro", "accuracy", "overhead", "harness")
MICRO_SECONDS_PER_BENCHMARK = 8.0  # --fast on this class of machine: 3 worker processes + calibration
_CHECKOUT = Path(__file__).resolve().parents[2]


@dataclass
class NightlyRun:
    run_dir: Path
    manifest: dict
    phases: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.manifest.get("status", "running")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _loadavg() -> float | None:
    """The 1-minute load average: how busy the machine was around a phase (compare warns on a difference)."""
    try:
        return float(Path(procfs.LOADAVG).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------- plans

def _known_trackers(names: list[str]) -> tuple[list[str], dict[str, str]]:
    from bench import trackers

    known = trackers.registry()
    return [n for n in names if n in known], {n: "not a tracker of this hotbench" for n in names if n not in known}


def _plans(suite: Suite, trackers: list[str] | None):
    """(lockstep plan, concurrent plan, Overhead, skips per phase)."""
    from bench import arena, runner
    from bench.concurrent import Overhead

    acc, ovh = suite.sections["accuracy"], suite.sections["overhead"]
    sizes = [arena.parse_size(acc["size"]), arena.parse_size(ovh["size"])]
    runner.check_sizes(sizes)
    acc_names, acc_unknown = _known_trackers(trackers or acc["trackers"])
    ovh_names, ovh_unknown = _known_trackers(trackers or ovh["trackers"])
    backings = acc.get("backings", ["auto"])
    lockstep = runner.make_plan(acc_names, acc["workloads"], backings, [sizes[0]], acc["intervals"],
                                acc.get("repeats", 1), acc.get("seed", 1)) if acc_names else runner.Plan([], {})
    overhead = Overhead(duration=float(ovh["duration"]), cycle=float(ovh.get("cycle", 0.1)),
                        batch=int(ovh.get("batch", 10_000)), pairs=int(ovh.get("pairs", 2)))
    if overhead.duration <= 0 or overhead.batch < 1 or overhead.pairs < 1 or overhead.cycle <= 0:
        raise HotbenchError(f"suite {suite.name}: [overhead] duration and cycle must be positive, batch and pairs "
                            f"at least 1")
    concurrent = runner.make_plan(ovh_names, ovh["workloads"], ["auto"], [sizes[1]], 1, 1, acc.get("seed", 1),
                                  cycles=[overhead.cycle]) if ovh_names else runner.Plan([], {})
    lockstep.skipped.update(acc_unknown)
    concurrent.skipped.update(ovh_unknown)
    return lockstep, concurrent, overhead


def changes_global_state(suite: Suite, trackers: list[str] | None = None) -> bool:
    """Does a run of *suite* change global kernel state (a tracker that flips a knob or makes a
    kdamond)? Then it holds the run lock exclusively (``bench.runlock``)."""
    from bench import trackers as registry

    lockstep, concurrent, _ = _plans(suite, trackers)
    if "harness" in suite.sections and registry.changing_global_state(trackers):  # its phase runs every tracker
        return True
    return any(registry.get(c.tracker).global_state for c in [*lockstep.cells, *concurrent.cells])


def _micro_selection(suite: Suite, bench: str | None):
    from bench import micro

    return micro.select(micro.cases(), bench or suite.sections["micro"]["bench"])


def estimate_seconds(suite: Suite, bench: str | None = None, trackers: list[str] | None = None) -> float:
    from bench import runner

    lockstep, concurrent, overhead = _plans(suite, trackers)
    chosen, _ = _micro_selection(suite, bench)
    return (len(chosen) * MICRO_SECONDS_PER_BENCHMARK + runner.estimate_seconds(lockstep)
            + runner.estimate_seconds(concurrent, overhead))


# ---------------------------------------------------------------- phases

def _micro_phase(run: NightlyRun, suite: Suite, bench: str | None, log: TextIO) -> dict:
    chosen, skipped = _micro_selection(suite, bench)
    phase = {"bench": bench or suite.sections["micro"]["bench"], "benchmarks": [c.name for c in chosen],
             "skipped": dict(skipped)}
    if not chosen:
        return {**phase, "status": "skipped: no matching benchmark is available on this kernel"}
    cmd = [sys.executable, "-m", "bench.micro", *suite.sections["micro"].get("options", []), "--quiet",
           "--bench", "^(" + "|".join(map(re.escape, phase["benchmarks"])) + ")$",
           "-o", str(run.run_dir / MICRO_FILE)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(_CHECKOUT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))])
    log.flush()
    proc = subprocess.Popen(cmd, cwd=_CHECKOUT, env=env, stdout=log, stderr=log)
    with interrupts.forwarding(proc):  # a SIGTERM to this process alone stops the benchmarks too
        proc.wait()
    interrupts.check()
    phase["command"] = cmd[1:]
    if proc.returncode != 0:
        return {**phase, "status": f"error: hotbench micro exited with status {proc.returncode} (its output is above)"}
    return {**phase, "status": "ok", "file": MICRO_FILE}


def _harness_phase(run: NightlyRun, suite: Suite, trackers: list[str] | None) -> dict:
    import json

    from bench import harness

    section = suite.sections.get("harness")
    if section is None:
        return {"status": "skipped: the suite has no [harness] section"}
    rows = harness.nightly_metrics(section, trackers)
    results.atomic_write_bytes(run.run_dir / HARNESS_FILE, (json.dumps(rows, indent=1) + "\n").encode())
    return {"status": "ok", "file": HARNESS_FILE, "metrics": len({r["metric"] for r in rows})}


def _run_phase(run: NightlyRun, name: str, plan, overhead) -> dict:
    """Run *plan* into a staging directory with ``runner.run_plan``; its rows are merged by the caller."""
    from bench import runner

    phase = {"cells": len(plan.cells), "skipped": dict(plan.skipped),
             "trackers": sorted({c.tracker for c in plan.cells})}
    if not plan.cells:
        return {**phase, "status": "skipped: no tracker of this phase is available here"}
    stage = run.run_dir / f".{name}"
    stage.mkdir()
    manifest = {"run_id": run.manifest["run_id"], "mode": "concurrent" if overhead else "lockstep",
                "overhead": dataclasses.asdict(overhead) if overhead else None,
                "environment": run.manifest["environment"], **runner.plan_manifest(plan)}
    try:
        rows = runner.run_plan(plan, stage, manifest, overhead)
    finally:
        phase["cells_done"] = manifest.get("cells_done", 0)
    errors = sorted({f"{r['tracker']} x {r['workload_spec']}: {r['status']}" for r in rows
                     if str(r.get("status", "")).startswith("error")})
    if errors:
        return {**phase, "status": f"error: {len(errors)} cell(s) failed", "errors": errors}
    return {**phase, "status": "ok"}


def _merge(run: NightlyRun) -> None:
    """Gather the staged phases' rows into the run directory (atomically, as every results file)."""
    import pandas as pd

    frames, latency = [], []
    for name, mode in (("accuracy", "lockstep"), ("overhead", "concurrent")):
        stage = run.run_dir / f".{name}"
        if (stage / results.SAMPLES).is_file() or (stage / results.PARTIAL).is_file():
            frames.append(results.load_samples(stage).assign(mode=mode))
        if (stage / results.LATENCY).is_file():
            latency.append(pd.read_parquet(stage / results.LATENCY))
    for write, parts in ((results.write_samples, frames), (results.write_latencies, latency)):
        parts = [p for p in parts if len(p)]
        if parts:
            write(run.run_dir, pd.concat(parts, ignore_index=True))


def _cleanup_stages(run: NightlyRun) -> None:
    for name in ("accuracy", "overhead"):
        shutil.rmtree(run.run_dir / f".{name}", ignore_errors=True)


# ---------------------------------------------------------------- the run

def run_nightly(suite: Suite, history: Path, *, bench: str | None = None, trackers: list[str] | None = None,
                log: TextIO = sys.stderr) -> NightlyRun:
    """Run *suite* into a new directory of *history*; returns it with its manifest.

    Raises ``Interrupted`` (after writing what was measured) on SIGINT/SIGTERM/SIGHUP, and
    ``HotbenchError`` when nothing at all can run here.
    """
    from bench import environment
    from bench.nightly import store as nightly_store

    lockstep, concurrent, overhead = _plans(suite, trackers)
    chosen, _ = _micro_selection(suite, bench)
    if not (chosen or lockstep.cells or concurrent.cells):
        hint = " (most mechanisms need root: run as root)" if os.geteuid() != 0 else ""
        raise HotbenchError(f"nothing to run: no benchmark or tracker of suite {suite.name!r} is available here"
                            f"{hint}; see 'hotbench probe'")
    try:
        Path(history).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HotbenchError(f"cannot create the history store {history}: {e.strerror}; choose another --history") \
            from None
    run_id = results.new_run_id()
    run_dir = results.create_run_dir(Path(history), run_id, latest=False)  # 'latest' means the store's newest
    started = time.monotonic()
    cells = ([{**dataclasses.asdict(c), "mode": "lockstep"} for c in lockstep.cells]
             + [{**dataclasses.asdict(c), "mode": "concurrent"} for c in concurrent.cells])
    manifest = {
        "run_id": run_id, "command": results.command_line(), "git_commit": results.git_commit(), "mode": "nightly",
        "overhead": dataclasses.asdict(overhead), "settings": {}, "environment": environment.describe(),
        "cells": cells, "skipped": {**concurrent.skipped, **lockstep.skipped},
        "nightly": {"suite": suite.manifest(), "machine": os.environ.get("HOTBENCH_MACHINE") or None,
                    "overrides": {k: v for k, v in (("bench", bench),
                                                                               ("trackers", trackers)) if v},
                    "started": _now(), "phases": {}},
        "status": "running",
    }
    run = NightlyRun(run_dir, manifest)
    results.stamp_progress(manifest, phases_total=len(PHASES), phases_done=0)
    results.write_manifest(run_dir, manifest)
    nightly_store.rebuild_index(history)
    status = "complete"
    try:
        with interrupts.deferred("finishing the current interval or benchmark"):
            for name in PHASES:
                interrupts.check()
                t0, load0 = time.monotonic(), _loadavg()
                print(f"nightly: {name}…", file=log, flush=True)
                try:
                    if name == "micro":
                        phase = _micro_phase(run, suite, bench, log)
                    elif name == "accuracy":
                        phase = _run_phase(run, name, lockstep, None)
                    elif name == "harness":
                        phase = _harness_phase(run, suite, trackers)
                    else:
                        phase = _run_phase(run, name, concurrent, overhead)
                except Interrupted:
                    manifest["nightly"]["phases"][name] = {"status": "interrupted",
                                                           "seconds": round(time.monotonic() - t0, 1)}
                    raise
                except HotbenchError as e:
                    phase = {"status": f"error: {e}"}
                finally:
                    _merge(run)
                phase["seconds"] = round(time.monotonic() - t0, 1)
                phase["loadavg"] = [load0, _loadavg()]
                manifest["nightly"]["phases"][name] = phase
                if phase["status"].startswith("error"):
                    status = "partial"
                results.stamp_progress(manifest, phases_done=len(manifest["nightly"]["phases"]))
                results.write_manifest(run_dir, manifest)
    except Interrupted as e:
        status = "interrupted"
        manifest["signal"] = e.signame
        raise e.saying(f"interrupted by {e.signame}; what was measured is kept in {run_dir}") from None
    finally:
        manifest["status"] = status
        manifest["nightly"]["finished"] = _now()
        manifest["nightly"]["seconds"] = round(time.monotonic() - started, 1)
        results.stamp_progress(manifest)
        results.write_manifest(run_dir, manifest)
        _cleanup_stages(run)
        nightly_store.rebuild_index(history)
    run.phases = manifest["nightly"]["phases"]
    return run
