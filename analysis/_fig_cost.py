"""Cost figures: tracking cost vs arena size (log–log, fitted slopes) and the accuracy/overhead Pareto."""

from __future__ import annotations

import numpy as np

from analysis import stats, style
from analysis.data import Data
from analysis._fig_kit import (Skip, chunks, ci_note, env_caption, largest_size, legend, ordered_trackers,
                              ordered_workloads, size_note, stem, nested_size, plain_log_ticks,
                              value_ticks)

MIB = float(1 << 20)
GIB = float(1 << 30)
COST_METRICS = {"cycle_ms": "arm + collect", "arm_ms": "arm", "collect_ms": "collect"}


def _cost_frame(data: Data):
    df = data.samples
    if not len(df) or "arm_ns" not in df or "collect_ns" not in df:
        raise Skip("no lockstep rows with arm_ns/collect_ns")
    df = df[df["collect_ns"].notna() & df["arm_ns"].notna()]
    sizes = df.groupby("workload_label")["size_bytes"].transform("nunique")
    df = df[sizes >= 2]  # a workload run at one size has no slope
    if not len(df):
        raise Skip("every cell ran at one arena size; run with several, e.g. --size 64M,256M,1G")
    return df.assign(arm_ms=df["arm_ns"].astype("float64") / 1e6, collect_ms=df["collect_ns"].astype("float64") / 1e6,
                     size_mib=df["size_bytes"].astype("float64") / MIB)


def cost_fits(data: Data):
    """Per label × tracker × workload × backing and cost metric: the log–log exponent, and the
    linear fit ms = intercept + per_gib · GiB over every repeat's mean (empty when < 2 sizes)."""
    import pandas as pd

    try:
        df = _cost_frame(data)
    except Skip:
        return pd.DataFrame()
    keys = ["label", "tracker", "workload_label", "backing", "size_bytes"]
    units = stats.per_repeat(df, keys, list(COST_METRICS))
    rows = []
    for key, g in units.groupby(keys[:-1], sort=False):
        if g["size_bytes"].nunique() < 2:
            continue
        for metric in COST_METRICS:
            x, y = g["size_bytes"].to_numpy("float64"), g[metric].to_numpy("float64")
            fit = stats.loglog_fit(x, y)
            if fit is None:
                continue
            per_gib, intercept = np.polyfit(x / GIB, y, 1)
            rows.append({**dict(zip(keys[:-1], key)), "metric": metric, "exponent": fit[0], "r2": fit[2],
                         "ms_per_gib": float(per_gib), "intercept_ms": float(intercept),
                         "sizes": int(g["size_bytes"].nunique()), "points": len(g)})
    return pd.DataFrame(rows)


def cost_vs_size(data: Data):
    df = _cost_frame(data)
    keys = ["label", "tracker", "workload_label", "backing", "size_mib"]
    units = stats.per_repeat(df, keys, ["cycle_ms"])
    summary = stats.summarise(units, keys, ["cycle_ms"])
    trackers, labels = ordered_trackers(df), [lb for lb in data.labels if lb in set(df["label"])]
    out = []
    sizes = sorted(df["size_mib"].unique())
    multi = len(labels) > 1
    for index, chunk in enumerate(chunks(ordered_workloads(df))):
        fig, axes = style.new_figure(1, len(chunk), size=(13.33, 6.6), sharey=True)
        ends = []  # per panel: (x, y, slope text, colour) at each line's last point
        for col, wl in enumerate(chunk):
            ax = axes[0][col]
            panel = []
            sub = summary[summary["workload_label"] == wl]
            for (label, tracker, backing), g in sorted(sub.groupby(["label", "tracker", "backing"], sort=False),
                                                       key=lambda kv: (data.label_index(kv[0][0]),
                                                                       trackers.index(kv[0][1]), kv[0][2])):
                g = g.sort_values("size_mib")
                li = data.label_index(label)
                err = g["cycle_ms_ci95"].to_numpy()
                ax.errorbar(g["size_mib"], g["cycle_ms_mean"],
                            yerr=np.nan_to_num(err) if np.isfinite(err).any() else None, capsize=4,
                            linestyle=style.label_linestyle(li), **style.marker_kw(tracker, li > 0))
                u = units[(units["label"] == label) & (units["tracker"] == tracker) & (units["workload_label"] == wl)
                          & (units["backing"] == backing)]
                fit = stats.loglog_fit(u["size_mib"].to_numpy(), u["cycle_ms"].to_numpy())
                if fit:
                    text = f"{fit[0]:.2f}" + (f" [{li + 1}]" if multi else "")
                    panel.append((g["size_mib"].iloc[-1], g["cycle_ms_mean"].iloc[-1], text,
                                  style.tracker_style(tracker)[0]))
            ends.append(panel)
            ax.set_xscale("log")
            ax.set_yscale("log")
            value_ticks(ax, sizes)
            plain_log_ticks(ax.yaxis)
            ax.set_title(wl)
            ax.set_xlabel("arena size (MiB)")
            if col == 0:
                ax.set_ylabel("arm + collect per interval (ms)")
        for ax, panel in zip(axes[0], ends):  # after every panel: the shared y limits are final
            _end_labels(ax, panel, sizes, wide=multi)
        legend(fig, data, trackers, labels, numbered=multi)
        style.caption(fig, env_caption(data, labels, f"arm + collect (wall) per interval, mean over repeats, "
                                       f"{ci_note(summary, ['cycle_ms'])}; numbers at the line ends: log-log slope (1 = proportional to arena size)"
                                       + ("; [n] = kernel n in the legend" if multi else ""), timing=True))
        out.append((stem("cost-vs-size", index), fig))
    return out


