"""Figures from the optional files: page heatmaps (pages.parquet), per-fault cost CDF (pyperf
micro*.json), stall CDF (latency.parquet) and the eviction timeline (eviction.parquet)."""

from __future__ import annotations

import numpy as np

from analysis import stats, style
from analysis.data import Data, unpack_bits
from analysis._fig_kit import (Skip, chunks, env_caption, label_handles, largest_size, legend, ordered_trackers,
                              plain_log_ticks, size_note, stem)

MIB = float(1 << 20)
HEATMAP_BINS = 128
HEATMAP_ROWS = 4
CURVE_POINTS = 600


# ---- heatmap ------------------------------------------------------------------------------------

def _maps(rows, npages: int, bins: int, writes_only: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[bins, intervals] maps: share of each bin's pages accessed (truth), reported, and the
    difference (false-positive share minus missed share), from exact per-page bits."""
    edges = np.linspace(0, npages, bins + 1).astype(int)
    starts, per_bin = edges[:-1], np.diff(edges)

    def share(bits):
        return np.add.reduceat(bits.astype(np.int32), starts) / per_bin

    truth, seen, diff = [], [], []
    for reported, read, written in zip(rows["reported"], rows["truth_read"], rows["truth_written"]):
        r = unpack_bits(reported, npages)
        a = unpack_bits(written, npages)
        if not writes_only:
            a = a | unpack_bits(read, npages)
        truth.append(share(a))
        seen.append(share(r))
        diff.append(share(r & ~a) - share(~r & a))
    return np.array(truth).T, np.array(seen).T, np.array(diff).T


def heatmap(data: Data):
    pages = data.pages
    need = {"tracker", "workload_spec", "size_bytes", "interval", "npages", "truth_read", "truth_written", "reported"}
    if pages is None or not len(pages):
        raise Skip("no pages.parquet (per-page bitmaps per interval): run with 'hotbench run --pages'")
    if missing := sorted(need - set(pages.columns)):
        raise Skip(f"pages.parquet lacks {', '.join(missing)}")
    sees = {}
    if len(data.samples) and "sees" in data.samples:
        sees = dict(zip(data.samples["tracker"].astype(str), data.samples["sees"].astype(str)))
    size = largest_size(pages)
    pages = pages[pages["size_bytes"] == size]
    out = []
    for spec in sorted(pages["workload_spec"].astype(str).unique()):
        sub = pages[pages["workload_spec"].astype(str) == spec]
        panels = []  # (label, tracker, rows of one repeat)
        for label in [lb for lb in data.labels if lb in set(sub["label"])]:
            for tracker in ordered_trackers(sub[sub["label"] == label]):
                t = sub[(sub["label"] == label) & (sub["tracker"] == tracker)]
                first = t.sort_values(["run_id", "repeat", "interval"]).iloc[0]
                t = t[(t["run_id"] == first["run_id"]) & (t["repeat"] == first["repeat"])].sort_values("interval")
                panels.append((label, tracker, t))
        for index, chunk in enumerate(chunks(panels, HEATMAP_ROWS)):
            out.append((stem(f"heatmap-{_safe(spec)}", index),
                        _heatmap_figure(data, chunk, sees, size, f"{spec}, {size_note(size)}")))
    return out


def _heatmap_figure(data: Data, panels, sees: dict, size: int, what: str):
    from matplotlib.colors import LinearSegmentedColormap

    diff_cmap = LinearSegmentedColormap.from_list("hb_diff", [style.FN_COLOUR, "#FFFFFF", style.FP_COLOUR])
    fig, axes = style.new_figure(len(panels), 3, size=(13.33, 2.6 * len(panels) + 2.6), sharex=True, sharey=True)
    for row, (label, tracker, t) in enumerate(panels):
        npages = int(t["npages"].iloc[0])
        writes_only = sees.get(tracker) == "writes"
        truth, seen, diff = _maps(t, npages, min(HEATMAP_BINS, npages), writes_only)
        kw = {"aspect": "auto", "origin": "lower", "extent": (-0.5, len(t) - 0.5, 0, size / MIB),
              "interpolation": "nearest"}
        im_acc = axes[row][0].imshow(truth, cmap="Greys", vmin=0, vmax=1, **kw)
        axes[row][1].imshow(seen, cmap="Greys", vmin=0, vmax=1, **kw)
        im_diff = axes[row][2].imshow(diff, cmap=diff_cmap, vmin=-1, vmax=1, **kw)
        who = tracker + (" (writes)" if writes_only else "")
        if len(data.labels) > 1:
            who += f"\n{label}"
        axes[row][0].set_ylabel(f"{who}\noffset (MiB)", fontsize=13)
        for ax in axes[row]:
            ax.grid(False)
    for ax, title in zip(axes[0], ("ground truth", "tracker reported", "difference")):
        ax.set_title(title)
    for ax in axes[-1]:
        ax.set_xlabel("interval (index)")
        ax.xaxis.get_major_locator().set_params(integer=True)
    cb = fig.colorbar(im_acc, ax=axes[-1, :2].tolist(), location="bottom", shrink=0.6, aspect=40)
    cb.set_label("pages accessed (fraction of bin)")
    cb2 = fig.colorbar(im_diff, ax=axes[-1, 2], location="bottom", ticks=[-1, 0, 1], aspect=20)
    cb2.ax.set_xticklabels(["missed", "agree", "false +"])
    style.caption(fig, env_caption(data, sorted({p[0] for p in panels}, key=data.label_index),
                                   f"{what}, first repeat; {HEATMAP_BINS} page bins; difference = share of the bin "
                                   "reported but not accessed minus share accessed but not reported"))
    return fig


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


# ---- distributions ------------------------------------------------------------------------------

def _cdf_points(values: np.ndarray, tail: bool) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) on at most CURVE_POINTS quantiles: the CDF, or the survival 1−F with a log-spaced tail."""
    v = np.sort(np.asarray(values, dtype="float64"))
    v = v[np.isfinite(v)]
    n = len(v)
    if tail:
        q = 1.0 - np.logspace(0, -np.log10(n), CURVE_POINTS)[:-1] if n > 1 else np.array([0.0])
        return np.quantile(v, q), 1.0 - q
    x, y = stats.ecdf(v)
    if n > CURVE_POINTS:
        idx = np.unique(np.linspace(0, n - 1, CURVE_POINTS).astype(int))
        x, y = x[idx], y[idx]
    return x, y


def _styles(names: list[str]) -> dict[str, dict]:
    """One style per series name: its tracker family's (``rwp-sync`` looks like ``rwp``); a second
    name of the same family in one figure gets a style of its own."""
    out, used = {}, set()
    for name in names:
        family = style.tracker_style(name)
        out[name] = style.marker_kw(name, own=family in used)
        used.add(family)
    return out


def _series_legend(fig, data: Data, styles: dict, labels: list[str], ncol: int) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], linestyle="-", **kw) for kw in styles.values()]
    names = list(styles)
    if len(labels) > 1:
        h2, n2 = label_handles(data, labels)
        handles, names = handles + h2, names + n2
    style.legend_above(fig, handles, names, ncol=min(len(names), ncol))


