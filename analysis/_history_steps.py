"""Step changes in a metric's nightly series (the idea of asv's regression detection, a simpler method).

The series is one value per run, oldest first (timing families: the log of the run's median,
so a step is a ratio; accuracy: the value itself). It is cut into segments by **binary
segmentation with an L1 cost**: the cost of a segment is the sum of absolute deviations from
its median; the best single cut of a segment (each side at least ``MIN_SIZE`` runs, so one
odd night is never a step) is kept when it lowers the cost by more than the penalty

    beta = PENALTY * sigma * ln(n)

where n is the series length and sigma a robust noise scale: the median absolute difference
of successive values, times 1.4826 / sqrt(2) (the standard deviation for Gaussian noise;
successive differences are blind to the steps themselves). Both halves are then cut again
the same way until no cut pays. Absolute deviations keep an outlier from pulling a segment
level the way squares would (asv also fits medians with an L1 cost, via a penalised
dynamic programme; binary segmentation is the classic greedy approximation of it, quadratic
in n per level, plenty for years of nightly runs).

A cut is a *reported* step only when the levels on either side differ by more than the
metric's regression threshold (``analysis.history`` checks, for timing, both the medians and
the minimums of the runs, as 'hotbench compare' does): small, real steps in a noisy series
are left to the eye.
"""

from __future__ import annotations

import math

import numpy as np

from analysis.compare import FAMILIES

__all__ = ["MIN_SIZE", "PENALTY", "noise_scale", "detect", "levels"]

MIN_SIZE = 2
PENALTY = 3.0


def noise_scale(y: np.ndarray) -> float:
    """Robust standard deviation of the noise from successive differences (0 for a constant series)."""
    y = np.asarray(y, dtype="float64")
    if len(y) < 2:
        return 0.0
    return float(1.4826 * np.median(np.abs(np.diff(y))) / math.sqrt(2))


def _cost(y: np.ndarray) -> float:
    return float(np.abs(y - np.median(y)).sum()) if len(y) else 0.0


def _best_cut(y: np.ndarray, min_size: int) -> tuple[int | None, float]:
    """(cut index k: segments y[:k] and y[k:], the cost after cutting) or (None, cost uncut)."""
    best, best_cost = None, _cost(y)
    for k in range(min_size, len(y) - min_size + 1):
        cost = _cost(y[:k]) + _cost(y[k:])
        if cost < best_cost - 1e-12:
            best, best_cost = k, cost
    return best, best_cost


def detect(y, *, min_size: int = MIN_SIZE, penalty: float = PENALTY) -> list[int]:
    """Sorted indices i where a new level starts (between run i-1 and run i)."""
    y = np.asarray(y, dtype="float64")
    n = len(y)
    if n < 2 * min_size:
        return []
    sigma = noise_scale(y)
    # a constant-but-for-one-step series has sigma 0: any cut pays, the threshold then decides
    beta = penalty * max(sigma, 1e-12 * max(1.0, float(np.abs(y).max()))) * math.log(n)
    cuts: list[int] = []
    todo = [(0, n)]
    while todo:
        lo, hi = todo.pop()
        segment = y[lo:hi]
        k, cost = _best_cut(segment, min_size)
        if k is not None and _cost(segment) - cost > beta:
            cuts.append(lo + k)
            todo += [(lo, lo + k), (lo + k, hi)]
    return sorted(cuts)


def levels(y, cuts: list[int]) -> np.ndarray:
    """The fitted piecewise-constant series: each segment's median."""
    y = np.asarray(y, dtype="float64")
    out = np.empty_like(y)
    bounds = [0, *cuts, len(y)]
    for lo, hi in zip(bounds, bounds[1:]):
        out[lo:hi] = np.median(y[lo:hi])
    return out


def transform(family: str, medians: np.ndarray, minimums: np.ndarray):
    """(forward, inverse) applied to a series before step detection: logs for the timing families
    (a step is then a ratio; slowdowns as log(1 + s)), the values themselves for accuracy."""
    kind = FAMILIES[family].kind
    if kind == "relative" and (medians > 0).all() and (minimums > 0).all():
        return np.log, np.exp
    if kind == "factor" and (medians > -1).all() and (minimums > -1).all():
        return np.log1p, np.expm1
    return (lambda v: v), (lambda v: v)
