"""damon-vs-exact: recall of DAMON's region sampling on the hot pages, against overall recall and
against exact tracking (RWP; uffd-wp for written pages), and the cost of each.

Hot pages: hotcold's fixed hot set [0, hot * npages); for any other workload, the pages the
truth shows touched in every interval of the cell (the same pages for every tracker: the truth
comes from the seed).
"""

from __future__ import annotations

import json

import numpy as np

from analysis.answers import Answer, Context, NoData, num
from analysis.data import format_size, unpack_bits
from analysis.report import Table

DAMON = ["damon-vaddr", "damon-paddr"]
EXACT = ["rwp", "uffd-wp"]
_KEYS = ["label", "run_id", "tracker", "workload_spec", "backing", "size_bytes", "repeat", "interval"]
_CELL = _KEYS[:-1]


def _merged(ctx: Context):
    pages, df = ctx.data.pages, ctx.lockstep
    if pages is None or not len(pages) or not len(df):
        raise NoData("no per-page bitmaps ('hotbench run --pages') in these results")
    rows = df[_KEYS + ["workload_label", "workload_params", "truth_kind"]]  # degraded intervals count too
    # the n-th bitmap of a key pairs with the n-th row of it (both keep cell order)
    pages = pages.assign(nth=pages.groupby(_KEYS).cumcount())
    merged = pages.merge(rows.assign(nth=rows.groupby(_KEYS).cumcount()), on=_KEYS + ["nth"])
    for label in dict.fromkeys(merged["label"]):
        have = set(merged.loc[merged["label"] == label, "tracker"])
        if have & set(DAMON) and have & set(EXACT):
            return merged, label
    raise NoData("DAMON (damon-vaddr/damon-paddr) and exact tracking (rwp/uffd-wp) never ran with page bitmaps "
                 "on the same kernel (both are in Debian's 7.3: run this experiment inside 'hotbench vm')")


def _hot_mask(cell, npages: int) -> np.ndarray:
    params = json.loads(cell["workload_params"].iloc[0])
    hot = np.zeros(npages, bool)
    if str(cell["workload_spec"].iloc[0]).split(":")[0] == "hotcold":
        hot[: min(npages - 1, max(1, round(float(params["hot"]) * npages)))] = True
        return hot
    hot[:] = True
    for r in cell.itertuples():
        hot &= unpack_bits(r.truth_read, npages) | unpack_bits(r.truth_written, npages)
    return hot


def recall_table(merged):
    """Per label, tracker, workload: hot-page recall, overall recall, precision, mean hot-set size per cell."""
    acc: dict = {}
    for _, cell in merged.groupby(_CELL + ["nth"], sort=False):
        npages = int(cell["npages"].iloc[0])
        hot = _hot_mask(cell, npages)
        for r in cell.itertuples():
            truth = unpack_bits(r.truth_written, npages)
            if r.truth_kind != "written":
                truth |= unpack_bits(r.truth_read, npages)
            rep = unpack_bits(r.reported, npages)
            a = acc.setdefault((r.label, r.tracker, r.workload_label), np.zeros(7))
            a += [np.count_nonzero(rep & truth & hot), np.count_nonzero(truth & hot), np.count_nonzero(rep & truth),
                  np.count_nonzero(truth), np.count_nonzero(rep), hot.sum() / len(cell), 1 / len(cell)]
    import pandas as pd

    recs = [{"label": k[0], "tracker": k[1], "workload": k[2], "hot_recall": a[0] / a[1] if a[1] else float("nan"),
             "recall": a[2] / a[3] if a[3] else float("nan"), "precision": a[2] / a[4] if a[4] else float("nan"),
             "hot_pages": a[5] / a[6]} for k, a in acc.items()]
    return pd.DataFrame(recs)


def _recall_text(t, label: str) -> str:
    mine = t[t["label"] == label]
    parts = []
    for workload, g in mine.groupby("workload", sort=False):
        hot_n = g["hot_pages"].max()
        how = "its hot set" if workload.startswith("hotcold") else "pages touched in every interval"
        trackers = [f"{r.tracker}{' (written pages)' if r.tracker == 'uffd-wp' else ''} {r.hot_recall:.3f} vs "
                    f"{r.recall:.3f}" for r in _ordered(g).itertuples()]
        parts.append(f"{workload} ({how}, {num(hot_n)} pages): " + ", ".join(trackers))
    return "; ".join(parts)


def _ordered(g):
    order = {t: i for i, t in enumerate(DAMON + EXACT)}
    return g.sort_values("tracker", key=lambda s: s.map(lambda x: order.get(x, 99)), kind="stable")


