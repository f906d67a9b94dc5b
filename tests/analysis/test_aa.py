"""The A/A check of 'hotbench compare', on recorded runs: ten pairs of quick nightlies of one
build (tests/fixtures/aa, recorded on the shared 2-CPU VM under its usual load) compared with
the packaged noise floors — which were learnt from thirty *other* runs of that build — report
no change and no regression; a deliberately slower copy is reported, one slowed by less than
the noise floor is not. Nothing here runs a benchmark: the check cannot depend on the load
of the machine running the tests. tools/aa-test does the same live."""

from pathlib import Path

import pytest

from analysis import aa, compare
from bench.nightly import floors
from bench import results
from bench.nightly.suite import load_suite

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "aa"
RUNS = results.run_dirs(FIXTURES)
PACKAGED = load_suite("default").floors


def test_the_fixtures_are_ten_pairs_of_one_build_not_learnt_from():
    assert len(RUNS) == 20
    commits = {results.load_manifest(r)["git_commit"] for r in RUNS}
    wall = PACKAGED.clocks["wall"]
    assert commits == {wall["commit"]}  # the build the floors were learnt on ...
    learnt = (wall["from"], wall["to"])
    started = [results.load_manifest(r)["nightly"]["started"] for r in RUNS]
    assert all(s > learnt[1] for s in started), "A/A pairs must be runs the floors were not learnt from"


def test_ten_aa_pairs_report_no_change_and_no_regression():
    pairs = aa.check_pairs(RUNS, PACKAGED)
    assert len(pairs) == 10 and all(p["metrics"] == 21 for p in pairs)
    flagged = [(p["a"], f) for p in pairs for f in p["flagged"]]
    assert not [f for f in flagged if f[1]["verdict"] in ("changed", "regression", "improvement")], flagged
    assert sum(p["counts"]["unchanged"] for p in pairs) + sum(p["counts"]["inconclusive"] for p in pairs) == 210


def _slowed(tmp_path, factors: dict, name: str) -> compare.Comparison:
    """The last fixture run with *factors* applied, compared with the run before it."""
    slow = aa.changed_copy(RUNS[-1], tmp_path / name, factors)
    return compare.compare(compare.load_run(RUNS[-2]), compare.load_run(slow), floors=PACKAGED)


def test_a_slower_variant_is_reported(tmp_path):
    """Collect and micro-benchmarks slower by twice their floor (2 x (1 + floor)): every
    one of those metrics is a regression; the accuracy metrics stay unchanged."""
    learnt = PACKAGED.clocks["wall"]["floors"]
    factors = {f: 2 * (1 + learnt[f]) for f in ("collect_ns", "collect_cpu_ns", "micro")}
    result = _slowed(tmp_path, factors, "slower")
    verdicts = {r["metric"]: r["verdict"] for r in result.rows}
    slowed = [m for m in verdicts if m.split(":")[0] in factors]
    assert len(slowed) == 4 + 4  # collect_ns and collect_cpu_ns of two cells, four micro-benchmarks
    assert {verdicts[m] for m in slowed} == {"regression"}, {m: verdicts[m] for m in slowed}
    assert {v for m, v in verdicts.items() if m.split(":")[0] in ("precision", "recall", "wss_error")} == \
        {"unchanged"}


def test_a_change_within_the_floor_is_not_reported(tmp_path):
    """The same pair with collect slower by half its (smallest) floor: noise-sized, so nothing
    is called changed — the floor, not the test, decides what this machine can see."""
    learnt = PACKAGED.clocks["wall"]["floors"]
    factor = 1 + 0.5 * min(v for k, v in learnt.items() if k.startswith("collect_cpu_ns:"))
    result = _slowed(tmp_path, {"collect_cpu_ns": factor}, "noise")
    assert not [r for r in result.rows if r["verdict"] in ("changed", "regression")]


def _on_clock(tmp_path, clock: str, factor: float, floors_table):
    """The first two fixture runs relabelled to *clock*, B's collect CPU time times *factor*,
    compared with *floors_table*; the uffd-wp collect row."""
    a, b = (aa.changed_copy(run, tmp_path / run.name, {}) for run in RUNS[:2])
    for run_dir in (a, b):
        manifest = results.load_manifest(run_dir)
        manifest["environment"].update(clock=clock, icount_shift=0 if clock == "instructions" else None)
        results.write_manifest(run_dir, manifest)
    slow = aa.changed_copy(b, tmp_path / "slow", {"collect_cpu_ns": factor})
    result = compare.compare(compare.load_run(a), compare.load_run(slow), floors=floors_table)
    return next(r for r in result.rows if r["metric"].startswith("collect_cpu_ns:uffd-wp"))


def test_a_wall_clock_without_floors_calls_nothing_changed(tmp_path):
    """Wall-clock runs where no A/A run has measured this clock: their significant differences
    are inconclusive, never changed."""
    only_icount = floors.Floors({"instructions": {"floors": {"collect_cpu_ns": 0.01}}}, "instructions only")
    row = _on_clock(tmp_path, "wall", 10.0, only_icount)
    assert row["verdict"] == "inconclusive"
    assert row["why"] == "no noise floor learnt for collect_cpu_ns on the wall clock"


def test_instruction_counts_without_floors_are_judged_by_the_threshold(tmp_path):
    """Instruction counts (exact up to a measured fraction of a percent, docs/icount.md) with no
    floor learnt: the threshold is the floor; 10x is a regression, a change within it is not."""
    none = floors.Floors({}, "none")
    row = _on_clock(tmp_path, "instructions", 10.0, none)
    assert (row["test"], row["verdict"]) == (compare.EXACT, "regression")
    assert row["floor"] == row["threshold"] and row["floor_key"].endswith("(threshold, exact clock)")
    assert _on_clock(tmp_path / "small", "instructions", 1 + row["threshold"] / 2, none)["verdict"] == "unchanged"
