"""thp-granularity: do page trackers report whole 2 MiB huge pages on THP-backed memory?

Per tracker and kernel, 4 KiB pages (``anon``) against THP: precision, cold false-positive rate
and the reported-vs-touched ratio (pages reported / pages touched, by the truth the tracker is
scored against). With per-page bitmaps, the ratio a tracker reporting every partly touched huge
page whole would show is computed from the truth, as the yardstick.
"""

from __future__ import annotations

import numpy as np

from analysis.answers import Answer, Context, NoData, num
from analysis.data import unpack_bits
from analysis.report import Table

BACKINGS = ("anon", "thp")
HUGE_BYTES = 2 << 20
TOLERANCE = 0.1  # a THP ratio this close to a yardstick (relative) is counted as matching it
_KEYS = ["label", "run_id", "tracker", "workload_spec", "backing", "size_bytes", "repeat", "interval"]


def _frame(ctx: Context):
    df = ctx.lockstep
    if df is None or not len(df) or "backing" not in df:
        raise NoData("no lockstep rows in these results")
    df = df[df["backing"].isin(BACKINGS) & (df["status"].astype(str) == "ok")]
    both = df.groupby(["label", "tracker"])["backing"].nunique()
    keep = set(both[both == len(BACKINGS)].index)
    df = df[[k in keep for k in zip(df["label"], df["tracker"])]]
    if not len(df):
        raise NoData("no tracker ran on both 4 KiB (anon) and THP memory on the same kernel")
    return df


def stats(df):
    """Per label, tracker, backing, accesses: precision, cold FP rate, reported/touched, touched pages."""
    g = df.groupby(["label", "tracker", "backing", "accesses"], sort=False)
    out = g.agg(precision=("precision", "mean"), cold_fp=("cold_fp_rate", "mean"), reported=("wss_est", "sum"),
                touched=("wss_true", "sum"), touched_mean=("wss_true", "mean"), touched_any=("truth_any", "mean"),
                npages=("npages", "first"), granularity=("granularity", "first"))
    out["ratio"] = out["reported"].astype("float64") / out["touched"].astype("float64").where(out["touched"] > 0)
    return out.reset_index()


