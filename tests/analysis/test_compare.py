"""``hotbench compare`` on synthetic nightly runs (no kernel needed): the error model (noise
within the learnt floors is unchanged, exact equality is unchanged, too few samples are
inconclusive), a doubled cost or a recall drop is a regression named on stderr (exit 1),
thresholds resolve most-specific-first and can be overridden, metrics only one run has are
explained by what differs, bad input exits 2. The A/A check on recorded real nightly runs is
in tests/analysis/test_aa.py."""

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyperf
import pytest

from bench import results
from bench.nightly.suite import load_suite

ROOT = Path(__file__).resolve().parents[2]
CELL = "uffd-wp/hotcold/anon/16M"
MICRO = {"fault/first-touch/4k": 2.0e-6, "scan/pagemap_scan/wp_matching/1pct/4k": 1.5e-3}


def make_run(store: Path, run_id: str, *, seed: int = 0, host: str = "boxa", kernel: str = "7.3.0",
             started: str = "2026-11-10T02:00:00Z", collect: float = 1.0, micro: float = 1.0,
             recall: float = 1.0, outliers: bool = True, repeats: int = 2, clock: str | None = None,
             size: int = 16 << 20, trackers: tuple = ("uffd-wp",), skipped: dict | None = None) -> Path:
    """One nightly run directory: uffd-wp x hotcold lockstep (2 repeats x 8 intervals), 4 concurrent
    A/B pairs, two pyperf benchmarks (3 processes x 2 values); timing noise ~10 % plus, with
    *outliers*, a few values 3-20x their neighbours (as on a loaded machine)."""
    rng = np.random.default_rng(seed)
    run_dir = store / run_id
    run_dir.mkdir(parents=True)

    def noisy(base, n, sigma=0.1):
        values = base * rng.lognormal(0, sigma, n)
        if outliers:
            hit = rng.random(n) < 0.12
            values[hit] *= rng.uniform(3, 20, hit.sum())
        return values

    rows = []
    npages = size // 4096
    for tracker, repeat in ((t, r) for t in trackers for r in range(repeats)):
        coll, arm = noisy(150_000 * collect, 8), noisy(3_000, 8)
        coll_cpu = coll * rng.uniform(0.9, 1.0, 8)
        for i in range(8):
            truth = 400 + int(rng.integers(0, 20))
            tp = int(round(truth * recall))
            rows.append({"run_id": run_id, "mode": "lockstep", "tracker": tracker, "workload": "hotcold",
                         "workload_spec": "hotcold", "backing": "anon", "size_bytes": size, "npages": npages,
                         "repeat": repeat, "interval": i, "sees": "writes", "tp": tp, "fp": 0, "fn": truth - tp,
                         "tn": npages - truth, "tp_any": tp, "truth_any": truth * 2, "wss_true": truth,
                         "wss_est": tp, "arm_ns": arm[i], "collect_ns": coll[i], "arm_cpu_ns": arm[i] * 0.9,
                         "collect_cpu_ns": coll_cpu[i], "status": "ok"})
    for pair in range(4):
        rows.append({"run_id": run_id, "mode": "concurrent", "tracker": "uffd-wp", "workload": "hotcold",
                     "workload_spec": "hotcold", "backing": "anon", "size_bytes": size, "pair": pair,
                     "repeat": 0, "slowdown": 0.05 + rng.normal(0, 0.01), "lat_p99_ns": noisy(4e6, 1)[0],
                     "base_lat_p99_ns": noisy(3e6, 1)[0],
                     "tracker_cpu_ns_per_cycle": noisy(3e5, 1, 0.05)[0], "status": "ok"})
    results.write_samples(run_dir, rows)
    benches = []
    for name, base in MICRO.items():
        runs = [pyperf.Run(list(noisy(base * micro, 2, 0.05)), metadata={"name": name, "unit": "second", "loops": 1},
                           collect_metadata=False) for _ in range(3)]
        benches.append(pyperf.Benchmark(runs))
    pyperf.BenchmarkSuite(benches).dump(str(run_dir / "micro.json"))
    suite = load_suite("default", quick=True)
    results.write_manifest(run_dir, {
        "run_id": run_id, "mode": "nightly", "status": "complete", "git_commit": "0" * 40,
        "environment": {"hostname": host, "kernel_release": kernel, "accel": "native", "hotbench_version": "0.1.0",
                        **({"clock": clock} if clock else {})},
        "skipped": skipped or {},
        "nightly": {"suite": suite.manifest(), "started": started, "seconds": 40.0,
                    "phases": {"micro": {"status": "ok", "benchmarks": list(MICRO), "seconds": 20.0}}},
    })
    return run_dir


