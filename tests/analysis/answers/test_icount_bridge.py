"""icount-bridge's answer from synthetic native and icount runs with known ns per instruction."""

import json

import pandas as pd
import pytest

from analysis import answers
from analysis.answers import icount_bridge
from analysis.data import Data, RunInfo, _with_workload_label
from analysis.metrics import add_report_rates
from bench import experiments

MIB = 1 << 20
# guest instructions per (tracker, phase) per MiB of arena, and native ns per instruction of each mechanism
INSTR = {"uffd-wp": 20_000, "mprotect": 60_000, "referenced": 30_000, "rwp": 10_000, "idle-page": 400_000}
NS_PER_INSTR = {"uffd-wp": 0.2, "mprotect": 0.4, "referenced": 0.3}


def rows(label, run, trackers, cost, clock, sizes=(64 * MIB, 256 * MIB)):
    out = []
    for tracker in trackers:
        for size in sizes:
            for interval in range(4):
                value = cost(tracker) * INSTR[tracker] * size / MIB
                out.append({"label": label, "run_id": run, "tracker": tracker, "size_bytes": size, "interval": interval,
                            "repeat": 0, "backing": "anon", "workload": "hotcold", "workload_spec": "hotcold",
                            "workload_params": json.dumps({"accesses": 1000}), "status": "ok", "mode": "lockstep",
                            "tp": 1, "fp": 0, "fn": 0, "tn": 1, "truth_any": 1, "tp_any": 1, "fp_any": 0, "fn_any": 0,
                            "wss_true": None, "wss_est": None, "arm_ns": value, "collect_ns": value,
                            # interval 0 differs (arms afresh) and must not count
                            "arm_cpu_ns": value * (5 if interval == 0 else 1), "collect_cpu_ns": 2 * value,
                            "clock": clock, "icount_shift": 0 if clock == "instructions" else None})
    return out


def bridge_data():
    native = rows("6.18.44", "n", ["uffd-wp", "mprotect", "referenced"], lambda t: NS_PER_INSTR[t], "wall")
    guest = rows("7.3.4 (tcg)", "g", list(INSTR), lambda t: 1.0, "instructions")
    frame = _with_workload_label(add_report_rates(pd.DataFrame(native + guest)))
    runs = [RunInfo("n", "6.18.44", {"environment": {"kernel_release": "6.18.44", "accel": "native", "clock": "wall"}}),
            RunInfo("g", "7.3.4 (tcg)", {"environment": {"kernel_release": "7.3.4", "accel": "tcg",
                                                         "clock": "instructions", "icount_shift": 0}})]
    return Data(runs=runs, labels=["6.18.44", "7.3.4 (tcg)"], samples=frame, concurrent=pd.DataFrame())


def test_the_experiment_loads_and_asks_for_an_icount_guest():
    spec = experiments.load("icount-bridge")
    assert spec.vm_options == ["--icount"]
    trackers = spec.steps[0].options(False)["trackers"].split(",")
    assert set(icount_bridge.NATIVE) | set(icount_bridge.PREDICTED) <= set(trackers)


def test_band_is_the_measured_ns_per_instruction_and_predictions_use_it():
    ctx = answers.Context(bridge_data(), quick=False)
    table, guests = icount_bridge.bridges(ctx)
    assert guests == ["7.3.4 (tcg)"]
    assert sorted(table["ns_per_instr"].round(6).unique()) == [0.2, 0.3, 0.4]
    b = icount_bridge.band(table)
    assert (b["lo"], b["hi"], b["mechanisms"]) == (pytest.approx(0.2), pytest.approx(0.4),
                                                    ["mprotect", "referenced", "uffd-wp"])
    pred = icount_bridge.predictions(ctx, "7.3.4 (tcg)", b).set_index(["tracker", "phase", "size_bytes"])
    rwp = pred.loc[("rwp", "arm", 256 * MIB)]
    assert rwp["value"] == 10_000 * 256
    assert rwp["lo_us"] == pytest.approx(10_000 * 256 * 0.2 / 1e3)
    assert rwp["hi_us"] == pytest.approx(10_000 * 256 * 0.4 / 1e3)


def test_the_paragraph_names_kernels_band_and_the_prediction_label():
    text = answers.answer("icount-bridge", answers.Context(bridge_data(), quick=False)).paragraph
    assert "Native 6.18.44" in text and "guest 7.3.4" in text
    assert "0.200 – 0.400 ns per instruction" in text
    assert "a prediction, calibrated on mprotect, referenced, uffd-wp" in text
    assert "idle-page cycle (arm + collect) is 40" in text and "predicted to cost more natively" in text


def test_without_a_guest_it_says_which_command_runs_the_rest():
    d = bridge_data()
    d.samples = d.samples[d.samples["label"] == "6.18.44"]
    d.runs, d.labels = d.runs[:1], d.labels[:1]
    with pytest.raises(answers.NoData, match="hotbench vm --icount"):
        answers.answer("icount-bridge", answers.Context(d, quick=False))