def _extremes(t, label: str) -> str:
    mine = t[t["label"] == label]
    damon, exact = mine[mine["tracker"].isin(DAMON)], mine[mine["tracker"] == "rwp"]
    if not len(damon):
        return ""
    lo = damon.loc[damon["hot_recall"].idxmin()]
    text = (f" DAMON's lowest hot-page recall was {lo['hot_recall']:.3f} ({lo['tracker']} on {lo['workload']}), "
            f"its highest {damon['hot_recall'].max():.3f}")
    if len(exact):
        text += f"; RWP's ranged {exact['hot_recall'].min():.3f}–{exact['hot_recall'].max():.3f}"
    return text + "."


def _cost_text(ctx: Context, label: str) -> str:
    rows = ctx.lockstep[(ctx.lockstep["label"] == label) & ctx.lockstep["tracker"].isin(DAMON + EXACT)]
    g = rows.groupby("tracker")[["tracker_cpu_ms_per_gib", "cycle_ms"]].mean()
    g = g.loc[[t for t in DAMON + EXACT if t in g.index]]
    ms = ctx.unit(label)
    text = (" Cost per lockstep cycle (arm + collect), tracker thread CPU per GiB and wall time: "
            + ", ".join(f"{t} {num(r.tracker_cpu_ms_per_gib)} {ms}/GiB and {num(r.cycle_ms)} {ms}"
                        for t, r in g.iterrows()) + " (DAMON's wall time includes waiting for aggregation ends).")
    return text + _kdamond_text(ctx, label, rows[rows["tracker"].isin(DAMON)])


def _kdamond_text(ctx: Context, label: str, rows) -> str:
    """The kdamond's own CPU (instructions under icount) per interval and per GiB monitored: DAMON's
    cost is in its kthread, not in the tracker's calls."""
    if "kdamond_cpu_ns" not in rows or not rows["kdamond_cpu_ns"].notna().any():
        return " The kdamond's own CPU time was not recorded in these results."
    rows = rows[rows["kdamond_cpu_ns"].notna()]
    gib = rows["size_bytes"].astype("float64") / float(1 << 30)
    span = (rows["arm_ns"] + rows["workload_ns"] + rows["collect_ns"]).astype("float64") / 1e9  # guest seconds
    per = rows.assign(per_gib=rows["kdamond_cpu_ns"] / 1e6 / gib, per_gib_s=rows["kdamond_cpu_ns"] / 1e6 / gib / span)
    g = per.groupby("tracker")[["per_gib", "per_gib_s"]].median()
    ms = ctx.unit(label)
    what = "executed" if ctx.clock(label).instructions else "ran for"
    return (" The kdamond itself " + what + " " + ", ".join(
        f"{num(r.per_gib)} {ms} per interval per GiB monitored ({t}; {num(r.per_gib_s)} {ms} per second of guest "
        f"time per GiB)" for t, r in g.loc[[t for t in DAMON if t in g.index]].iterrows()) + " (medians).")


def _table(t) -> Table:
    rows = [[r.label, r.workload, r.tracker, num(r.hot_pages), f"{r.hot_recall:.3f}", f"{r.recall:.3f}",
             f"{r.precision:.3f}"] for r in t.itertuples()]
    return Table("damon_vs_exact", ["kernel", "workload", "tracker", "hot pages", "hot recall", "recall", "precision"],
                 rows, [False, False, False, True, True, True, True], t)


def answer(ctx: Context) -> Answer:
    merged, label = _merged(ctx)
    t = recall_table(merged)
    first = merged[merged["label"] == label].iloc[0]
    params = json.loads(first["workload_params"])
    cells = merged[merged["label"] == label]
    text = (f"On {ctx.where(label)}, {format_size(first['size_bytes'])} arena, {params.get('accesses', '?'):,} "
            f"accesses per interval, {cells['interval'].max() + 1} intervals × {cells['repeat'].nunique()} "
            f"repeat(s); recall on the hot pages vs overall: {_recall_text(t, label)}.")
    damon_rows = ctx.lockstep[(ctx.lockstep["label"] == label) & ctx.lockstep["tracker"].isin(DAMON)]
    if len(damon_rows) and "workload_ns" in damon_rows:
        text += (f" Under DAMON each interval's accesses took {num(float(damon_rows['workload_ns'].mean()) / 1e6)} "
                 f"{ctx.unit(label)} of {'guest' if ctx.clock(label).instructions else 'wall'} time, the span in "
                 "which its samples could see them.")
    text += _extremes(t, label)
    damon_p = t[(t["label"] == label) & t["tracker"].isin(DAMON)]["precision"].mean()
    exact_p = t[(t["label"] == label) & (t["tracker"] == "rwp")]["precision"].mean()
    text += f" Mean precision: DAMON {damon_p:.3f}, RWP {exact_p:.3f}." if exact_p == exact_p else ""
    text += _cost_text(ctx, label)
    return Answer(text, [("table", _table(t))])