def hotbench(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def rewrite(run_dir: Path, copy: Path, *, collect=1.0, micro=1.0, recall=None) -> Path:
    """A copy of *run_dir* with collect_ns and the pyperf values scaled, or recall set, as a new run id."""
    from analysis.aa import changed_copy

    changed_copy(run_dir, copy, {"collect_ns": collect, "collect_cpu_ns": collect, "micro": micro})
    if recall is not None:
        samples = pd.read_parquet(copy / results.SAMPLES)
        lock = samples["mode"] == "lockstep"
        truth = samples.loc[lock, "tp"] + samples.loc[lock, "fn"]
        samples.loc[lock, "tp"] = (truth * recall).round()
        samples.loc[lock, "fn"] = truth - samples.loc[lock, "tp"]
        samples.to_parquet(copy / results.SAMPLES)
    return copy


@pytest.fixture(scope="module")
def floors_file(tmp_path_factory):
    """Floors learnt from six synthetic A/A runs (seeds 11-16) by 'hotbench floors -o'."""
    store = tmp_path_factory.mktemp("aa")
    runs = [make_run(store, f"2026111{i}T020000Z-boxa-1", seed=10 + i, started=f"2026-11-1{i}T02:00:00Z")
            for i in range(1, 7)]
    path = store.parent / "learnt.floors.toml"
    out = hotbench("floors", *map(str, runs), "-o", str(path))
    assert out.returncode == 0, out.stderr
    assert f"written: {path} [wall]" in out.stdout and "clock wall: 6 run(s), 15 pair(s), margin 1.5" in out.stdout
    return path


def compare_cli(a, b, floors_file, *extra):
    return hotbench("compare", str(a), str(b), "--floors", str(floors_file), *extra)


def test_listed_in_hotbench_help():
    out = hotbench("--help")
    assert out.returncode == 0, out.stderr
    for name in ("nightly", "compare", "history", "floors"):
        assert f"\n    {name} " in out.stdout, name


@pytest.fixture
def pair(tmp_path):
    a = make_run(tmp_path, "20261110T020000Z-boxa-1", seed=1)
    b = make_run(tmp_path, "20261111T020000Z-boxa-1", seed=2, started="2026-11-11T02:00:00Z")
    return tmp_path, a, b


def test_noise_between_two_runs_is_unchanged(pair, floors_file):
    _, a, b = pair
    out = compare_cli(a, b, floors_file)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stderr == ""
    assert "0 regression(s), 0 improvement(s), 0 change(s) within the regression threshold, 0 inconclusive" \
        in out.stdout, out.stdout
    assert out.stdout.startswith(f"A: {a.name}")
    assert f"noise floors: {floors_file}, clock wall" in out.stdout


def test_doubled_collect_is_a_regression_named_on_stderr(pair, floors_file, tmp_path):
    _, a, _ = pair
    slow = rewrite(a, tmp_path / "slow", collect=2.0)
    out = compare_cli(a, slow, floors_file)
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stderr.splitlines()
    assert [line.split()[1] for line in lines] == [f"collect_cpu_ns:{CELL}", f"collect_ns:{CELL}"], out.stderr
    assert lines[0].startswith(f"regression: collect_cpu_ns:{CELL} +100.0% median, +100.0% best (threshold 0.25 "
                               f"from 'collect_cpu_ns', noise floor ")
    line = next(line for line in out.stdout.splitlines() if line.endswith(f"collect_cpu_ns:{CELL}"))
    assert "REGRESSION" in line and "+100.0%" in line


def test_outliers_do_not_hide_a_doubling(tmp_path):
    """Values 3-20x their neighbours make Welch's t-test miss an exact 2x; the rank test does not."""
    a = make_run(tmp_path, "20261110T020000Z-boxa-1", seed=1)
    slow = rewrite(a, tmp_path / "slow", collect=2.0)
    from analysis import compare
    from analysis.stats import welch

    ra, rb = compare.load_run(a), compare.load_run(slow)
    row = next(r for r in compare.compare(ra, rb).rows if r["metric"] == f"collect_ns:{CELL}")
    assert row["significant"] and row["p"] < 0.05 and row["change_best"] == pytest.approx(1.0)
    values = ra.metrics[ra.metrics["metric"] == f"collect_ns:{CELL}"]["value"].to_numpy()
    assert values.max() > 3 * np.median(values)  # the outliers are there
    assert welch(values, 2 * values)[1] > 0.05  # why not Welch on these values


def test_doubled_micro_values(pair, floors_file, tmp_path):
    _, a, _ = pair
    slow = rewrite(a, tmp_path / "slow", micro=2.0)
    out = compare_cli(a, slow, floors_file)
    assert out.returncode == 1, out.stdout + out.stderr
    assert sorted(line.split()[1] for line in out.stderr.splitlines()) == [f"micro:{name}" for name in sorted(MICRO)]
    # a threshold above the change leaves it a change, not a regression
    out = compare_cli(a, slow, floors_file, "--threshold", "micro=150%")
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"\schanged\s+micro:fault/first-touch/4k$", out.stdout, re.M)


