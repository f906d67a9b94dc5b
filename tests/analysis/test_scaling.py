"""The cost-vs-size fit tells a physical-memory tracker from a working-set one."""

import numpy as np
import pandas as pd

from analysis.scaling import cost_fits


def _rows(tracker, cost, rng):
    rows = []
    for size in (1, 2, 4, 8, 16):
        for touched in (0.01, 0.1, 0.5):
            pages = int(touched * size * 262144)
            rows.append(dict(tracker=tracker, backing="anon", size_bytes=size << 30, truth_any=pages, arm_ns=0,
                             collect_ns=(cost(size, touched * size) + rng.normal(0, 0.05)) * 1e6, status="ok"))
    return rows


def test_fit_separates_memory_from_working_set():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(_rows("physical", lambda mem, ws: 5 * mem, rng)
                         + _rows("hot-set", lambda mem, ws: 0.3 + 20 * ws, rng)
                         + _rows("flat", lambda mem, ws: 1.0, rng))
    fits = cost_fits(frame).set_index("tracker")
    assert fits.loc["physical", "grows_with"] == "total memory"
    assert abs(fits.loc["physical", "ms_per_gib_memory"] - 5) < 0.1
    assert fits.loc["hot-set", "grows_with"] == "working set"
    assert abs(fits.loc["hot-set", "ms_per_gib_touched"] - 20) < 0.5
    assert fits.loc["flat", "grows_with"] == "neither (flat)"


def test_single_size_is_not_fitted():
    frame = pd.DataFrame([dict(tracker="t", backing="anon", size_bytes=1 << 30, truth_any=10, arm_ns=0,
                               collect_ns=1e6, status="ok")] * 3)
    assert cost_fits(frame).empty