def fault_cost_cdf(data: Data):
    micro = data.micro
    if micro is None or not len(micro):
        raise Skip("no pyperf micro*.json files: 'hotbench micro -o RUN_DIR/micro.json' writes one")
    faults = micro[micro["benchmark"].str.contains("fault", case=False) & (micro["unit"] == "second")]
    if not len(faults):
        raise Skip("the pyperf files hold no per-fault benchmark (none has 'fault' in its name)")
    labels = [lb for lb in data.labels if lb in set(faults["label"])]
    fig, axes = style.new_figure(1, 1, size=(13.33, 7.0))
    ax = axes[0][0]
    benches = sorted(faults["benchmark"].unique())
    styles = _styles(benches)  # one per benchmark, whatever the kernel
    for label in labels:
        li = data.label_index(label)
        for bench in benches:
            values = faults[(faults["label"] == label) & (faults["benchmark"] == bench)]["value"].to_numpy() * 1e6
            if not len(values):
                continue
            x, y = _cdf_points(values, tail=False)
            kw = {**styles[bench], "markerfacecolor": "none" if li else styles[bench]["color"]}
            ax.plot(x, y, linestyle=style.label_linestyle(li), markevery=max(len(x) // 6, 1), **kw)
    ax.set_xscale("log")
    plain_log_ticks(ax.xaxis)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("cost per fault (µs)")
    ax.set_ylabel("cumulative fraction of samples")
    _series_legend(fig, data, styles, labels, ncol=3)
    style.caption(fig, env_caption(data, labels, "pyperf values (every run, every value), per benchmark", timing=True))
    return [("fault-cost-cdf", fig)]


def _flat(column) -> np.ndarray:
    """Batch latencies as one array: concurrent runs store one array of batches per row."""
    values = column.to_numpy()
    if len(values) and isinstance(values[0], (np.ndarray, list)):
        return np.concatenate([np.asarray(v, dtype=float) for v in values])
    return values.astype(float)


def stall_cdf(data: Data):
    lat = data.latency
    if lat is None or not len(lat):
        raise Skip("no latency.parquet (batch latencies): run with 'hotbench run --mode concurrent'")
    if missing := sorted({"tracker", "batch_ns", "size_bytes"} - set(lat.columns)):
        raise Skip(f"latency.parquet lacks {', '.join(missing)}")
    size = largest_size(lat)
    lat = lat[lat["size_bytes"] == size]
    wcol = "workload" if "workload" in lat else None
    workloads = sorted(lat[wcol].astype(str).unique()) if wcol else ["all"]
    labels = [lb for lb in data.labels if lb in set(lat["label"])]
    trackers = ordered_trackers(lat)
    out = []
    for index, chunk in enumerate(chunks(workloads)):
        fig, axes = style.new_figure(1, len(chunk), size=(13.33, 6.8), sharey=True)
        for col, wl in enumerate(chunk):
            ax = axes[0][col]
            sub = lat if wcol is None else lat[lat[wcol].astype(str) == wl]
            for label in labels:
                li = data.label_index(label)
                for tracker in trackers:
                    values = _flat(sub[(sub["label"] == label) & (sub["tracker"] == tracker)]["batch_ns"]) / 1e3
                    if len(values) < 2:
                        continue
                    x, y = _cdf_points(values, tail=True)
                    ax.plot(x, y, linestyle=style.label_linestyle(li), markevery=max(len(x) // 8, 1),
                            **style.marker_kw(tracker, li > 0))
            ax.set_xscale("log")
            ax.set_yscale("log")
            plain_log_ticks(ax.xaxis)
            plain_log_ticks(ax.yaxis)
            ax.set_title(wl)
            ax.set_xlabel("batch latency (µs)")
            if col == 0:
                ax.set_ylabel("fraction of batches slower")
        legend(fig, data, trackers, labels)
        style.caption(fig, env_caption(data, labels, f"{size_note(size)}; every batch of every repeat; "
                                       "1 − CDF on log axes, so the tail (p99, p99.9) is visible", timing=True))
        out.append((stem("stall-cdf", index), fig))
    return out


# column -> (panel title, y label, scale); the rows of 'hotbench evict' (one per variant x round)
EVICTION_SERIES = {
    "evicted_pages": ("pages evicted", "pages per round", 1.0),
    "refaults": ("refaults (wrong cold guesses)", "pages per round", 1.0),
    "lat_p99_ns": ("vCPU batch latency p99", "p99 per round (µs)", 1e-3),
    "blocked_ns_max": ("longest vCPU block", "longest block per round (µs)", 1e-3),
}


def eviction_timeline(data: Data):
    ev = data.eviction
    if ev is None or not len(ev):
        raise Skip("no eviction.parquet: 'hotbench evict --out RUN_DIR/eviction.parquet' (or 'hotbench experiment "
                   "eviction-read-blocking') writes one")
    series = [c for c in EVICTION_SERIES if c in ev and ev[c].notna().any()]
    if "round" not in ev or "variant" not in ev or not series:
        raise Skip("eviction.parquet lacks variant, round or every one of " + ", ".join(EVICTION_SERIES))
    ev = ev[ev["round"].notna()]  # a skipped variant has one row without a round
    if not len(ev):
        raise Skip("every eviction variant was skipped")
    labels = [lb for lb in data.labels if lb in set(ev["label"])]
    names = sorted(ev["variant"].astype(str).unique())
    styles = _styles(names)
    fig, axes = style.new_figure(1, len(series), size=(13.33, 6.5), sharex=True)
    for col, column in enumerate(series):
        ax = axes[0][col]
        title, ylabel, scale = EVICTION_SERIES[column]
        for label in labels:
            li = data.label_index(label)
            for name in names:
                g = ev[(ev["label"] == label) & (ev["variant"].astype(str) == name)]
                if not len(g):
                    continue
                line = g.groupby("round")[column].mean() * scale  # mean over repeats
                ax.plot(line.index.to_numpy(), line.to_numpy(), linestyle=style.label_linestyle(li),
                        **{**styles[name], "markerfacecolor": "none" if li else styles[name]["color"]})
        ax.set_title(title, fontsize=15)
        ax.set_xlabel("round (index)")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.xaxis.get_major_locator().set_params(integer=True)
    _series_legend(fig, data, styles, labels, ncol=5)
    style.caption(fig, env_caption(data, labels, "one point per eviction round, mean over repeats", timing=True))
    return [("eviction-timeline", fig)]