def test_recall_drop_is_a_regression(pair, floors_file, tmp_path):
    _, a, _ = pair
    worse = rewrite(a, tmp_path / "worse", recall=0.8)
    out = compare_cli(a, worse, floors_file)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stderr.splitlines() == [f"regression: recall:{CELL} -0.200 mean (threshold 0.02 from 'recall', "
                                       f"noise floor 0 from 'recall:{CELL}')"]
    assert re.search(rf"REGRESSION\s+recall:{re.escape(CELL)}$", out.stdout, re.M)


def test_improvement_is_not_a_failure(pair, floors_file, tmp_path):
    _, a, _ = pair
    fast = rewrite(a, tmp_path / "fast", collect=0.4)
    out = compare_cli(a, fast, floors_file)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(rf"improved\s+collect_cpu_ns:{re.escape(CELL)}$", out.stdout, re.M)


def test_identical_accuracy_is_unchanged_and_one_repeat_is_inconclusive(tmp_path, floors_file):
    """The failure the issue saw: precision 1.000 against 1.000 with one repeat was "changed"."""
    a = make_run(tmp_path, "a", seed=1, repeats=1)
    same = make_run(tmp_path, "b", seed=1, repeats=1)
    worse = rewrite(a, tmp_path / "worse", recall=0.8)
    from analysis import compare
    from bench.nightly import floors

    judged_by = floors.load(floors_file)
    rows = {r["metric"]: r for r in compare.compare(compare.load_run(a), compare.load_run(same),
                                                    floors=judged_by).rows}
    assert {r["verdict"] for r in rows.values()} == {"unchanged"}
    assert rows[f"precision:{CELL}"]["change"] == 0 and rows[f"precision:{CELL}"]["test"] is None
    rows = {r["metric"]: r for r in compare.compare(compare.load_run(a), compare.load_run(worse),
                                                    floors=judged_by).rows}
    recall = rows[f"recall:{CELL}"]
    assert recall["verdict"] == "inconclusive" and recall["why"] == "too few values for Welch's t-test (1 and 1)"
    out = compare_cli(a, worse, floors_file)
    assert out.returncode == 0 and "1 inconclusive" in out.stdout, out.stdout
    assert "inconclusive: 1 metric(s), too few values for Welch's t-test (1 and 1)" in out.stdout


@pytest.mark.parametrize("bad,good,floor,threshold,test,p,verdict", [
    (0.0, 0.0, 0.1, 0.25, "welch", 1.0, "unchanged"),          # exact equality
    (0.05, 0.0, 0.1, 0.25, "mann-whitney", 0.001, "unchanged"),  # significant, within the floor
    (0.5, 0.0, 0.1, 0.25, None, math.nan, "inconclusive"),     # beyond the floor, too few samples
    (0.05, 0.0, 0.1, 0.25, None, math.nan, "unchanged"),       # within the floor, too few samples
    (0.5, 0.0, 0.1, 0.25, "mann-whitney", 0.2, "unchanged"),   # not supported by the test
    (0.5, 0.0, None, 0.25, "mann-whitney", 0.001, "inconclusive"),  # no floor learnt for this clock
    (0.2, 0.0, 0.1, 0.25, "mann-whitney", 0.001, "changed"),   # beyond the floor, within the threshold
    (0.3, 0.0, 0.1, 0.25, "mann-whitney", 0.001, "regression"),
    (0.3, 0.0, 0.5, 0.25, "mann-whitney", 0.001, "unchanged"),  # the floor beats a lower threshold
    (0.7, 0.0, 0.5, 0.25, "mann-whitney", 0.001, "regression"),
    (0.0, 0.3, 0.1, 0.25, "mann-whitney", 0.001, "improvement"),
    (0.3, 0.0, 0.1, None, "mann-whitney", 0.001, "changed"),   # no threshold: never a regression
])
def test_the_error_model(bad, good, floor, threshold, test, p, verdict):
    from analysis.compare import judge

    assert judge(bad, good, floor, threshold, test, p) == verdict


