"""Two boots of the same icount cells, paired phase by phase."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis import determinism
from bench import results
from bench.errors import HotbenchError


def _run(root, name, collect, clock="instructions", tracker="rwp", extra=None):
    run_dir = root / name
    run_dir.mkdir()
    results.write_manifest(run_dir, {"run_id": name, "environment": {"clock": clock, "icount_shift": 0}})
    rows = [{"tracker": tracker, "workload_spec": "hotcold", "backing": "anon", "size_bytes": 1 << 24, "repeat": 0,
             "interval": i, "arm_ns": 1_000_000, "collect_ns": c, "arm_cpu_ns": 999_000, "collect_cpu_ns": c - 100,
             "status": "ok", "extra": json.dumps(extra or {})} for i, c in enumerate(collect)]
    results.write_samples(run_dir, rows)
    return run_dir


def test_two_boots_are_paired_and_judged_per_interval(tmp_path):
    a = _run(tmp_path, "a", [1_000_000, 500_000, 500_000])
    b = _run(tmp_path, "b", [1_020_000, 500_000, 506_000])  # +2 % first (allowed), +1.2 % later (not)
    pairs = determinism.paired(a, b)
    assert set(pairs["phase"]) == {"arm_ns", "collect_ns", "arm_cpu_ns", "collect_cpu_ns"}
    bad = determinism.violations(pairs)
    assert bad == ["rwp/hotcold/anon interval 2 collect_ns: 500,000 vs 506,000 (+1.20%)"]
    s = determinism.summary(pairs).set_index("phase")
    assert s.loc["collect_ns", "first"] == pytest.approx(0.02) and s.loc["arm_ns", "later_max"] == 0
    assert "later max" in determinism.text(pairs)


def test_cell_medians_forgive_one_interval_a_tick_landed_in_not_a_shift_of_all(tmp_path):
    a = _run(tmp_path, "a", [10_000_000, 5_000_000, 5_000_000, 5_000_000, 5_000_000])
    ticked = _run(tmp_path, "ticked", [10_400_000, 5_000_000, 5_200_000, 5_000_000, 5_000_000])  # +4 % in two
    assert determinism.violations(determinism.paired(a, ticked))  # per interval: beyond the limits
    assert determinism.cell_violations(determinism.paired(a, ticked)) == []
    shifted = _run(tmp_path, "shifted", [10_000_000, 5_060_000, 5_060_000, 5_060_000, 5_060_000])
    assert determinism.cell_violations(determinism.paired(a, shifted)) == [
        "rwp/hotcold/anon median collect_cpu_ns: 4,999,900 vs 5,059,900 (+1.20%)"]


def test_a_short_phase_may_differ_by_a_ticks_work_not_more(tmp_path):
    a = _run(tmp_path, "a", [300_000] * 4)
    ticked = _run(tmp_path, "ticked", [306_000] * 4)  # +2 %: one tick's softirq work in every interval
    assert determinism.cell_violations(determinism.paired(a, ticked)) == []
    heavier = _run(tmp_path, "heavier", [312_000] * 4)  # +12 K instructions: more than a tick
    assert determinism.cell_violations(determinism.paired(a, heavier)) == [
        "rwp/hotcold/anon median collect_cpu_ns: 299,900 vs 311,900 (+4.00%)"]


def test_cells_placed_differently_are_named_and_left_out(tmp_path):
    a = _run(tmp_path, "a", [2_900_000] * 4, tracker="idle-page", extra={"words": 93, "runs": 16})
    b = _run(tmp_path, "b", [2_700_000] * 4, tracker="idle-page", extra={"words": 67, "runs": 12})
    same = _run(tmp_path, "same", [2_700_000] * 4, tracker="idle-page", extra={"words": 93, "runs": 16})
    placed = determinism.placement(a, b)
    assert placed == {("idle-page", "hotcold", "anon", 1 << 24, 0): "words 93 vs 67, runs 16 vs 12"}
    assert determinism.cell_violations(determinism.paired(a, b), placed=placed) == []
    assert determinism.placement(a, same) == {}  # placed alike: the difference is judged
    assert determinism.cell_violations(determinism.paired(a, same), placed={}) != []
    rwp = _run(tmp_path, "rwp", [2_700_000] * 4, extra={"words": 1})  # rwp's cost does not follow placement
    assert determinism.placement(a, rwp) == {}


def test_runs_on_different_clocks_are_refused(tmp_path):
    a = _run(tmp_path, "a", [1, 2])
    b = _run(tmp_path, "b", [1, 2], clock="wall")
    with pytest.raises(HotbenchError, match="mix clocks"):
        determinism.paired(a, b)


# ---------------------------------------------------------------- two recorded icount boots

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "icount-aa"
TIMING = ("arm_ns", "collect_ns", "arm_cpu_ns", "collect_cpu_ns")


@pytest.fixture(scope="module")
def boots():
    return sorted(p for p in FIXTURES.iterdir() if p.is_dir())


def _heavier(run_dir: Path, copy: Path, tracker: str, factor: float) -> Path:
    """A copy of *run_dir* whose *tracker* costs *factor* times as much in every phase."""
    shutil.copytree(run_dir, copy)
    samples = pd.read_parquet(copy / results.SAMPLES)
    chosen = samples["tracker"] == tracker
    for column in TIMING:
        samples.loc[chosen, column] = (samples.loc[chosen, column] * factor).round().astype(samples[column].dtype)
    samples.to_parquet(copy / results.SAMPLES)
    manifest = json.loads((copy / results.MANIFEST).read_text())
    manifest["run_id"] = copy.name
    (copy / results.MANIFEST).write_text(json.dumps(manifest))
    return copy


def test_two_recorded_boots_agree_to_a_fraction_of_a_percent(boots):
    pairs = determinism.paired(*boots)
    cpu_later = pairs[pairs["phase"].isin(determinism.CPU_PHASES) & (pairs["interval"] > 0)]
    assert len(cpu_later) == 4 * 5 * 2  # trackers x later intervals x phases
    # measured: median 0.09 %, largest 1.2 % (rwp's arm); the wall columns also count other guest
    # threads' work that lands in a phase (rwp's arm once +53 %), which the CPU columns do not
    assert cpu_later["rel"].median() < 0.003 and cpu_later["rel"].max() < 0.015
    assert (pairs[pairs["interval"] == 0]["rel"] < determinism.FIRST_LIMIT).all()
    assert determinism.cell_violations(pairs) == []


def test_an_a_a_comparison_of_two_boots_reports_no_timing_change(boots):
    from analysis import compare

    result = compare.compare(*(compare.load_run(b) for b in boots))
    assert result.thresholds_from.startswith("the packaged icount suite")
    timing = [r for r in result.rows if r["family"] in TIMING]
    assert len(timing) == 16 and not [r for r in timing if r["verdict"] != "unchanged"]


@pytest.mark.parametrize("tracker", ["rwp", "uffd-wp", "mprotect", "soft-dirty"])
def test_a_tracker_4_5_percent_heavier_is_a_regression_and_nothing_else_is(boots, tmp_path, tracker):
    from analysis import compare

    a, b = boots
    heavier = _heavier(b, tmp_path / "heavier", tracker, 1.045)  # threshold 3 % + up to 1 % between medians + margin
    result = compare.compare(compare.load_run(a), compare.load_run(heavier))
    flagged = {r["metric"].split(":")[0] for r in result.regressions}
    # the CPU columns count the tracker thread alone; a wall column can hide part of the change
    # when other guest threads' work landed in A's phase (rwp's arm: +1.3 % in two intervals)
    assert flagged >= set(determinism.CPU_PHASES), [(r["metric"], r["verdict"], r["change_median"])
                                                    for r in result.rows if f":{tracker}/" in r["metric"]]
    assert all(f":{tracker}/" in r["metric"] for r in result.regressions)
    assert not [r for r in result.rows if r["family"] in TIMING and r["verdict"] not in ("unchanged", "regression")]
