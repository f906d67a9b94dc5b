"""``hotbench history`` from a history store alone: figures per metric family, step changes
found and marked, a self-contained HTML index of the latest nightly, stores merged by copying
directories; and the step detector on its own. Synthetic nightly runs (no kernel needed);
tests/nightly/test_run.py builds the same from real quick runs."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyperf
import pytest

from analysis import _history_steps
from bench import results
from bench.nightly.suite import load_suite

VERSION = load_suite("default").version

ROOT = Path(__file__).resolve().parents[2]
CELL = "uffd-wp/hotcold/anon/16M"


def make_run(store: Path, day: int, *, host: str = "boxa", kernel: str = "7.3.0", collect: float = 1.0,
             recall: float = 1.0, status: str = "complete") -> Path:
    """A small nightly run on 2026-11-<day>: one lockstep cell (2 repeats x 6 intervals), one
    concurrent cell (4 pairs), one pyperf benchmark; ~5 % noise, seeded by day and host."""
    run_id = f"202611{day:02d}T020000Z-{host}-1"
    rng = np.random.default_rng(day * 7 + len(host))
    run_dir = store / run_id
    run_dir.mkdir(parents=True)
    rows = []
    for repeat in range(2):
        for i in range(6):
            tp = int(round(400 * recall))
            rows.append({"run_id": run_id, "mode": "lockstep", "tracker": "uffd-wp", "workload_spec": "hotcold",
                         "backing": "anon", "size_bytes": 16 << 20, "repeat": repeat, "interval": i, "tp": tp,
                         "fp": 0, "fn": 400 - tp, "tn": 3600, "tp_any": tp, "truth_any": 800, "wss_true": 400,
                         "wss_est": tp, "arm_ns": 3000 * rng.lognormal(0, 0.05),
                         "collect_ns": 150_000 * collect * rng.lognormal(0, 0.05), "arm_cpu_ns": 2500.0,
                         "collect_cpu_ns": 140_000 * collect * rng.lognormal(0, 0.05), "status": "ok"})
    for pair in range(4):
        rows.append({"run_id": run_id, "mode": "concurrent", "tracker": "uffd-wp", "workload_spec": "hotcold",
                     "backing": "anon", "size_bytes": 16 << 20, "pair": pair, "slowdown": 0.05 + rng.normal(0, 0.005),
                     "lat_p99_ns": 4e6 * rng.lognormal(0, 0.05), "base_lat_p99_ns": 3e6,
                     "tracker_cpu_ns_per_cycle": 3e5, "status": "ok"})
    results.write_samples(run_dir, rows)
    run = pyperf.Run(list(2e-6 * rng.lognormal(0, 0.03, 3)), collect_metadata=False,
                     metadata={"name": "fault/first-touch/4k", "unit": "second", "loops": 1})
    pyperf.BenchmarkSuite([pyperf.Benchmark([run])]).dump(str(run_dir / "micro.json"))
    results.write_manifest(run_dir, {
        "run_id": run_id, "mode": "nightly", "status": status, "git_commit": "0" * 40,
        "environment": {"hostname": host, "kernel_release": kernel, "kernel_version": "#1", "accel": "native",
                        "hotbench_version": "0.1.0", "cpus": 2},
        "skipped": {"rwp": "UFFDIO_API lacks UFFD_FEATURE_RWP"},
        "nightly": {"suite": load_suite("default", quick=True).manifest(), "started": f"2026-11-{day:02d}T02:00:00Z",
                    "seconds": 41.0, "phases": {
                        "micro": {"status": "ok", "benchmarks": ["fault/first-touch/4k"], "seconds": 20.0,
                                  "skipped": {"fault/rwp-async/4k": "rwp: UFFDIO_API lacks UFFD_FEATURE_RWP"}},
                        "accuracy": {"status": "ok", "cells": 1, "cells_done": 1, "trackers": ["uffd-wp"],
                                     "seconds": 3.0, "skipped": {"rwp": "UFFDIO_API lacks UFFD_FEATURE_RWP"}},
                        "overhead": {"status": "ok", "cells": 1, "cells_done": 1, "trackers": ["uffd-wp"],
                                     "seconds": 8.0}}},
    })
    return run_dir


def hotbench(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_three_runs_build_figures_and_a_self_contained_index(tmp_path):
    store, out = tmp_path / "history", tmp_path / "site"
    make_run(store, 10)
    make_run(store, 11)
    make_run(store, 12, kernel="7.4.0-rc1")
    got = hotbench("history", "--history", str(store), "--out", str(out))
    assert got.returncode == 0, got.stderr
    assert got.stderr == ""
    assert "3 run(s)" in got.stdout and f"index: {out / 'index.html'}" in got.stdout
    families = {"micro", "arm_ns", "collect_ns", "arm_cpu_ns", "collect_cpu_ns", "p99_ratio", "cycle_cpu_ns",
                "slowdown", "precision", "recall", "wss_error"}
    assert {p.stem for p in (out / "figures").glob("*.png")} == families
    page = (out / "index.html").read_text()
    assert page.count("data:image/png;base64,") == len(families)
    assert not re.search(r"(src|href)=\"(https?:|//|/)", page) and "<script" not in page
    for text in ("20261112T020000Z-boxa-1", "7.4.0-rc1", "No regression against the previous run",
                 "UFFDIO_API lacks UFFD_FEATURE_RWP", f"boxa · default v{VERSION} quick"):
        assert text in page, text
    index = json.loads((store / "index.json").read_text())
    assert [e["run_id"] for e in index["entries"]] == [f"202611{d}T020000Z-boxa-1" for d in (10, 11, 12)]
    assert json.loads((out / "steps.json").read_text()) == []


def test_built_from_the_store_alone(tmp_path):
    """A copy of the store elsewhere, its index removed, gives the same page byte for byte."""
    store = tmp_path / "history"
    for day in (10, 11, 12):
        make_run(store, day)
    assert hotbench("history", "--history", str(store), "--out", str(tmp_path / "one")).returncode == 0
    copy = tmp_path / "elsewhere" / "history"
    shutil.copytree(store, copy)
    (copy / "index.json").unlink()
    shutil.rmtree(store)
    got = hotbench("history", "--history", str(copy), "--out", str(tmp_path / "two"))
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "one" / "index.html").read_bytes() == (tmp_path / "two" / "index.html").read_bytes()
    assert (copy / "index.json").is_file()


def test_step_change_is_found_marked_and_listed(tmp_path):
    store = tmp_path / "history"
    for day in range(10, 20):  # collect doubles from the 15th on, with the kernel
        make_run(store, day, collect=2.0 if day >= 15 else 1.0, kernel="7.4.0" if day >= 15 else "7.3.0")
    got = hotbench("history", "--history", str(store), "--out", str(tmp_path / "site"))
    assert got.returncode == 0, got.stderr
    steps = json.loads((tmp_path / "site" / "steps.json").read_text())
    # collect doubled in CPU and wall time: beyond both the threshold and the noise floor
    assert [(s["metric"], s["index"], s["direction"]) for s in steps] == [(f"collect_cpu_ns:{CELL}", 5, "regression"),
                                                                          (f"collect_ns:{CELL}", 5, "regression")]
    step = steps[0]
    assert step["kernel_before"] == "7.3.0" and step["kernel_after"] == "7.4.0"
    assert step["change"] == pytest.approx(1.0, abs=0.15)
    assert step["run_after"] == "20261115T020000Z-boxa-1"
    assert re.search(rf"2026-11-15T02:00\s+collect_cpu_ns:{re.escape(CELL)}\s+.*\+\d+\.\d%\s+regression",
                     got.stdout)
    page = (tmp_path / "site" / "index.html").read_text()
    assert f"<td>collect_cpu_ns:{CELL}</td>" in page and "7.3.0 → 7.4.0" in page


def test_filters_and_merged_stores(tmp_path):
    a, b, merged = tmp_path / "boxa", tmp_path / "boxb", tmp_path / "merged"
    for day in (10, 11, 12):
        make_run(a, day, host="boxa")
        make_run(b, day, host="boxb", kernel="7.4.0-rc1" if day == 12 else "7.3.0")
    make_run(a, 13, host="boxa", status="interrupted")
    for store in (a, b):  # merging is copying run directories side by side
        for run_dir in store.iterdir():
            if run_dir.is_dir():
                shutil.copytree(run_dir, merged / run_dir.name)
    listing = hotbench("history", "--history", str(merged), "--list")
    assert listing.returncode == 0, listing.stderr
    assert len(listing.stdout.splitlines()) == 2 + 7 and "interrupted" in listing.stdout
    got = hotbench("history", "--history", str(merged), "--out", str(tmp_path / "site"), "--metric", "recall")
    assert got.returncode == 0, got.stderr
    assert "6 run(s), 1 metric(s), 1 figure(s)" in got.stdout  # the interrupted run is not drawn
    assert [p.name for p in (tmp_path / "site" / "figures").glob("*.png")] == ["recall.png"]
    page = (tmp_path / "site" / "index.html").read_text()
    assert f"boxa · default v{VERSION} quick" in page and f"boxb · default v{VERSION} quick" in page
    got = hotbench("history", "--history", str(merged), "--out", str(tmp_path / "k"), "--kernel", "7.4*")
    assert got.returncode == 0 and "1 run(s)" in got.stdout, got.stdout + got.stderr
    assert "The first run of its series" in (tmp_path / "k" / "index.html").read_text()


@pytest.mark.parametrize("args,message", [
    (["--metric", "nosuch"], "no metric matches 'nosuch'"),
    (["--kernel", "9.9*"], "holds no complete nightly run with a kernel matching '9.9*'"),
])
def test_bad_filters_are_one_line(tmp_path, args, message):
    make_run(tmp_path / "history", 10)
    got = hotbench("history", "--history", str(tmp_path / "history"), "--out", str(tmp_path / "site"), *args)
    assert got.returncode == 1 and got.stderr.startswith("error: ") and got.stderr.count("\n") == 1, got.stderr
    assert message in got.stderr


def test_missing_store_is_one_line(tmp_path):
    got = hotbench("history", "--history", str(tmp_path / "nothing"))
    assert got.returncode == 1 and "does not exist" in got.stderr and got.stderr.count("\n") == 1, got.stderr


# ---------------------------------------------------------------- the step detector alone

def test_detector_finds_steps_not_noise():
    rng = np.random.default_rng(5)
    flat = rng.normal(0, 0.1, 40)
    assert _history_steps.detect(flat) == []
    step = np.r_[rng.normal(0, 0.1, 20), rng.normal(0.7, 0.1, 20)]
    assert _history_steps.detect(step) == [20]
    two = np.r_[rng.normal(0, 0.05, 10), rng.normal(1, 0.05, 10), rng.normal(0.3, 0.05, 10)]
    assert _history_steps.detect(two) == [10, 20]
    levels = _history_steps.levels(two, [10, 20])
    assert levels[0] == pytest.approx(0, abs=0.05) and levels[15] == pytest.approx(1, abs=0.05)


def test_detector_ignores_single_outliers_and_short_series():
    y = np.zeros(12)
    y[6] = 5.0
    assert _history_steps.detect(y) == []
    assert _history_steps.detect([0.0, 1.0, 1.0]) == []  # fewer than 2 x MIN_SIZE runs
    assert _history_steps.detect([1.0, 1.0, 0.8, 0.8]) == [2]


def test_instruction_count_series_get_figures_of_their_own(tmp_path):
    """A store with wall-clock and icount runs never draws both on one axis."""
    store, out = tmp_path / "history", tmp_path / "site"
    for day in (10, 11):
        make_run(store, day)
        icount = make_run(store, day, host="guest")
        manifest = json.loads((icount / "manifest.json").read_text())
        manifest["environment"].update(accel="tcg", clock="instructions", icount_shift=0)
        (icount / "manifest.json").write_text(json.dumps(manifest))
    got = hotbench("history", "--history", str(store), "--out", str(out), "--metric", "collect_ns")
    assert got.returncode == 0, got.stderr
    assert sorted(p.name for p in (out / "figures").glob("*.png")) == ["collect_ns-icount.png", "collect_ns.png"]
    page = (out / "index.html").read_text()
    assert "guest/tcg-icount" in page and "guest instructions (icount)" in page