def test_a_rank_test_that_cannot_decide_is_inconclusive():
    from analysis.compare import FAMILIES, _test

    fam = FAMILIES["collect_ns"]
    assert _test(fam, np.array([1.0, 2.0]), np.array([5.0, 6.0]), 0.05)[0] is None  # its best p is 2/6
    name, p = _test(fam, np.array([1.0, 2.0, 3.0, 4.0]), np.array([5.0, 6.0, 7.0, 8.0]), 0.05)
    assert name == "mann-whitney" and p == pytest.approx(2 / 70)


def test_threshold_override_and_json(pair, floors_file, tmp_path):
    _, a, _ = pair
    slow = rewrite(a, tmp_path / "slow", collect=2.0)
    out = compare_cli(a, slow, floors_file, "--json", "--threshold", "collect_cpu_ns=1.5", "--threshold",
                      "collect_ns=1.5")
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads(out.stdout)
    assert data["format"] == "hotbench-compare" and data["format_version"] == 2 and data["regressions"] == []
    row = next(r for r in data["metrics"] if r["metric"] == f"collect_cpu_ns:{CELL}")
    assert row["threshold"] == 1.5 and row["threshold_key"] == "collect_cpu_ns"
    assert row["verdict"] == "changed" and row["change_best"] == pytest.approx(1.0)
    assert row["floor"] < 1.0 and row["floor_key"] == f"collect_cpu_ns:{CELL}"
    assert data["counts"]["changed"] == 2 and sum(data["counts"].values()) == len(data["metrics"])
    assert data["a"]["run_id"] == a.name and data["b"]["run_id"] == "slow"
    out = compare_cli(a, slow, floors_file, "--json", "--threshold", f"collect_ns:{CELL}=50%")
    assert out.returncode == 1
    assert json.loads(out.stdout)["regressions"] == [f"collect_cpu_ns:{CELL}", f"collect_ns:{CELL}"]


def test_threshold_resolution():
    from analysis.compare import threshold_for

    suite = {"micro": 0.5, "micro:fault/*": 0.3, "micro:fault/first-touch/4k": 0.2, "recall": 0.05}
    assert threshold_for("micro:fault/first-touch/4k", "micro", suite) == (0.2, "micro:fault/first-touch/4k")
    assert threshold_for("micro:fault/uffd-wp-async/4k", "micro", suite) == (0.3, "micro:fault/*")
    assert threshold_for("micro:scan/x", "micro", suite) == (0.5, "micro")
    assert threshold_for("precision:x", "precision", suite) == (None, None)
    # the command line comes first, even with a less specific key
    assert threshold_for("micro:fault/first-touch/4k", "micro", {"micro": 1.0}, suite) == (1.0, "micro")


def test_instruction_clock_runs_without_a_suite_are_judged_by_the_icount_suite(tmp_path):
    from analysis import compare

    def plain(run_dir, clock):  # a 'hotbench run' result: no nightly suite embedded
        manifest = json.loads((run_dir / results.MANIFEST).read_text())
        manifest.pop("nightly")
        manifest["environment"].update(clock=clock, icount_shift=0 if clock == "instructions" else None)
        (run_dir / results.MANIFEST).write_text(json.dumps(manifest))
        return compare.load_run(run_dir)

    a = plain(make_run(tmp_path, "a", outliers=False), "instructions")
    b = plain(make_run(tmp_path, "b", seed=1, outliers=False), "instructions")
    judged = compare.compare(a, b)
    assert judged.thresholds_from == "the packaged icount suite (instruction-clock runs)"
    collect = next(r for r in judged.rows if r["metric"] == f"collect_ns:{CELL}")
    assert collect["threshold"] == load_suite("icount").thresholds["collect_ns"] < 0.1
    wall = plain(make_run(tmp_path, "w", outliers=False), "wall")
    assert compare.compare(wall, wall).thresholds_from == "the packaged default suite"


