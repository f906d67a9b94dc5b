"""How does a tracker's cost grow: with all of memory, or with the working set?

Fits, per tracker, ``cost = intercept + a * arena_GiB + b * touched_GiB`` by least squares
over a sweep's rows (lockstep: ``collect_ns`` + ``arm_ns`` per interval, where touched is
the interval's ``truth_any`` pages; concurrent: ``tracker_cpu_ns_per_cycle``). A sweep over
size at a fixed access count separates the two terms: a physical-memory tracker's cost
(idle page tracking walks every PFN of the range) follows ``a``; a per-mm hot-set scan
(RWP, Kiryl's claim) follows ``b``. Each slope comes with its standard error; a slope counts
only when it is at least twice its standard error.
"""

from __future__ import annotations

import numpy as np

GIB = float(1 << 30)


def ols(y: np.ndarray, columns: dict[str, np.ndarray]) -> dict:
    """Least squares ``y = sum(coef * column)``: ``{name: coef, name_se: standard error, r2, n}``.

    The standard errors assume independent, equal-variance residuals (NaN when the columns are
    collinear); r2 is against the mean, so include a column of ones for an intercept.
    """
    names = list(columns)
    x = np.column_stack([np.asarray(columns[name], float) for name in names])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ coef
    dof = max(len(y) - x.shape[1], 1)
    sigma2 = float(resid @ resid) / dof
    try:
        se = np.sqrt(np.diag(sigma2 * np.linalg.inv(x.T @ x)))
    except np.linalg.LinAlgError:
        se = np.full(x.shape[1], np.nan)
    total = float(((y - y.mean()) ** 2).sum())
    out = {name: float(c) for name, c in zip(names, coef)}
    out.update({f"{name}_se": float(s) for name, s in zip(names, se)})
    out["r2"] = 1 - float(resid @ resid) / total if total > 0 else float("nan")
    out["n"] = len(y)
    return out


def full_rank(*columns: np.ndarray) -> bool:
    """True when the columns (ones included by the caller) are linearly independent."""
    return np.linalg.matrix_rank(np.column_stack(columns)) == len(columns)


def _fit(size_gib: np.ndarray, touched_gib: np.ndarray, cost_ms: np.ndarray) -> dict:
    columns = {"intercept_ms": np.ones_like(size_gib), "ms_per_gib_memory": size_gib}
    if np.ptp(touched_gib) > 0 and full_rank(*columns.values(), touched_gib):
        columns["ms_per_gib_touched"] = touched_gib
    return ols(cost_ms, columns)


def _verdict(fit: dict) -> str:
    significant = [name for name, label in (("ms_per_gib_memory", "memory"), ("ms_per_gib_touched", "working set"))
                   if name in fit and fit[name] > 2 * fit.get(f"{name}_se", np.inf)]
    labels = {"ms_per_gib_memory": "total memory", "ms_per_gib_touched": "working set"}
    return " + ".join(labels[s] for s in significant) or "neither (flat)"


def cost_fits(samples, cost: str | None = None):
    """One row per tracker (x backing): slopes per GiB of memory and of touched pages, R², verdict."""
    import pandas as pd

    concurrent = "mode" in samples and (samples["mode"] == "concurrent").any()
    if cost is None:
        cost = "tracker_cpu_ns_per_cycle" if concurrent else "collect_plus_arm_ns"
    data = samples[samples["status"] == "ok"].copy()
    if cost == "collect_plus_arm_ns":
        data[cost] = data["collect_ns"] + data["arm_ns"]
    touched = data["truth_any"] if "truth_any" in data else pd.Series(0, index=data.index)
    data["touched_gib"] = touched.fillna(0) * 4096 / GIB
    rows = []
    for (tracker, backing), group in data.groupby(["tracker", "backing"], sort=True):
        if group["size_bytes"].nunique() < 2:
            continue
        fit = _fit(group["size_bytes"].to_numpy(float) / GIB, group["touched_gib"].to_numpy(float),
                   group[cost].to_numpy(float) / 1e6)
        rows.append({"tracker": tracker, "backing": backing, "cost": cost, **fit, "grows_with": _verdict(fit)})
    return pd.DataFrame(rows)