def huge_ratio(data, df) -> dict:
    """(label, tracker, accesses) -> the reported/touched ratio of whole-huge-page reporting on THP rows."""
    pages = data.pages
    if pages is None or not len(pages):
        return {}
    thp = df[df["backing"] == "thp"][_KEYS + ["accesses", "truth_kind", "page_size"]]
    # Bitmaps carry no access count: cells of one run that differ only in it share these keys,
    # and both files keep cell order within them, so the n-th of each pairs up.
    pages = pages.assign(nth=pages.groupby(_KEYS).cumcount())
    merged = pages.merge(thp.assign(nth=thp.groupby(_KEYS).cumcount()), on=_KEYS + ["nth"])
    sums: dict = {}
    for r in merged.itertuples():
        truth = unpack_bits(r.truth_written, r.npages)
        if r.truth_kind != "written":
            truth |= unpack_bits(r.truth_read, r.npages)
        per_huge = HUGE_BYTES // int(r.page_size)
        regions = np.count_nonzero(truth[: truth.size // per_huge * per_huge].reshape(-1, per_huge).any(axis=1))
        acc = sums.setdefault((r.label, r.tracker, r.accesses), [0, 0])
        acc[0] += regions * per_huge
        acc[1] += int(truth.sum())
    return {k: a / b for k, (a, b) in sums.items() if b}


def _pair(s, label: str, tracker: str, accesses) -> tuple:
    rows = {r.backing: r for r in s[(s["label"] == label) & (s["tracker"] == tracker)
                                    & (s["accesses"] == accesses)].itertuples()}
    return rows["anon"], rows["thp"]


def _clause(s, label: str, tracker: str, accesses, huge: dict) -> str:
    a, t = _pair(s, label, tracker, accesses)
    text = f"{tracker} reported {num(a.ratio)}× the touched pages on 4 KiB pages and {num(t.ratio)}× on THP"
    if (label, tracker, accesses) in huge:
        text += f" (whole huge pages: {num(huge[(label, tracker, accesses)])}×)"
    if a.granularity == "page":
        text += (f", precision {a.precision:.3f} → {t.precision:.3f}, cold false positives "
                 f"{num(100 * a.cold_fp)} % → {num(100 * t.cold_fp)} %")
    return text


def _denser(s, label: str, accesses, huge: dict) -> str:
    mine = s[(s["label"] == label) & (s["accesses"] == accesses)]
    parts = []
    for tracker in dict.fromkeys(mine["tracker"]):
        _, t = _pair(s, label, tracker, accesses)
        whole = huge.get((label, tracker, accesses))
        parts.append(f"{tracker} {num(t.ratio)}×" + (f" (whole huge pages {num(whole)}×)" if whole else ""))
    return f" With {int(accesses):,} accesses, reported/touched on THP: " + ", ".join(parts) + "."


def _verdicts(s, label: str, accesses, huge: dict) -> str:
    """Which trackers' THP ratio came within TOLERANCE of whole-huge-page reporting, of their 4 KiB ratio."""
    whole, same = [], []
    for tracker in dict.fromkeys(s.loc[s["label"] == label, "tracker"]):
        a, t = _pair(s, label, tracker, accesses)
        h = huge.get((label, tracker, accesses))
        if h and abs(t.ratio / h - 1) <= TOLERANCE:
            whole.append(tracker)
        elif abs(t.ratio / a.ratio - 1) <= TOLERANCE:
            same.append(tracker)
    parts = []
    if whole:
        parts.append(f"matched whole-huge-page reporting for {', '.join(whole)}")
    if same:
        parts.append(f"stayed at the 4 KiB ratio for {', '.join(same)}")
    tol = f"{TOLERANCE:.0%}"
    return f" On THP, reported/touched (within {tol}) " + " and ".join(parts) + "." if parts else ""


def _huge_share(ctx: Context, label: str) -> str:
    """', 100 % of it in 2 MiB pages' (the runner's smaps reading of each THP arena), or '' unrecorded."""
    df = ctx.lockstep
    rows = df[(df["label"] == label) & (df["backing"] == "thp")]
    if "huge_bytes" not in rows or rows["huge_bytes"].isna().all():
        return ""
    share = (rows["huge_bytes"] / rows["size_bytes"]).dropna() * 100
    low, high = share.min(), share.max()
    return f", {low:.0f} % of it in 2 MiB pages" if round(low) == round(high) else \
        f", {low:.0f}–{high:.0f} % of it in 2 MiB pages"


def _sentence(ctx: Context, s, label: str, huge: dict) -> str:
    mine = s[s["label"] == label]
    levels = sorted(mine["accesses"].unique())
    sparse = mine[mine["accesses"] == levels[0]]
    touched = sparse["touched_any"].max()
    npages = int(sparse["npages"].iloc[0])
    clauses = [_clause(s, label, t, levels[0], huge) for t in dict.fromkeys(sparse["tracker"])]
    text = (f"On {ctx.where(label)}, uniform with {int(levels[0]):,} accesses per interval over {npages:,} pages "
            f"({num(touched)} pages touched per interval; anon → THP{_huge_share(ctx, label)}): "
            + "; ".join(clauses) + ".")
    text += _verdicts(s, label, levels[0], huge)
    return text + "".join(_denser(s, label, a, huge) for a in levels[1:])


def _table(s, huge: dict) -> Table:
    import pandas as pd

    s = s.assign(huge_ratio=[huge.get((r.label, r.tracker, r.accesses), float("nan")) if r.backing == "thp"
                             else float("nan") for r in s.itertuples()])
    rows = [[r.label, r.tracker, r.backing, f"{int(r.accesses):,}", num(r.precision), num(100 * r.cold_fp),
             num(r.touched_mean), num(r.ratio), num(r.huge_ratio)] for r in s.itertuples()]
    headers = ["kernel", "tracker", "backing", "accesses", "precision", "cold FP %", "touched/interval",
               "reported/touched", "whole-huge-page ratio"]
    return Table("thp_granularity", headers, rows, [False, False, False] + [True] * 6, pd.DataFrame(s))


def answer(ctx: Context) -> Answer:
    df = _frame(ctx)
    s = stats(df)
    huge = huge_ratio(ctx.data, df)
    text = " ".join(_sentence(ctx, s, label, huge) for label in dict.fromkeys(s["label"]))
    if not huge:
        text += " (No page bitmaps in these results: the whole-huge-page yardstick is not computed.)"
    return Answer(text, [("table", _table(s, huge))])