def test_learning_keeps_priors_and_other_clocks(tmp_path):
    from analysis import compare, floors
    from bench.nightly.floors import write

    path = tmp_path / "f.floors.toml"
    path.write_text('format = 1\n[instructions.floors]\ncollect_ns = 0.01\n[wall.priors]\n"recall:damon-*" = 0.3\n')
    runs = [compare.load_run(make_run(tmp_path, f"r{i}", seed=i)) for i in range(3)]
    clock, table = floors.learn(runs, 1.5)
    assert clock == "wall" and table["runs"] == 3 and table["pairs"] == 3
    assert table["floors"]["collect_ns"] == max(v for k, v in table["floors"].items() if k.startswith("collect_ns:"))
    written = write(path, clock, table, "test")
    assert written.clocks["instructions"]["floors"] == {"collect_ns": 0.01}
    assert written.clocks["wall"]["priors"] == {"recall:damon-*": 0.3}
    assert written.clocks["wall"]["floors"] == table["floors"]
    # every learnt floor covers every pair it was learnt from, with the margin
    for first, second in ((0, 1), (0, 2), (1, 2)):
        result = compare.compare(runs[first], runs[second], floors=written)
        assert all(r["worse"] * 1.5 <= r["floor"] + 1e-9 and r["better"] * 1.5 <= r["floor"] + 1e-9
                   for r in result.rows)


def test_learning_refuses_mixed_builds_and_clocks(tmp_path):
    from analysis import compare, floors
    from bench.errors import HotbenchError

    a, b = make_run(tmp_path, "a", seed=1), make_run(tmp_path, "b", seed=2, clock="instructions")
    with pytest.raises(HotbenchError, match="different clocks"):
        floors.learn([compare.load_run(a), compare.load_run(b)])
    manifest = json.loads((b / results.MANIFEST).read_text())
    manifest["environment"].pop("clock")
    manifest["git_commit"] = "1" * 40
    (b / results.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(HotbenchError, match="from 2 builds"):
        floors.learn([compare.load_run(a), compare.load_run(b)])


def test_runs_on_different_clocks_compare_accuracy_only(tmp_path, floors_file):
    a = make_run(tmp_path, "a", seed=1)
    b = make_run(tmp_path, "b", seed=2, clock="instructions")
    out = compare_cli(a, b, floors_file, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert {r["family"] for r in data["metrics"]} == {"precision", "recall", "wss_error"}
    assert len(data["not_comparable"]) == 4 + 3 + len(MICRO)  # lockstep and concurrent timing, micro
    assert any("different clocks (wall vs instructions (icount shift 0))" in w for w in data["warnings"])


def test_missing_metrics_are_explained_by_what_differs(tmp_path, floors_file):
    a = make_run(tmp_path, "a", seed=1, size=16 << 20)
    b = make_run(tmp_path, "b", seed=2, size=64 << 20, trackers=("uffd-wp", "rwp"))
    c = make_run(tmp_path, "c", seed=3, skipped={"rwp": "UFFDIO_API lacks UFFD_FEATURE_RWP"}, kernel="6.18")
    d = make_run(tmp_path, "d", seed=4, trackers=("uffd-wp", "rwp"))
    out = compare_cli(a, b, floors_file)
    assert "7 metric(s) only in A: lockstep size 16M: B ran 64M" in out.stdout, out.stdout
    assert "3 metric(s) only in A: concurrent size 16M: B ran 64M" in out.stdout, out.stdout
    assert "7 metric(s) only in B: tracker rwp not run in A (its lockstep cells ran uffd-wp)" in out.stdout
    assert "7 metric(s) only in B: lockstep size 64M: A ran 16M" in out.stdout, out.stdout
    out = compare_cli(c, d, floors_file)
    assert "7 metric(s) only in B: tracker rwp skipped in A (kernel 6.18): UFFDIO_API lacks UFFD_FEATURE_RWP" \
        in out.stdout, out.stdout


def test_history_references(tmp_path):
    make_run(tmp_path, "20261110T020000Z-boxa-1", seed=1)
    make_run(tmp_path, "20261111T020000Z-boxa-1", seed=2, started="2026-11-11T02:00:00Z")
    import socket

    make_run(tmp_path, f"20261112T020000Z-{socket.gethostname()}-1", seed=3, host=socket.gethostname(),
             started="2026-11-12T02:00:00Z")
    out = hotbench("compare", "--history", str(tmp_path), "20261110", "20261111T02")
    assert out.returncode == 0, out.stderr
    # latest is this host's newest run; its series has no earlier run
    out = hotbench("compare", "--history", str(tmp_path), "latest~1", "latest")
    assert out.returncode == 2 and "has only 1 run(s)" in out.stderr, out.stderr


@pytest.mark.parametrize("args,message", [
    (["/nonexistent/a", "/nonexistent/b"], "'/nonexistent/a' is neither a results directory nor a run in"),
    (["--threshold", "micro", "a", "b"], "expected METRIC=VALUE"),
    (["--threshold", "micro=fast", "a", "b"], "is not a number"),
])
def test_bad_input_exits_2_in_one_line(tmp_path, args, message):
    out = hotbench("compare", "--history", str(tmp_path), *args)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