def _end_labels(ax, items, sizes, wide: bool) -> None:
    """Write each line's slope right of its last point, nudged apart so no two overlap."""
    if not items:
        return
    lo, hi = np.log10(ax.get_ylim())
    gap = (hi - lo) * 0.055
    items = sorted(items, key=lambda it: it[1])
    ys = np.log10([max(it[1], 10 ** lo) for it in items])
    for i in range(1, len(ys)):
        ys[i] = max(ys[i], ys[i - 1] + gap)
    if ys[-1] > hi - gap / 2:  # pushed past the top: shift the stack down, but not below the axis
        ys -= min(ys[-1] - (hi - gap / 2), max(ys[0] - lo - gap / 2, 0))
    span = max(sizes) / min(sizes) if min(sizes) > 0 else 10
    ax.set_xlim(right=max(sizes) * span ** (0.75 if wide else 0.45))
    for (x, _, text, colour), y in zip(items, ys):
        ax.annotate(text, xy=(x, 10 ** y), xytext=(x * span ** 0.05, 10 ** y), color=colour, va="center",
                    fontsize=12, fontweight="bold", annotation_clip=False)


def _frontier(x: np.ndarray, y: np.ndarray, maximise: bool) -> tuple[np.ndarray, np.ndarray]:
    """Points no other point beats on both cost (lower) and accuracy (higher, or lower if not *maximise*)."""
    order = np.lexsort((-y if maximise else y, x))
    xs, ys, best = [], [], None
    for i in order:
        if best is None or (y[i] > best if maximise else y[i] < best):
            best = y[i]
            xs.append(x[i])
            ys.append(y[i])
    return np.array(xs), np.array(ys)


