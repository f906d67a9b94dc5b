"""Run one tracker x workload cell through the real runner and return its rows."""

import pandas as pd

from bench.runner import Cell, run_cell

SMALL = 16 << 20


def run(tracker, workload, backing="anon", *, size=SMALL, intervals=3, seed=7, **overrides):
    rows = run_cell(Cell(tracker, workload, backing, size, intervals, 0, seed, **overrides))
    df = pd.DataFrame(rows)
    assert (df["status"] == "ok").all(), df["status"].tolist()
    if backing == "anon":  # forced 4 KiB: what the runner records of huge pages must say none
        assert (df["huge_bytes"] == 0).all(), df["huge_bytes"].tolist()
    return df
