"""Rows and Data frames the answers are tested on (synthetic lockstep rows), and the paragraph an answer
writes for them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

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
