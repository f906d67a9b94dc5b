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


def test_profile_table_shares_of_the_phase_top_first():
    samples = pd.DataFrame({"label": "k", "tracker": "idle-page", "workload_label": "w", "backing": "anon",
                            "size_bytes": 1 << 26, "npages": 16384, "run_id": "r", "cell": 0, "interval": [0, 1],
                            "arm_ns": [1000.0, 2000.0], "collect_ns": [4000.0, 4000.0], "workload_ns": 1.0})
    profile = pd.DataFrame({"run_id": "r", "cell": 0, "interval": [0, 0, 1, 1], "phase": "collect",
                            "function": ["rmap_walk", "kernfs_fop_read_iter", "rmap_walk", "kernfs_fop_read_iter"],
                            "hits": [16384, 1, 16384, 1], "time_ns": [1000.0, 3900.0, 2000.0, 3900.0]})
    table = kernel_work.profile_table(profile, samples)
    assert table["function"].tolist() == ["kernfs_fop_read_iter", "rmap_walk"]
    rmap = table.set_index("function").loc["rmap_walk"]
    assert rmap["share"] == 0.375 and rmap["hits_per_page"] == 1.0 and rmap["n"] == 2


def test_profile_table_shares_of_samples_when_sampled_and_set_shares_after_the_first_interval():
    samples = pd.DataFrame({"label": "k", "tracker": "idle-page", "workload_label": "w", "backing": "anon",
                            "size_bytes": 1 << 26, "npages": 16384, "run_id": "r", "cell": 0, "interval": [0, 1],
                            "arm_ns": 1.0, "collect_ns": 1.0, "workload_ns": 1.0})
    profile = pd.DataFrame({"label": "k", "tracker": "idle-page", "size_bytes": 1 << 26, "run_id": "r", "cell": 0,
                            "interval": [0, 0, 1, 1, 1], "phase": "collect",
                            "kind": ["function", "set", "function", "function", "set"],
                            "function": ["rmap_walk", "rmap walk", "rmap_walk", "[user]", "rmap walk"],
                            "self_samples": [10, 10, 30, 20, 30], "samples": [80, 80, 60, 20, 60],
                            "phase_samples": [100, 100, 100, 100, 100]})
    table = kernel_work.profile_table(profile, samples).set_index("function")
    assert table.loc["rmap_walk", "share"] == 0.7 and table.loc["rmap_walk", "self_share"] == 0.2
    assert table.loc["[user]", "share"] == 0.2 and table.loc["rmap_walk", "samples"] == 70
    shares = kernel_work.set_shares(profile, "rmap walk")
    assert shares[["phase", "samples", "phase_samples"]].values.tolist() == [["collect", 60, 100]]
    assert kernel_work.set_shares(profile, "no such set") is None
