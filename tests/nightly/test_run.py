"""``hotbench nightly`` through the CLI: suites load and refuse typos; two small quick runs in
a row (root, uffd-wp) land in one history store and 'hotbench compare' reads them; a copy of
one with collect slowed beyond its noise floor, or recall dropped, fails compare naming the
metric; 'hotbench history' builds from the store alone.

The quick runs are kept small (two micro-benchmarks, one tracker, 16M arenas): about half a
minute each here. Nothing asserts a timing, and nothing asserts that the two live runs agree:
on a shared machine they need not (the A/A check of the error model runs on recorded runs,
tests/analysis/test_aa.py)."""

import json
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from bench import results
from bench.nightly.suite import load_suite
from bench.errors import HotbenchError

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--quick", "--bench", r"^scan/pagemap_scan/(plain|wp_matching)/1pct/4k$",
         "--trackers", "uffd-wp"]
CELL = "uffd-wp/hotcold/anon/16M"
VERSION = load_suite("default").version


def hotbench(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


# ---------------------------------------------------------------- suites (no kernel needed)

def test_default_suite_and_its_quick_variant():
    from analysis.compare import FAMILIES

    full, quick = load_suite("default"), load_suite("default", quick=True)
    assert (full.name, full.version, full.variant, quick.variant) == ("default", 5, "full", "quick")
    assert quick.sections["harness"]["faults"] is False and full.sections["harness"]["size"] == "64M"
    assert full.sha256 == quick.sha256 and full.source == "default.toml"
    assert quick.sections["accuracy"]["size"] == "16M" and quick.sections["overhead"]["size"] == "16M"
    assert full.sections["accuracy"]["workloads"] == ["uniform", "zipf", "hotcold"]
    assert quick.sections["overhead"]["workloads"] == full.sections["overhead"]["workloads"]  # not overridden
    for suite in (full, quick):  # every metric family has a threshold
        assert set(FAMILIES) <= set(suite.thresholds), set(FAMILIES) - set(suite.thresholds)
    assert suite.manifest()["thresholds"] == quick.thresholds


def test_suites_ship_with_the_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "suites/*.toml" in config["tool"]["setuptools"]["package-data"]["bench"]


@pytest.mark.parametrize("text,message", [
    ('name = "x"\nversion = 1\n[micro]\nbench = "."\nbenhc = 1\n', "unknown key 'benhc' in [micro]"),
    ('name = "x"\nversion = "1"\n', "needs name"),
    ('name = "x"\nversion = 1\n[micro]\nbench = "."\n', "lacks the [accuracy] table"),
    ('name = "x"\nversion = 1\nthreshold = 3\n', "unknown top-level key(s) threshold"),
    ('name = "x"\nversion = 1\n[micro]\nbench = "."\n[accuracy]\ntrackers = []\nworkloads = []\nsize = "1M"\n'
     'intervals = 1\n[overhead]\ntrackers = []\nworkloads = []\nsize = "1M"\nduration = 1\n[harness]\nrepeat = 3\n',
     "unknown key 'repeat' in [harness]"),
])
def test_suite_typos_are_refused(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(HotbenchError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        load_suite(str(path))


def test_bad_suite_is_one_line(tmp_path):
    out = hotbench("nightly", "--suite", "nosuch", "--history", str(tmp_path))
    assert out.returncode == 1 and out.stderr.startswith("error: unknown suite 'nosuch'"), out.stderr
    assert out.stderr.count("\n") == 1 and not any(tmp_path.iterdir())


def test_estimate(tmp_path):
    out = hotbench("nightly", "--quick", "--estimate", "--history", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"suite default v{VERSION} (quick): about ") and out.stdout.rstrip().endswith(
        "min here when the machine is idle (a busy one takes up to three times as long)")
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------- two real quick runs

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    history = tmp_path_factory.mktemp("nightly") / "history"
    outs = [hotbench("nightly", *SMALL, "--history", str(history)) for _ in range(2)]
    return history, outs


@pytest.mark.root
@pytest.mark.mechanism("uffd-wp")
def test_two_quick_runs_make_a_history_of_both(store):
    history, outs = store
    for out in outs:
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"nightly: suite default v{VERSION} (quick)" in out.stdout and ": complete in " in out.stdout
    entries = json.loads((history / "index.json").read_text())["entries"]
    assert [e["status"] for e in entries] == ["complete", "complete"]
    assert len({(e["machine"], e["suite"], e["suite_version"], e["variant"]) for e in entries}) == 1
    assert {e["variant"] for e in entries} == {"quick"}
    for out, entry in zip(outs, entries):
        run_dir = history / entry["dir"]
        assert f"run:     {run_dir}\n" in out.stdout
        assert {p.name for p in run_dir.iterdir()} == {"manifest.json", "samples.parquet", "latency.parquet",
                                                       "micro.json", "harness.json"}
        manifest = results.load_manifest(run_dir)
        nightly = manifest["nightly"]
        assert manifest["mode"] == "nightly" and manifest["status"] == "complete"
        assert [(name, phase["status"]) for name, phase in nightly["phases"].items()] == [
            ("micro", "ok"), ("accuracy", "ok"), ("overhead", "ok"), ("harness", "ok")]
        harness = json.loads((run_dir / "harness.json").read_text())
        assert {r["metric"] for r in harness} == {"harness:loop/uniform", "harness:loop/zipf",
                                                  "harness:collect/uffd-wp"}
        assert all(r["family"] == "harness" and r["value"] > 0 for r in harness)
        assert nightly["overrides"] == {"bench": SMALL[2], "trackers": ["uffd-wp"]}
        assert nightly["suite"]["variant"] == "quick" and nightly["suite"]["sections"]["accuracy"]["size"] == "16M"
        samples = pd.read_parquet(run_dir / "samples.parquet")
        assert set(samples["mode"]) == {"lockstep", "concurrent"} and set(samples["tracker"]) == {"uffd-wp"}
        import pyperf

        suite = pyperf.BenchmarkSuite.load(str(run_dir / "micro.json"))
        assert sorted(suite.get_benchmark_names()) == ["scan/pagemap_scan/plain/1pct/4k",
                                                       "scan/pagemap_scan/wp_matching/1pct/4k"]
        # pinned workers: an unpinned TLB flush waits on an IPI to the other, maybe idle, CPU
        assert {b.get_metadata().get("cpu_affinity") for b in suite.get_benchmarks()} == {"0"}
    assert f"history: {history} (2 run(s)" in outs[1].stdout
    assert f"compare: hotbench compare --history {history} {entries[0]['run_id']} {entries[1]['run_id']}" \
        in outs[1].stdout
    from analysis import data  # a nightly run is an ordinary results directory for report and plot

    loaded = data.load([history])
    assert len(loaded.runs) == 2 and len(loaded.samples) and len(loaded.concurrent) and len(loaded.micro)


@pytest.mark.root
@pytest.mark.mechanism("uffd-wp")
def test_compare_reads_both(store):
    """Whatever the load did to the timings, compare reads both runs, judges every metric, and
    the floors are the ones the suite embedded."""
    history, _ = store
    out = hotbench("compare", "--history", str(history), "latest~1", "latest", "--json")
    assert out.returncode in (0, 1), out.stdout + out.stderr
    data = json.loads(out.stdout)
    assert data["only_in_a"] == data["only_in_b"] == [] and len(data["metrics"]) == 2 + 7 + 3 + 3  # micro, lockstep,
    # concurrent, harness
    assert data["floors_from"].endswith("default.floors.toml (embedded in " + data["b"]["run_id"] + "), clock wall")
    # the harness family has no floor learnt yet: its differences are inconclusive, never changed
    assert {r["verdict"] for r in data["metrics"] if r["family"] == "harness"} <= {"unchanged", "inconclusive"}


def _beyond_floor(metric: str) -> float:
    """A factor that puts *metric* well beyond its noise floor and threshold (packaged floors)."""
    from analysis.compare import default_thresholds, threshold_for

    family = metric.split(":")[0]
    floor, _ = load_suite("default", quick=True).floors.floor_for(metric, family, "wall")
    threshold, _ = threshold_for(metric, family, default_thresholds())
    return 2 * (1 + max(floor or 0, threshold))


def _copy(history: Path, name: str) -> tuple[Path, Path]:
    entries = json.loads((history / "index.json").read_text())["entries"]
    source = history / entries[-1]["dir"]
    copy = history.parent / name
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(source, copy)
    return source, copy


@pytest.mark.root
@pytest.mark.mechanism("uffd-wp")
def test_slower_collect_fails_compare_naming_it(store):
    source, slow = _copy(store[0], "slow")
    factor = _beyond_floor(f"collect_cpu_ns:{CELL}")
    samples = pd.read_parquet(slow / "samples.parquet")
    for column in ("collect_ns", "collect_cpu_ns"):
        samples[column] = samples[column] * factor
    samples.to_parquet(slow / "samples.parquet")
    out = hotbench("compare", str(source), str(slow))
    assert out.returncode == 1, out.stdout + out.stderr
    named = [line.split()[1] for line in out.stderr.splitlines() if line.startswith("regression: ")]
    assert f"collect_cpu_ns:{CELL}" in named, out.stderr
    assert all(name.startswith(("collect_cpu_ns:", "collect_ns:")) for name in named), out.stderr


@pytest.mark.root
@pytest.mark.mechanism("uffd-wp")
def test_recall_drop_fails_compare_naming_it(store):
    source, worse = _copy(store[0], "worse")
    samples = pd.read_parquet(worse / "samples.parquet")
    lock = samples["mode"] == "lockstep"
    missed = samples.loc[lock, "tp"] // 4  # beyond any floor: uffd-wp's recall is exact, run to run
    samples.loc[lock, "tp"] -= missed
    samples.loc[lock, "fn"] += missed
    samples.to_parquet(worse / "samples.parquet")
    out = hotbench("compare", str(source), str(worse), "--json")
    assert out.returncode == 1, out.stdout + out.stderr
    assert json.loads(out.stdout)["regressions"] == [f"recall:{CELL}"]
    assert out.stderr.startswith(f"regression: recall:{CELL} -0.2")


@pytest.mark.root
@pytest.mark.mechanism("uffd-wp")
def test_history_builds_from_the_real_runs(store, tmp_path):
    history, _ = store
    out = hotbench("history", "--history", str(history), "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    page = (tmp_path / "index.html").read_text()
    entries = json.loads((history / "index.json").read_text())["entries"]
    # whatever the load did to the second run, the page says what 'hotbench compare' says of the pair
    judged = json.loads(hotbench("compare", "--history", str(history), "latest~1", "latest", "--json").stdout)
    banner = (f"{len(judged['regressions'])} regression(s) against the previous run" if judged["regressions"]
              else "No regression against the previous run")
    assert entries[-1]["run_id"] in page and banner in page
    assert (tmp_path / "figures" / "collect_ns.png").is_file() and (tmp_path / "figures" / "micro.png").is_file()


@pytest.mark.root
@pytest.mark.mechanism("uffd-wp")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_nightly_is_kept_and_marked(tmp_path, signum):
    history = tmp_path / "history"
    proc = subprocess.Popen([sys.executable, "-m", "bench", "nightly", *SMALL, "--history", str(history)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait for the run directory, then stop it inside the micro phase
        if history.is_dir() and any(p.is_dir() for p in history.iterdir()):
            break
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    name = signal.Signals(signum).name
    assert err.rstrip().splitlines()[-1].startswith(f"error: interrupted by {name}; what was measured is kept in ")
    (run_dir,) = [p for p in history.iterdir() if p.is_dir()]
    assert not list(run_dir.glob(".*")), "staging directories left behind"
    manifest = results.load_manifest(run_dir)
    assert manifest["status"] == "interrupted" and manifest["nightly"]["finished"] and manifest["signal"] == name
    entries = json.loads((history / "index.json").read_text())["entries"]
    assert [e["status"] for e in entries] == ["interrupted"]
    out = hotbench("history", "--history", str(history), "--out", str(tmp_path / "site"))
    assert out.returncode == 1 and "holds no complete nightly run" in out.stderr, out.stderr


def test_phase_durations_under_icount_are_guest_seconds(monkeypatch):
    # the guest's clock runs one ns per instruction and jumps over idle waits: not the host's time
    from bench import clock
    from bench.cli import nightly as cli

    phase = {"status": "ok", "benchmarks": ["a"], "seconds": 2886.2}
    monkeypatch.delenv(clock.ENV_CLOCK, raising=False)
    assert cli._phase_line("micro", phase)[-1] == "2886 s"
    monkeypatch.setenv(clock.ENV_CLOCK, clock.INSTRUCTIONS)
    assert cli._phase_line("micro", phase)[-1] == "2886 guest s"
