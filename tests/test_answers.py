"""The experiments' answers are generated from the data: built here from synthetic results with
known properties, each test checks the paragraph states them — and changes when the data does."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis import answers
from analysis.data import Data, RunInfo, _with_workload_label
from analysis.metrics import add_report_rates

GIB = 1 << 30


def row(tracker, size=GIB, interval=1, tp=100, fp=0, fn=0, cpu_ms=1.0, run="r1", touched=None, **extra):
    touched = tp + fn if touched is None else touched
    npages = size // 4096
    base = {"label": "k", "run_id": run, "tracker": tracker, "size_bytes": size, "interval": interval, "repeat": 0,
            "tp": tp, "fp": fp, "fn": fn, "tn": npages - tp - fp - fn, "truth_any": touched, "tp_any": tp,
            "fp_any": fp, "fn_any": fn, "wss_true": np.nan, "wss_est": np.nan, "arm_ns": cpu_ms * 5e5,
            "collect_ns": cpu_ms * 5e5, "arm_cpu_ns": cpu_ms * 5e5, "collect_cpu_ns": cpu_ms * 5e5,
            "backing": "anon", "workload": "hotcold", "workload_spec": "hotcold",
            "workload_params": json.dumps({"accesses": 1000}), "status": "ok", "mode": "lockstep"}
    return {**base, **extra}


def data(rows, settings=None, accel="native", clock="wall"):
    frame = _with_workload_label(add_report_rates(pd.DataFrame(rows)))
    icount = {"clock": "instructions", "icount_shift": 0} if clock == "instructions" else {}
    runs = [RunInfo(run, "k", {"settings": (settings or {}).get(run, {}),
                               "environment": {"kernel_release": "7.3.4", "accel": accel, "numa_nodes": 2, **icount}})
            for run in dict.fromkeys(frame["run_id"])]
    return Data(runs=runs, labels=["k"], samples=frame, concurrent=pd.DataFrame())


def say(name, d, records=()):
    return answers.answer(name, answers.Context(d, quick=True, records=list(records))).paragraph


def sweep(tracker, per_gib_memory, per_gib_touched, sizes=(GIB // 4, GIB, 4 * GIB), touched=(1000, 4000, 16000)):
    rng = np.random.default_rng(0)
    out = []
    for size in sizes:
        for pages in touched:
            cost = 2.0 + per_gib_memory * size / GIB + per_gib_touched * pages * 4096 / GIB
            for i in range(3):
                out.append(row(tracker, size=size, interval=i, tp=pages, touched=pages,
                               cpu_ms=cost * (1 + 0.01 * rng.standard_normal())))
    return out


# ---- scaling and idle-vs-rwp ----------------------------------------------------------------------

def test_scaling_tells_memory_from_working_set_and_tests_kiryls_claim():
    text = say("scaling", data(sweep("idle-page", 100.0, 0.0) + sweep("rwp", 0.0, 200.0)))
    assert "total memory: idle-page" in text and "working set: rwp" in text
    assert "rwp follows working set (claimed: working set)" in text
    assert "idle-page follows total memory (claimed: total memory)" in text
    swapped = say("scaling", data(sweep("idle-page", 0.0, 200.0) + sweep("rwp", 100.0, 0.0)))
    assert "rwp follows total memory (claimed: working set)" in swapped


def test_idle_vs_rwp_quotes_the_cost_ratio_at_the_largest_size_and_accuracy():
    rows = sweep("idle-page", 100.0, 0.0) + sweep("rwp", 0.0, 200.0)
    rows += [row("idle-page", size=4 * GIB, interval=5, tp=100, fn=18_900, cpu_ms=402.0)]  # 189,100 of 208,000
    text = say("idle-vs-rwp", data(rows))
    assert "at 4 GiB" in text and "ms of CPU" in text
    idle = np.median([r["arm_cpu_ns"] * 2 / 1e6 for r in rows if r["tracker"] == "idle-page"
                      and r["size_bytes"] == 4 * GIB])
    rwp = np.median([r["arm_cpu_ns"] * 2 / 1e6 for r in rows if r["tracker"] == "rwp" and r["size_bytes"] == 4 * GIB])
    assert f"{answers.num(idle / rwp)}×" in text
    assert "idle-page: precision 1.000, recall 0.909" in text and "rwp: precision 1.000, recall 1.000" in text


def test_idle_vs_rwp_answers_in_instructions_under_icount():
    rows = sweep("idle-page", 100.0, 0.0) + sweep("rwp", 0.0, 200.0)
    text = say("idle-vs-rwp", data(rows, accel="tcg", clock="instructions"))
    assert "with the instruction clock" in text and " ms " not in text and "ms/GiB" not in text
    idle = np.median([r["arm_cpu_ns"] * 2 for r in rows if r["tracker"] == "idle-page" and r["size_bytes"] == 4 * GIB])
    assert f"{answers.num(idle / 1e6)} Minstr of the tracker thread's instructions" in text
    assert f"({answers.num(idle / (4 * GIB // 4096))} instr per page of the arena" in text
    assert "Minstr per GiB of memory" in text


def test_idle_vs_rwp_needs_both_on_one_kernel():
    with pytest.raises(answers.NoData, match="never ran on the same kernel"):
        answers.answer("idle-vs-rwp", answers.Context(data(sweep("rwp", 0.0, 200.0)), quick=True))


def profiled(rows, profile_rows, profile_record):
    """*rows* plus a profiled idle-page run "prof" at 1 GiB (its samples and profile rows), as loaded."""
    d = data(rows + [row("idle-page", size=GIB, interval=i, run="prof", cpu_ms=999.0) for i in range(2)],
             accel="tcg", clock="instructions")
    for run in d.runs:
        if run.run_id == "prof":
            run.manifest["kernel_profile"] = profile_record
    d.profile = pd.DataFrame(profile_rows) if profile_rows else None
    return d


def rmap_row(size, interval, phase, samples, total):
    return {"label": "k", "run_id": "prof", "cell": 0, "tracker": "idle-page", "size_bytes": size,
            "interval": interval, "phase": phase, "kind": "set", "function": "rmap walk", "samples": samples,
            "phase_samples": total, "self_samples": samples, "lost": 0}


SAMPLING = {"enabled": True, "method": "sampling", "period_ns": 25000}


def test_idle_vs_rwp_states_the_rmap_share_of_idle_page_with_its_samples():
    rows = sweep("idle-page", 100.0, 0.0) + sweep("rwp", 0.0, 200.0)
    profile = [rmap_row(GIB, 0, "arm", 1, 1000),  # the first interval arms afresh: left out
               rmap_row(GIB, 1, "arm", 300, 400), rmap_row(GIB, 1, "collect", 500, 600),
               rmap_row(GIB, 2, "arm", 100, 400), rmap_row(GIB, 2, "collect", 100, 600)]
    text = say("idle-vs-rwp", profiled(rows, profile, SAMPLING))
    assert "Of idle-page's arm + collect, the rmap walk" in text
    assert "50.0 % of 2,000 samples at 1 GiB (arm 50.0 % of 800, collect 50.0 % of 1,200)" in text
    assert "a share of its instructions (one cpu-clock sample per 25,000 guest instructions)" in text
    # the profiled run's slower phases (999 Minstr) are not idle-page's cost
    assert "999" not in text.split("Of idle-page's arm + collect")[0]


def test_idle_vs_rwp_quotes_instructions_per_page_at_every_size():
    text = say("idle-vs-rwp", data(sweep("idle-page", 100.0, 0.0) + sweep("rwp", 0.0, 200.0), accel="tcg",
                                   clock="instructions"))
    assert "Per page of the arena, in instr: idle-page " in text
    assert text.count(" at 256 MiB") >= 2 and "rwp " in text.split("Per page of the arena, in instr:")[1]


def test_idle_vs_rwp_says_why_there_is_no_rmap_share():
    rows = sweep("idle-page", 100.0, 0.0) + sweep("rwp", 0.0, 200.0)
    text = say("idle-vs-rwp", data(rows))
    assert "rmap walk's share of idle-page's cost is not known here: no run of idle-page was profiled" in text
    refused = {"enabled": False, "reason": "no tracefs function_profile_enabled; sampling: no /proc/kallsyms"}
    text = say("idle-vs-rwp", profiled(rows, [], refused))
    assert "no kernel profile could be taken (no tracefs function_profile_enabled; sampling: no /proc/kallsyms)" in text
    assert "0.0 %" not in text
    empty = say("idle-vs-rwp", profiled(rows, [rmap_row(GIB, 1, "arm", 0, 0)], SAMPLING))
    assert "not known here: its profile took no samples" in empty and "nan" not in empty
    record = {"steps": [{"name": "profile", "status": "skipped: no requested mechanism is available on this kernel"}]}
    assert "the profile step did not run (profile: skipped" in say("idle-vs-rwp", data(rows), [record])


# ---- shmem fault-around -----------------------------------------------------------------------------

def test_shmem_faultaround_counts_pages_reported_per_page_read():
    rows = [row("shmem-zap", tp=100, fp=1500, backing="shmem", run="default", interval=i) for i in range(3)]
    rows += [row("shmem-zap", tp=100, fp=0, backing="shmem", run="fa4k", interval=i) for i in range(3)]
    rows += [row("shmem-zap-minor", tp=100, fp=0, backing="shmem", run="default", interval=i) for i in range(3)]
    settings = {"fa4k": {"fault-around": {"set": "4K", "was": "65536"}}}
    text = say("shmem-faultaround", data(rows, settings))
    assert "16.00 pages per page read on hotcold (precision 0.062) [fault-around kernel default]" in text
    assert "1.00 pages per page read on hotcold (precision 1.000) [fault-around 4K]" in text
    assert "shmem-zap-minor (zap + uffd MINOR faults) reported 1.00 pages per page read" in text


# ---- MGLRU vs idle -------------------------------------------------------------------------------------

def test_mglru_vs_idle_reports_the_recall_aging_costs():
    rows = [row("idle-page", tp=100, fn=0, run="off", interval=i) for i in range(2)]
    rows += [row("idle-page", tp=100, fn=0, run="on", interval=i, interfere="none") for i in range(2)]
    rows += [row("idle-page", tp=40, fn=60, run="on", interval=i, interfere="mglru-age") for i in range(2)]
    settings = {"off": {"mglru": {"set": "off"}}, "on": {"mglru": {"set": "on"}}}
    text = say("mglru-vs-idle", data(rows, settings))
    assert "MGLRU off: recall 1.000" in text and "MGLRU on + aging: recall 0.400 (60.0 % of accessed pages" in text
    assert "changed recall by -0.600 (+120 false idles)" in text


# ---- NUMA balancing ------------------------------------------------------------------------------------

def test_numa_balancing_says_when_balancing_never_faulted():
    rows = [row("rwp", run="off"), row("rwp", run="on", fp=3)]
    settings = {"off": {"numa-balancing": {"set": "off"}}, "on": {"numa-balancing": {"set": "on"}}}
    scanned = [{"environment": {"kernel_release": "7.3.4"},
                "steps": [{"name": "balancing_on", "vmstat": {"numa_pte_updates": 5000, "numa_hint_faults": 700}},
                          {"name": "balancing_off", "vmstat": {"numa_hint_faults": 0}}]},
               {"environment": {"kernel_release": "6.18"},  # another kernel's step: not this answer's
                "steps": [{"name": "balancing_on", "vmstat": {"numa_pte_updates": 1, "numa_hint_faults": 1}}]}]
    text = say("numa-balancing-rwp", data(rows, settings, accel="tcg"), scanned)
    assert "under QEMU TCG emulation" in text and "With 2 NUMA node(s)" in text
    assert "updated 5,000 PTEs and took 700 hinting faults" in text
    assert "rwp with balancing on: precision 0.9709" in text and "cannot show an interaction" not in text
    idle = say("numa-balancing-rwp", data(rows, settings), [{"steps": []}])
    assert "NUMA balancing took no hinting fault, so these runs cannot show an interaction" in idle


# ---- TLB ---------------------------------------------------------------------------------------------

def test_tlb_missed_accesses_compares_first_and_later_intervals():
    def counted(interval, est, interfere):  # referenced: a WSS count, no confusion counts
        return row("referenced", interval=interval, tp=np.nan, fp=np.nan, fn=np.nan, wss_true=100, wss_est=est,
                   interfere=interfere)

    rows = [counted(0, 100, "none"), counted(1, 30, "none"), counted(0, 100, "tlb-flush"), counted(1, 100, "tlb-flush")]
    rows += [row("mprotect", interval=i, tp=100, interfere="none") for i in range(2)]
    text = say("tlb-missed-accesses", data(rows))
    assert "accessed-bit trackers referenced 1.000 → 0.300 (70.0 % missed)" in text
    assert "protection-based mprotect 1.000 → 1.000 (0.0 % missed)" in text
    assert "flushed after each arm: accessed-bit referenced 1.000 → 1.000" in text
