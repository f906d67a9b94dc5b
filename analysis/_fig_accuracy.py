"""Accuracy figures: accuracy vs interval length, precision–recall, WSS estimate vs truth over time."""

from __future__ import annotations

import numpy as np

from analysis import stats, style
from analysis.data import Data
from analysis._fig_kit import (Skip, chunks, ci_note, env_caption, largest_size, legend, ordered_trackers,
                              ordered_workloads, size_note, stem, nested_size, value_ticks)

MIB = float(1 << 20)


def _scored(data: Data):
    """Lockstep rows of trackers with a per-page answer (tp/fp/fn known)."""
    df = data.samples
    if not len(df) or "precision" not in df:
        raise Skip("no lockstep rows in these results")
    df = df[df["tp"].notna()]
    if not len(df):
        raise Skip("no page- or region-granular tracker rows (tp/fp/fn are empty: aggregate trackers only)")
    return df


def _errorbar(ax, x, y, yerr, tracker: str, label_index: int, xerr=None, size: float | None = None, **kw):
    kw = {**style.marker_kw(tracker, hollow=label_index > 0), **kw}
    if size is not None:
        kw["markersize"] = size
    yerr = None if yerr is None or not np.isfinite(yerr).any() else np.nan_to_num(yerr)
    xerr = None if xerr is None or not np.isfinite(xerr).any() else np.nan_to_num(xerr)
    ax.errorbar(x, y, yerr=yerr, xerr=xerr, capsize=4, elinewidth=1.6, **kw)


def accuracy_vs_interval(data: Data):
    df = _scored(data)
    df = df[df["accesses"].notna()]
    lengths = df.groupby(["workload_spec", "size_bytes"])["accesses"].nunique()
    specs = sorted({str(spec) for spec, _ in lengths[lengths >= 2].index})
    if not specs:
        raise Skip("every workload ran at a single interval length (accesses per interval); merge runs made "
                   "with different --accesses")
    df = df[df["workload_spec"].astype(str).isin(specs)]
    per_size = df.groupby(["size_bytes", "workload_spec"])["accesses"].nunique()
    size = int(per_size[per_size >= 2].index.get_level_values("size_bytes").max())  # largest with >= 2 lengths
    df = df[df["size_bytes"] == size]
    specs = sorted(set(specs) & set(df["workload_spec"].astype(str)))
    keys = ["label", "tracker", "workload_spec", "backing", "accesses"]
    summary = stats.summarise(stats.per_repeat(df, keys, ["precision", "recall"]), keys, ["precision", "recall"])
    trackers, labels = ordered_trackers(df), [lb for lb in data.labels if lb in set(df["label"])]
    out = []
    for index, chunk in enumerate(chunks(specs)):
        fig, axes = style.new_figure(2, len(chunk), sharex=True, sharey=True)
        for col, spec in enumerate(chunk):
            for row, metric in enumerate(("precision", "recall")):
                ax = axes[row][col]
                groups = summary[summary["workload_spec"] == spec].groupby(["label", "tracker", "backing"], sort=False)
                # in legend order: the larger marks of earlier trackers are drawn first and stay visible
                for (label, tracker, backing), g in sorted(groups, key=lambda kv: (data.label_index(kv[0][0]),
                                                                                   trackers.index(kv[0][1]))):
                    g = g.sort_values("accesses")
                    li = data.label_index(label)
                    _errorbar(ax, g["accesses"], g[f"{metric}_mean"], g[f"{metric}_ci95"], tracker, li,
                              linestyle=style.label_linestyle(li), size=nested_size(trackers.index(tracker), 14))
                ax.set_xscale("log")
                value_ticks(ax, sorted(df["accesses"].unique()))
                ax.set_ylim(-0.03, 1.05)
                if row == 0:
                    ax.set_title(spec)
                if col == 0:
                    ax.set_ylabel(f"{metric} (fraction)")
                if row == 1:
                    ax.set_xlabel("interval length (accesses)")
        legend(fig, data, trackers, labels)
        style.caption(fig, env_caption(data, labels, f"{size_note(size)}; mean over repeats, "
                                       f"{ci_note(summary, ['precision', 'recall'])}; precision/recall against the "
                                       "accesses each tracker can see (written pages for write-only trackers)"))
        out.append((stem("accuracy-vs-interval", index), fig))
    return out


