"""Statistics over repeats, and significance of differences between runs.

The unit of replication is a *repeat* — one cell (tracker × workload × backing × size) run
once with its own seed. Intervals within a repeat are not independent (same arena, same
tracker state), so each repeat is first reduced to the mean of its intervals; repeats are
then summarised by mean, sample standard deviation (n−1) and a 95 % confidence interval
for the mean from Student's t with n−1 degrees of freedom. With one repeat there is no
spread and no interval: the tables say n = 1 and show the mean alone.

Two labels (kernels, machines) are compared cell by cell with Welch's unequal-variance
t-test on the repeat means (``scipy.stats.ttest_ind(equal_var=False)``, with constant
samples answered directly; each side needs at least two repeats). Many cells and metrics are tested at once, so the p-values are adjusted
with the Benjamini–Hochberg procedure (``scipy.stats.false_discovery_control``) and a
difference is flagged only when its adjusted p (q) is below 0.05: among the flagged
differences, at most about 5 % are expected to be noise.
"""

from __future__ import annotations

import math

import numpy as np

ALPHA = 0.05
CONFIDENCE = 0.95
REPLICATE = ["run_id", "repeat"]


def per_repeat(df, keys: list[str], metrics: list[str]):
    """One row per keys × repeat: the mean of each metric over that repeat's intervals."""
    metrics = [m for m in metrics if m in df]
    unit = [k for k in keys + REPLICATE if k in df]
    return df.groupby(unit, sort=False, dropna=False)[metrics].mean().reset_index()


def t_halfwidth(sd: float, n: int) -> float:
    """Half-width of the 95 % confidence interval of a mean of *n* values with sample sd *sd*."""
    from scipy import stats

    if n < 2 or not np.isfinite(sd):
        return math.nan
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * sd / math.sqrt(n))


def summarise(units, keys: list[str], metrics: list[str]):
    """keys + for each metric ``<m>_mean``, ``<m>_sd``, ``<m>_n``, ``<m>_ci95`` (half-width)."""
    import pandas as pd

    metrics = [m for m in metrics if m in units]
    rows = []
    for key, group in units.groupby(keys, sort=False, dropna=False):
        rec = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        for m in metrics:
            values = group[m].to_numpy(dtype="float64")
            values = values[np.isfinite(values)]
            n = len(values)
            mean = float(values.mean()) if n else math.nan
            sd = float(values.std(ddof=1)) if n > 1 else math.nan
            rec.update({f"{m}_mean": mean, f"{m}_sd": sd, f"{m}_n": n, f"{m}_ci95": t_halfwidth(sd, n)})
        rows.append(rec)
    return pd.DataFrame(rows)


def welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(t, two-sided p) of Welch's t-test of b against a: ``scipy.stats.ttest_ind(b, a,
    equal_var=False)``, after the cases it answers with a warning and nan. Both samples
    constant: equal means are no difference (p = 1), unequal ones a certain one (p = 0);
    fewer than two values on a side: (nan, nan).
    """
    import warnings

    from scipy import stats

    a = np.asarray(a, dtype="float64")
    b = np.asarray(b, dtype="float64")
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return (0.0, 1.0) if a[0] == b[0] else (math.copysign(math.inf, b[0] - a[0]), 0.0)
    with warnings.catch_warnings():  # precision loss on near-constant samples (precision 1.000 ± 1e-7)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(b, a, equal_var=False)
    return float(result.statistic), float(result.pvalue)


def compare(units, keys: list[str], metrics: list[str], labels: list[str]):
    """Each label after the first against the first, per keys × metric.

    Returns a frame: keys, metric, ref, label, n/mean/sd per side, change (relative to the
    reference mean), t, p, q (Benjamini–Hochberg over every test in the frame) and
    ``significant`` (q < ALPHA).
    """
    import pandas as pd
    from scipy import stats

    metrics = [m for m in metrics if m in units]
    if len(labels) < 2 or not len(units):
        return pd.DataFrame()
    ref = labels[0]
    rows = []
    cell_keys = [k for k in keys if k != "label"]
    for key, group in units.groupby(cell_keys, sort=False, dropna=False):
        rec0 = dict(zip(cell_keys, key if isinstance(key, tuple) else (key,)))
        base = group[group["label"] == ref]
        for other in labels[1:]:
            cmp = group[group["label"] == other]
            if not len(base) or not len(cmp):
                continue
            for m in metrics:
                a, b = base[m].to_numpy("float64"), cmp[m].to_numpy("float64")
                a, b = a[np.isfinite(a)], b[np.isfinite(b)]
                if len(a) < 2 or len(b) < 2:
                    continue
                t, p = welch(a, b)
                ma, mb = float(a.mean()), float(b.mean())
                rows.append({**rec0, "metric": m, "ref": ref, "label": other, "ref_n": len(a), "ref_mean": ma,
                             "ref_sd": float(a.std(ddof=1)), "n": len(b), "mean": mb, "sd": float(b.std(ddof=1)),
                             "change": (mb - ma) / abs(ma) if ma else math.nan, "t": t, "p": p})
    out = pd.DataFrame(rows)
    if not len(out):
        return out
    out["q"] = stats.false_discovery_control(out["p"].to_numpy("float64"), method="bh")
    out["significant"] = out["q"] < ALPHA
    return out


def loglog_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float] | None:
    """Least-squares fit of log10 y = slope · log10 x + c: (slope, c, r²); None with < 2 sizes."""
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    lx, ly = np.log10(x[ok]), np.log10(y[ok])
    if len(np.unique(lx)) < 2:
        return None
    slope, c = np.polyfit(lx, ly, 1)
    resid = ly - (slope * lx + c)
    total = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / total if total > 0 else 1.0
    return float(slope), float(c), r2


def ecdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted values and their cumulative fraction (i/n)."""
    v = np.sort(np.asarray(values, dtype="float64"))
    v = v[np.isfinite(v)]
    return v, np.arange(1, len(v) + 1) / max(len(v), 1)
