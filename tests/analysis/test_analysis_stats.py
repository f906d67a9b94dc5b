"""The statistics: per-repeat reduction, confidence intervals, Welch's test, BH adjustment, fits."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import stats
from analysis.metrics import add_report_rates


@pytest.mark.parametrize("seed", range(5))
def test_welch_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(1.0, 0.3, 4), rng.normal(1.3, 0.1, 6)
    t, p = stats.welch(a, b)
    ref = sps.ttest_ind(b, a, equal_var=False)
    assert t == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)


def test_welch_constant_samples_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert stats.welch([1.0, 1.0, 1.0], [1.0, 1.0]) == (0.0, 1.0)
        assert stats.welch([1.0, 1.0, 1.0], [0.5, 0.5])[1] == 0.0
        assert stats.welch([0.999999, 0.999999, 1.0], [1.0, 1.0, 0.999999])[1] > 0.05
        assert math.isnan(stats.welch([1.0], [2.0, 3.0])[1])


def _units(diffs: dict[str, float], n: int, sd: float, seed: int) -> pd.DataFrame:
    """Per-repeat values for two labels; cell c of label B is shifted by diffs[c]."""
    rng = np.random.default_rng(seed)
    rows = []
    for cell, shift in diffs.items():
        for label, offset in (("A", 0.0), ("B", shift)):
            for repeat in range(n):
                rows.append({"label": label, "tracker": cell, "workload_label": "w", "backing": "anon",
                             "size_bytes": 1 << 20, "run_id": label, "repeat": repeat,
                             "collect_ms_per_gib": 10.0 + offset + rng.normal(0, sd)})
    return pd.DataFrame(rows)


KEYS = ["label", "tracker", "workload_label", "backing", "size_bytes"]


def test_welch_flags_a_real_difference_and_not_noise():
    cells = {f"noise{i}": 0.0 for i in range(40)}
    cells["real"] = 1.0  # ten standard deviations
    out = stats.compare(_units(cells, n=5, sd=0.1, seed=7), KEYS, ["collect_ms_per_gib"], ["A", "B"])
    assert len(out) == 41
    flagged = set(out.loc[out["significant"], "tracker"])
    assert flagged == {"real"}
    # the raw p of some noise cell may fall under 0.05 by chance; the adjustment keeps it unflagged
    assert (out["q"] >= out["p"]).all()


def test_summarise_mean_sd_and_ci():
    units = pd.DataFrame({"k": ["x"] * 4 + ["y"], "v": [1.0, 2.0, 3.0, 4.0, 5.0]})
    out = stats.summarise(units, ["k"], ["v"]).set_index("k")
    sd = np.std([1, 2, 3, 4], ddof=1)
    assert out.loc["x", "v_mean"] == 2.5 and out.loc["x", "v_sd"] == pytest.approx(sd)
    assert out.loc["x", "v_ci95"] == pytest.approx(sps.t.ppf(0.975, 3) * sd / 2)
    assert out.loc["y", "v_n"] == 1 and math.isnan(out.loc["y", "v_sd"]) and math.isnan(out.loc["y", "v_ci95"])


def test_per_repeat_averages_intervals_first():
    df = pd.DataFrame({"tracker": ["t"] * 4, "run_id": ["r"] * 4, "repeat": [0, 0, 1, 1], "m": [1.0, 3.0, 10.0, 20.0]})
    units = stats.per_repeat(df, ["tracker"], ["m"])
    assert units["m"].tolist() == [2.0, 15.0]


def test_loglog_fit_recovers_slope():
    x = np.array([16, 64, 256, 1024], dtype=float)
    slope, _, r2 = stats.loglog_fit(x, 0.5 * x ** 0.8)
    assert slope == pytest.approx(0.8) and r2 == pytest.approx(1.0)
    assert stats.loglog_fit([64, 64], [1.0, 2.0]) is None


def test_cold_fp_rate_is_fp_over_unaccessed_pages():
    df = pd.DataFrame([{"tp": 10, "fp": 5, "fn": 0, "tn": 15, "tp_any": 10, "fp_any": 5, "fn_any": 2,
                        "truth_any": 12, "wss_true": 10, "wss_est": 15, "size_bytes": 1 << 30, "arm_ns": 1,
                        "collect_ns": 1, "arm_cpu_ns": 1, "collect_cpu_ns": 1}])
    out = add_report_rates(df).iloc[0]
    assert out["cold_fp_rate"] == pytest.approx(5 / 20)
    assert out["f1_any"] == pytest.approx(20 / 27)
    assert out["wss_error"] == pytest.approx(0.5)
