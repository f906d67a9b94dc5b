"""The report's kernel-work tables (analysis.kernel_work) from kev.<phase>.<event> columns."""

import pandas as pd

from analysis import kernel_work


def test_report_tables_per_page_and_per_gib():
    frame = pd.DataFrame({"label": "k", "tracker": "t", "workload_label": "w", "backing": "anon",
                          "size_bytes": 1 << 30, "npages": 262144, "interval": [0, 1, 2],
                          "kev.collect.rmap_walk": [262144, 262144, 262144], "kev.arm.tlb_local_mm": [0, 0, 1],
                          "kev.arm.missing": [None, None, None]})
    table = kernel_work.lockstep_table(frame)
    assert table[["phase", "event"]].values.tolist() == [["collect", "rmap_walk"]]  # zero medians left out
    rec = table.iloc[0]
    assert rec["per_page"] == 1.0 and rec["per_gib"] == 262144 and rec["n"] == 3


def test_concurrent_table_per_cycle_and_per_fault():
    frame = pd.DataFrame({"label": "k", "tracker": "t", "workload_label": "w", "backing": "anon",
                          "size_bytes": 1 << 30, "cycles": [10, 20], "kev.arm.tlb_local_mm": [10, 20],
                          "kev.workload.fault_user": [1000, 2000], "kev.workload.tlb_remote": [500, 1000]})
    table = kernel_work.concurrent_table(frame).set_index(["phase", "event"])
    assert table.loc[("arm", "tlb_local_mm"), "rate"] == 1.0 and table.loc[("arm", "tlb_local_mm"), "per"] == "cycle"
    assert table.loc[("workload", "tlb_remote"), "rate"] == 0.5
    assert table.loc[("workload", "tlb_remote"), "per"] == "fault"
