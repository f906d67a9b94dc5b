"""bench/results.py: every file hotbench writes — atomic, 0644, versioned, and readable after
whatever ended the process (a killed run reads as killed, its finished intervals kept)."""

import json
import os
import stat
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from bench import results
from bench._owner import Owner
from bench.errors import HotbenchError

ROOT = Path(__file__).resolve().parents[2]

DEAD = {"pid": 1, "start": -1, "boot_id": "", "host": os.uname().nodename}  # no process started at tick -1


def _row(cell, interval, status="ok"):
    return {"run_id": "r", "cell": cell, "tracker": "t", "interval": interval, "status": status}


def test_the_writer_keeps_every_finished_interval_as_it_goes(tmp_path):
    manifest = {"run_id": "r", "cells": [{}, {}, {}]}
    writer = results.RunWriter(tmp_path, manifest, cells_total=3)
    on_disk = results.load_manifest(tmp_path)
    assert on_disk["status"] == "running" and on_disk["format_version"] == results.FORMAT_VERSION
    assert Owner.from_dict(on_disk["progress"]["owner"]).is_me()
    writer.interval(_row(0, 0), 0)
    writer.interval(_row(0, 1), 0)
    assert json.loads((tmp_path / results.MANIFEST).read_text())["progress"]["intervals_done"] == 2
    partial = results.load_samples(tmp_path)
    assert list(partial["interval"]) == [0, 1] and partial["partial"].all()
    writer.cell([_row(0, 0), _row(0, 1)])
    assert not (tmp_path / results.PARTIAL).exists()
    writer.interval(_row(1, 0), 1)  # the cell in progress when the signal came
    writer.finish(results.INTERRUPTED, signal="SIGTERM")
    samples = results.load_samples(tmp_path)
    assert list(samples["partial"]) == [False, False, True] and not (tmp_path / results.PARTIAL).exists()
    manifest = results.load_manifest(tmp_path)
    assert manifest["status"] == "interrupted" and manifest["signal"] == "SIGTERM" and manifest["cells_done"] == 1
    assert manifest["progress"]["cell"] == 1 and manifest["progress"]["intervals_done"] == 1
    assert results.status_line(manifest) == ("interrupted by SIGTERM after 1 of 3 cells, and 1 finished interval "
                                             "of cell 2 (kept, marked partial)")
    for name in (results.MANIFEST, results.SAMPLES):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644


def test_a_running_manifest_whose_owner_is_gone_reads_as_killed(tmp_path):
    manifest = {"run_id": "r", "status": "running",
                "progress": {"cells_total": 5, "cells_done": 2, "updated": "2026-12-01T10:00:00Z", "owner": DEAD}}
    assert results.run_status(manifest) == "killed"
    line = results.status_line(manifest)
    assert line.startswith("killed after 2 of 5 cells (pid 1 is gone; last update ") and "ago" in line
    mine = {**manifest, "progress": {**manifest["progress"], "owner": Owner.current().as_dict()}}
    assert results.run_status(mine) == "running" and results.status_line(mine).startswith("running: 2 of 5 cells")
    elsewhere = {**manifest, "progress": {**manifest["progress"], "owner": {**DEAD, "host": "other-box"}}}
    assert results.run_status(elsewhere) == "running"  # cannot tell from here: not called dead
    assert "cannot check pid 1 on other-box from here" in results.status_line(elsewhere)
    assert results.run_status({"status": "running"}) == "killed"  # format 1-2: no owner at all
    assert results.status_line({"status": "interrupted after 1 of 4 cells"}) == "interrupted after 1 of 4 cells"


def test_a_killed_processes_partial_cell_is_read_back(tmp_path):
    """What SIGKILL leaves: samples of the finished cells, partial.json of the cell in progress."""
    writer = results.RunWriter(tmp_path, {"run_id": "r"}, cells_total=2)
    writer.cell([_row(0, 0)])
    writer.interval(_row(1, 0), 1)  # ... killed here
    samples = results.load_samples(tmp_path)
    assert list(samples["cell"]) == [0, 1] and list(samples["partial"]) == [False, True]
    manifest = {**results.load_manifest(tmp_path), "mode": "concurrent"}
    manifest["progress"]["owner"] = DEAD
    assert results.status_line(manifest).startswith("killed after 1 of 2 cells, and 1 finished A/B pair of cell 2 "
                                                     "(kept, marked partial) (pid 1 is gone; ")


def test_atomic_writes_are_0644_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        results.atomic_write_bytes(tmp_path / "x", b"1")
        results.atomic_write_bytes(tmp_path / "y", b"2", durable=False)
    finally:
        os.umask(old)
    assert {stat.S_IMODE(os.stat(tmp_path / n).st_mode) for n in "xy"} == {0o644}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left"


def test_directories_are_0755_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        run_dir = results.create_run_dir(tmp_path / "a" / "b", "r")
        results.write_pages(run_dir, 0, [])
    finally:
        os.umask(old)
    made = [tmp_path / "a", tmp_path / "a" / "b", run_dir, run_dir / results.PAGES]
    assert {stat.S_IMODE(os.stat(d).st_mode) for d in made} == {0o755}
    with pytest.raises(HotbenchError, match="already exists"):
        results.create_run_dir(tmp_path / "a" / "b", "r")


@pytest.mark.parametrize("suffix", [".json", ".parquet"])
def test_eviction_results_round_trip_with_their_version(tmp_path, suffix):
    path = tmp_path / f"rows{suffix}"
    results.write_eviction(path, [{"variant": "none", "round": 0}, {"variant": "racy", "round": 0}])
    assert list(results.load_eviction(path)["variant"]) == ["none", "racy"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_eviction_results_of_an_unknown_version_are_refused(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps({"format": "hotbench-evict", "version": 99, "rows": []}))
    with pytest.raises(HotbenchError, match="version 99 is not one this hotbench reads"):
        results.load_eviction(path)
    with pytest.raises(HotbenchError, match=r"\.json or \.parquet"):
        results.load_eviction(tmp_path / "rows.csv")


def test_experiment_records_are_versioned(tmp_path):
    results.write_experiment(tmp_path, {"experiment": "x", "steps": []})
    assert results.load_experiment(tmp_path)["format_version"] == results.EXPERIMENT_VERSION
    (tmp_path / results.EXPERIMENT).write_text(json.dumps({"experiment": "x", "steps": []}))  # 2026-11: unversioned
    assert results.load_experiment(tmp_path)["experiment"] == "x"
    (tmp_path / results.EXPERIMENT).write_text(json.dumps({"format_version": 99}))
    with pytest.raises(HotbenchError, match="experiment format version 99"):
        results.load_experiment(tmp_path)


def test_the_nightly_index_is_versioned(tmp_path):
    results.write_index(tmp_path, [{"run_id": "a"}])
    assert results.load_index(tmp_path) == [{"run_id": "a"}]
    (tmp_path / results.INDEX).write_text(json.dumps({"index_version": 7, "entries": []}))
    with pytest.raises(HotbenchError, match="index version 7"):
        results.load_index(tmp_path)


def test_nothing_else_writes_a_results_file():
    """The rule of one results module, checked on the source: parquet and CSV are written by
    bench/results.py only."""
    out = subprocess.run(["git", "grep", "-n", "-E", r"to_parquet\(|\.to_csv\(|write_table\(", "--", "bench",
                          "workloads"], capture_output=True, text=True, cwd=ROOT)
    offenders = [line for line in out.stdout.splitlines() if not line.startswith("bench/results.py:")]
    assert offenders == [], offenders
