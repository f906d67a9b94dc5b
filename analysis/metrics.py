"""Rates of the accuracy counts a run scored per interval (``bench.scoring``): precision,
recall, F1, WSS error, cost per GiB, for reports, tables and figures (pandas).
"""

from __future__ import annotations


def add_rates(df):
    """precision, recall, f1, wss_error (relative), recall_any, collect_ms_per_gib columns on a samples frame."""
    import pandas as pd

    out = df.copy()
    for col in _COUNTS:  # an aggregate tracker's rows (WSS only) have no confusion counts
        if col not in out:
            out[col] = pd.array([pd.NA] * len(out), dtype="Float64")
    tp, fp, fn = (out[c].astype("Float64") for c in ("tp", "fp", "fn"))
    out["precision"] = (tp / (tp + fp)).where((tp + fp) > 0)
    out["recall"] = (tp / (tp + fn)).where((tp + fn) > 0)
    out["f1"] = 2 * tp / (2 * tp + fp + fn)
    out["recall_any"] = out["tp_any"].astype("Float64") / out["truth_any"].where(out["truth_any"] > 0)
    wss_true = out["wss_true"].astype("Float64")
    out["wss_error"] = (out["wss_est"].astype("Float64") - wss_true) / wss_true.where(wss_true > 0)
    gib = out["size_bytes"] / float(1 << 30)
    out["collect_ms_per_gib"] = out["collect_ns"] / 1e6 / gib
    out["arm_ms_per_gib"] = out["arm_ns"] / 1e6 / gib
    return out


_COUNTS = ("tp", "fp", "fn", "tn", "tp_any", "fp_any", "fn_any", "wss_true", "wss_est", "truth_any",
           "arm_ns", "collect_ns", "arm_cpu_ns", "collect_cpu_ns")


def add_report_rates(df, accuracy: bool = True):
    """``add_rates`` plus what the report needs, every rate as float64 (NaN where undefined).

    Extra columns: ``cold_fp_rate`` = fp / (fp + tn), the share of pages *not* accessed in
    the interval (by the truth the tracker is scored against) that it still reported;
    ``f1_any`` and ``precision_any`` against every access; ``tracker_cpu_ms_per_gib`` (arm +
    collect thread CPU per interval per GiB); ``cycle_ms`` (arm + collect wall time per
    interval). Concurrent rows (``accuracy=False``) get the stall percentiles in µs and
    tracker CPU per cycle in ms. Columns a results file lacks are treated as missing values.
    """
    import pandas as pd

    out = df.copy()
    for col in _COUNTS:
        if col not in out:
            out[col] = pd.array([pd.NA] * len(out), dtype="Float64")
    if accuracy:
        out = add_rates(out)
        tp, fp, fn, tn = (out[c].astype("Float64") for c in ("tp", "fp", "fn", "tn"))
        out["cold_fp_rate"] = (fp / (fp + tn)).where((fp + tn) > 0)
        tpa, fpa, fna = (out[c].astype("Float64") for c in ("tp_any", "fp_any", "fn_any"))
        out["f1_any"] = (2 * tpa / (2 * tpa + fpa + fna)).where((2 * tpa + fpa + fna) > 0)
        out["precision_any"] = (tpa / (tpa + fpa)).where((tpa + fpa) > 0)
        gib = out["size_bytes"].astype("float64") / float(1 << 30)
        cpu = out["arm_cpu_ns"].astype("Float64") + out["collect_cpu_ns"].astype("Float64")
        out["tracker_cpu_ms_per_gib"] = cpu / 1e6 / gib
        out["collect_cpu_ms_per_gib"] = out["collect_cpu_ns"].astype("Float64") / 1e6 / gib
        out["cycle_ms"] = (out["arm_ns"].astype("Float64") + out["collect_ns"].astype("Float64")) / 1e6
        rates = ["precision", "recall", "f1", "recall_any", "wss_error", "collect_ms_per_gib", "arm_ms_per_gib",
                 "cold_fp_rate", "f1_any", "precision_any", "tracker_cpu_ms_per_gib", "collect_cpu_ms_per_gib",
                 "cycle_ms"]
    else:
        rates = []
        for pct in ("p50", "p99", "p999", "max"):
            if f"lat_{pct}_ns" in out:
                out[f"lat_{pct}_us"] = out[f"lat_{pct}_ns"].astype("Float64") / 1e3
                rates.append(f"lat_{pct}_us")
        if "tracker_cpu_ns_per_cycle" in out:
            out["tracker_cpu_ms_per_cycle"] = out["tracker_cpu_ns_per_cycle"].astype("Float64") / 1e6
            rates.append("tracker_cpu_ms_per_cycle")
        rates += [c for c in ("slowdown", "throughput_aps", "baseline_aps") if c in out]
    for col in rates:
        out[col] = out[col].astype("Float64").astype("float64")
    return out
