"""The idle-vs-rwp answer: cost ratio at the largest size, accuracy, instructions under icount, the rmap
walk's share of idle-page's cost from a kernel profile."""

import numpy as np
import pandas as pd
import pytest

from analysis import answers

from ._rows import GIB, data, row, say, sweep


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
