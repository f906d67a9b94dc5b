"""Two boots of the same icount cells, paired phase by phase."""

import pandas as pd
import pytest

from analysis import determinism
from bench import results
from bench.errors import HotbenchError


def _run(root, name, collect, clock="instructions"):
    run_dir = root / name
    run_dir.mkdir()
    results.write_manifest(run_dir, {"run_id": name, "environment": {"clock": clock, "icount_shift": 0}})
    rows = [{"tracker": "rwp", "workload_spec": "hotcold", "backing": "anon", "size_bytes": 1 << 24, "repeat": 0,
             "interval": i, "arm_ns": 1_000_000, "collect_ns": c, "arm_cpu_ns": 999_000, "collect_cpu_ns": c - 100,
             "status": "ok"} for i, c in enumerate(collect)]
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


def test_runs_on_different_clocks_are_refused(tmp_path):
    a = _run(tmp_path, "a", [1, 2])
    b = _run(tmp_path, "b", [1, 2], clock="wall")
    with pytest.raises(HotbenchError, match="mix clocks"):
        determinism.paired(a, b)