def precision_recall(data: Data):
    df = _scored(data)
    size = largest_size(df)
    df = df[df["size_bytes"] == size]
    keys = ["label", "tracker", "workload_label", "backing"]
    summary = stats.summarise(stats.per_repeat(df, keys, ["precision", "recall"]), keys, ["precision", "recall"])
    trackers, labels = ordered_trackers(df), [lb for lb in data.labels if lb in set(df["label"])]
    workloads = ordered_workloads(df)
    out = []
    for index, chunk in enumerate(chunks(workloads)):
        fig, axes = style.new_figure(len(labels), len(chunk), size=(13.33, 4.8 * len(labels) + 2.2),
                                     sharex=True, sharey=True)
        for row, label in enumerate(labels):
            for col, wl in enumerate(chunk):
                ax = axes[row][col]
                sub = summary[(summary["label"] == label) & (summary["workload_label"] == wl)]
                # biggest marker first: trackers at the same point stay visible as nested shapes
                for rank, tracker in enumerate(trackers):
                    for _, rec in sub[sub["tracker"] == tracker].iterrows():
                        _errorbar(ax, [rec["recall_mean"]], [rec["precision_mean"]], np.array([rec["precision_ci95"]]),
                                  tracker, data.label_index(label), xerr=np.array([rec["recall_ci95"]]),
                                  size=nested_size(rank, 20), linestyle="none", alpha=0.9)
                ax.set_xlim(-0.03, 1.05)
                ax.set_ylim(-0.03, 1.05)
                ax.set_title(wl if len(labels) == 1 else f"{wl}\n{label}", fontsize=15)
                if col == 0:
                    ax.set_ylabel("precision (fraction)")
                if row == len(labels) - 1:
                    ax.set_xlabel("recall (fraction)")
        legend(fig, data, trackers, labels)
        style.caption(fig, env_caption(data, labels, f"{size_note(size)}; one mark per tracker x workload, "
                                       f"mean over repeats, {ci_note(summary, ['precision', 'recall'])}; "
                                       "overlapping marks are nested, the first tracker's largest; write-only "
                                       "trackers scored against the written pages"))
        out.append((stem("precision-recall", index), fig))
    return out


def wss_timeline(data: Data):
    df = data.samples
    need = ["wss_est", "truth_any", "truth_written", "interval", "page_size"]
    if not len(df) or any(c not in df for c in need):
        raise Skip("no lockstep rows with wss_est and truth per interval")
    df = df[df["wss_est"].notna()]
    if not len(df):
        raise Skip("no tracker reported a working-set size")
    size = largest_size(df)
    df = df[df["size_bytes"] == size]
    df = df.assign(est_mib=df["wss_est"].astype("float64") * df["page_size"] / MIB,
                   any_mib=df["truth_any"].astype("float64") * df["page_size"] / MIB,
                   written_mib=df["truth_written"].astype("float64") * df["page_size"] / MIB)
    trackers, labels = ordered_trackers(df), [lb for lb in data.labels if lb in set(df["label"])]
    # the phase workload (moving hot set) first: it is the one that shows tracking lag
    workloads = sorted(ordered_workloads(df), key=lambda w: not w.startswith("phase"))  # stable: natural order kept
    out = []
    for index, chunk in enumerate(chunks(workloads)):
        fig, axes = style.new_figure(len(labels), len(chunk), size=(13.33, 4.6 * len(labels) + 2.0), sharex=True)
        for row, label in enumerate(labels):
            for col, wl in enumerate(chunk):
                ax = axes[row][col]
                sub = df[(df["label"] == label) & (df["workload_label"] == wl)]
                truth = sub.groupby("interval")[["any_mib", "written_mib"]].mean()
                ax.plot(truth.index, truth["any_mib"], color=style.GREY, linewidth=7, alpha=0.45, zorder=1)
                ax.plot(truth.index, truth["written_mib"], color=style.GREY, linewidth=3, linestyle="--", zorder=1)
                for tracker in trackers:
                    g = sub[sub["tracker"] == tracker]
                    if not len(g):
                        continue
                    line = g.groupby("interval")["est_mib"].mean()
                    ax.plot(line.index, line.to_numpy(), linestyle=style.label_linestyle(data.label_index(label)),
                            zorder=3, **{**style.marker_kw(tracker, hollow=data.label_index(label) > 0),
                                         "markersize": nested_size(trackers.index(tracker), 13)})
                ax.set_ylim(bottom=0)
                ax.set_title(wl if len(labels) == 1 else f"{wl}\n{label}", fontsize=15)
                if col == 0:
                    ax.set_ylabel("working set (MiB)")
                if row == len(labels) - 1:
                    ax.set_xlabel("interval (index)")
                ax.xaxis.get_major_locator().set_params(integer=True)
        from matplotlib.lines import Line2D

        truth_handles = [Line2D([], [], color=style.GREY, linewidth=7, alpha=0.45),
                         Line2D([], [], color=style.GREY, linewidth=3, linestyle="--")]
        legend(fig, data, trackers, labels, extra=(truth_handles, ["truth: read or written", "truth: written"]))
        style.caption(fig, env_caption(data, labels, f"{size_note(size)}; estimate = pages reported, mean over "
                                       "repeats; write-only trackers estimate the written set"))
        out.append((stem("wss-timeline", index), fig))
    return out