def _pareto(data: Data, table, xcol: str, xlabel: str, stem_name: str, note: str, xlog: bool = True):
    """table: label, tracker, workload_label, <xcol>_mean/_ci95, f1_any_*, cold_fp_rate_*."""
    trackers = ordered_trackers(table)
    labels = [lb for lb in data.labels if lb in set(table["label"])]
    rows = [("f1_any", "F1, all accesses (fraction)", True), ("cold_fp_rate", "cold-page FP rate (fraction)", False)]
    out = []
    for index, chunk in enumerate(chunks(ordered_workloads(table))):
        fig, axes = style.new_figure(2, len(chunk), size=(13.33, 9.5), sharex=True)
        for col, wl in enumerate(chunk):
            sub = table[table["workload_label"] == wl]
            for r, (metric, ylabel, maximise) in enumerate(rows):
                ax = axes[r][col]
                for label in labels:
                    s = sub[(sub["label"] == label) & np.isfinite(sub[f"{metric}_mean"])
                            & np.isfinite(sub[f"{xcol}_mean"]) & ((sub[f"{xcol}_mean"] > 0) | (not xlog))]
                    if len(s) > 1:
                        fx, fy = _frontier(s[f"{xcol}_mean"].to_numpy(), s[f"{metric}_mean"].to_numpy(), maximise)
                        ax.step(fx, fy, where="post", color=style.GREY, linewidth=1.8,
                                linestyle=style.label_linestyle(data.label_index(label)), zorder=1)
                    for rank, tracker in enumerate(trackers):
                        for _, rec in s[s["tracker"] == tracker].iterrows():
                            xerr, yerr = rec[f"{xcol}_ci95"], rec[f"{metric}_ci95"]
                            ax.errorbar([rec[f"{xcol}_mean"]], [rec[f"{metric}_mean"]],
                                        xerr=[xerr] if np.isfinite(xerr) else None,
                                        yerr=[yerr] if np.isfinite(yerr) else None, capsize=4, linestyle="none",
                                        zorder=3, **{**style.marker_kw(tracker, data.label_index(label) > 0),
                                                     "markersize": nested_size(rank)})
                if xlog:
                    ax.set_xscale("log")
                    plain_log_ticks(ax.xaxis)
                ax.margins(x=0.12)  # room for the large marks at either end
                ax.set_ylim(-0.03, 1.05)
                if r == 0:
                    ax.set_title(wl)
                if col == 0:
                    ax.set_ylabel(ylabel)
                if r == 1:
                    ax.set_xlabel(xlabel)
        legend(fig, data, trackers, labels)
        bars = ci_note(table, [xcol, "f1_any", "cold_fp_rate"])
        style.caption(fig, env_caption(data, labels, f"{note}, {bars}; F1 against every access "
                                       "(write-only trackers miss the reads)", timing=True))
        out.append((stem(stem_name, index), fig))
    return out


def _accuracy_table(data: Data, size: int | None = None):
    df = data.samples
    if not len(df) or "f1_any" not in df:
        raise Skip("no lockstep rows with accuracy")
    df = df[df["tp"].notna()]
    if not len(df):
        raise Skip("no page- or region-granular tracker rows (aggregate trackers have no F1)")
    size = size or largest_size(df)
    df = df[df["size_bytes"] == size]
    keys = ["label", "tracker", "workload_label", "workload_spec", "backing"]
    metrics = ["f1_any", "cold_fp_rate", "tracker_cpu_ms_per_gib"]
    return stats.summarise(stats.per_repeat(df, keys, metrics), keys, metrics), size


def pareto_cpu(data: Data):
    table, size = _accuracy_table(data)
    if not np.isfinite(table["tracker_cpu_ms_per_gib_mean"]).any():
        raise Skip("no arm_cpu_ns/collect_cpu_ns in the lockstep rows")
    return _pareto(data, table, "tracker_cpu_ms_per_gib", "tracker CPU (ms/GiB)", "pareto",
                   f"{size_note(size)}; x: arm + collect thread CPU time; grey steps: Pareto frontier; "
                   "mean over repeats")


def pareto_slowdown(data: Data):
    conc = data.concurrent
    if conc is None or not len(conc) or "slowdown" not in conc:
        raise Skip("no concurrent rows with a slowdown column: run with 'hotbench run --mode concurrent'")
    acc, _ = _accuracy_table(data)
    conc = conc[conc["slowdown"].notna()]
    size = largest_size(conc)
    conc = conc[conc["size_bytes"] == size]
    keys = ["label", "tracker", "workload_spec", "backing"]
    slow = stats.summarise(stats.per_repeat(conc, keys, ["slowdown"]), keys, ["slowdown"])
    table = acc.merge(slow, on=["label", "tracker", "workload_spec"], suffixes=("", "_conc"))
    if not len(table):
        raise Skip("no tracker x workload has both concurrent (slowdown) and lockstep (accuracy) rows")
    return _pareto(data, table, "slowdown", "slowdown (as recorded)", "pareto-slowdown",
                   f"slowdown from concurrent runs at {size_note(size)}, accuracy from lockstep runs at their "
                   "largest size; grey steps: Pareto frontier; mean over repeats", xlog=False)
