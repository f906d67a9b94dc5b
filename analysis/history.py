"""Nightly history: every metric over time per machine and kernel, step changes marked, and a
self-contained HTML page about the latest nightly (``hotbench history``).

Built from the history store alone (``bench/nightly/store.py``): each complete or partial
nightly run is read with ``analysis.compare.run_metrics`` — the metrics 'hotbench compare'
judges — and reduced to one point per run and metric: the median of its values (and, for the
timing families, the minimum too). A *series* is one machine running one suite version and
variant (quick or full), so its points measure the same thing night after night; kernels
change along a series and are marked where they do. Step changes are found per series and
metric by ``analysis._history_steps`` and reported when they exceed the metric's regression
threshold and its noise floor, whichever is larger (timing: the medians *and* the minimums of
the runs moved by more, as 'hotbench compare' requires).

Output (``--out``, default ``<history>/report``):
  index.html          the latest nightly: its facts and phases, what it lacked and why, its
                      comparison with the previous run of its series, step changes, and every
                      figure embedded (base64 PNG; no scripts, no network)
  figures/<family>.png  one figure per metric family, one panel per metric
  steps.json          every reported step change
Nothing depends on the time it is built, so the same store gives the same files.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis import _history_steps
from analysis._history_steps import transform
from analysis.compare import FAMILIES, threshold_for
from analysis.compare import bad_change as compare_bad
from analysis.compare import change as compare_change
from bench import clock as clock_mod
from bench.errors import HotbenchError
from bench.nightly import store as nightly_store

__all__ = ["History", "load", "steps", "build", "select_metrics"]

INDEX_HTML = "index.html"
FIGURES_DIR = "figures"
STEPS_JSON = "steps.json"


@dataclass
class History:
    store: Path
    entries: list[dict]  # usable runs after the filters, oldest first
    points: object  # pandas.DataFrame: one row per run x metric
    all_entries: list[dict]  # every nightly run in the store


def _matches(text: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(text, pattern) or pattern in text


def select_metrics(metrics, pattern: str | None) -> list[str]:
    """Metric names a --metric pattern picks: a family name, a glob, or a substring."""
    metrics = sorted(set(metrics))
    if not pattern:
        return metrics
    return [m for m in metrics if m.split(":", 1)[0] == pattern or _matches(m, pattern)]


def load(store: Path, metric: str | None = None, kernel: str | None = None) -> History:
    import pandas as pd

    from analysis.compare import run_metrics
    from bench import results

    everything = nightly_store.rebuild_index(store)
    entries = [e for e in everything if e["status"] in nightly_store.USABLE]
    if kernel:
        entries = [e for e in entries if _matches(str(e["kernel_release"]), kernel)]
    if not entries:
        what = f" with a kernel matching {kernel!r}" if kernel else ""
        raise HotbenchError(f"history store {store} holds no complete nightly run{what} "
                            f"({len(everything)} nightly run(s) in all)")
    frames = []
    for entry in entries:
        run_dir = Path(store) / entry["dir"]
        manifest = results.load_manifest(run_dir)
        values = run_metrics(run_dir, manifest)
        if not len(values):
            continue
        summary = values.groupby(["metric", "family"], sort=True)["value"].agg(["median", "min", "count"])
        summary = summary.reset_index().rename(columns={"count": "n"})
        clk = clock_mod.of_manifest(manifest)  # instruction counts are drawn apart from ns (bench/clock.py)
        frames.append(summary.assign(run_id=entry["run_id"], date=entry["date"], machine=entry["machine"],
                                     kernel=entry["kernel_release"], series=nightly_store.series_label(entry),
                                     clock=clk.kind, icount_shift=clk.shift))
    points = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["metric", "family", "median", "min", "n", "run_id", "date", "machine", "kernel", "series",
                 "clock", "icount_shift"])
    keep = select_metrics(points["metric"], metric)
    if metric and not keep:
        raise HotbenchError(f"no metric matches {metric!r}; families: {', '.join(FAMILIES)}")
    points = points[points["metric"].isin(keep)].copy()
    points["when"] = pd.to_datetime(points["date"], utc=True, errors="coerce")
    points = points.sort_values(["series", "metric", "when", "run_id"], kind="stable").reset_index(drop=True)
    return History(Path(store), entries, points, everything)


def _thresholds(history: History) -> dict[str, tuple[dict[str, float], object, str]]:
    """series -> the thresholds and noise floors of the suite its latest run embedded (else
    the packaged suite's), and the run's clock."""
    from analysis.compare import default_thresholds
    from bench import results
    from bench.nightly import floors as floors_mod
    from bench.nightly.suite import load_suite

    out = {}
    for entry in history.entries:  # oldest first: the latest run of each series wins
        manifest = results.load_manifest(history.store / entry["dir"])
        suite = (manifest.get("nightly") or {}).get("suite") or {}
        floors = floors_mod.from_manifest(manifest) or load_suite().floors
        out[nightly_store.series_label(entry)] = (suite.get("thresholds") or default_thresholds(), floors,
                                                  floors_mod.clock_of(manifest))
    return out


def _change(family: str, before: float, after: float) -> float:
    return compare_change(FAMILIES[family], before, after)


def _bad(family: str, before: float, after: float) -> float:
    return compare_bad(FAMILIES[family], before, after)


def steps(history: History) -> list[dict]:
    """Reported step changes of every series and metric, oldest first."""
    from analysis.compare import default_thresholds

    thresholds = _thresholds(history)
    fallback = default_thresholds()
    found = []
    for (series, metric), group in history.points.groupby(["series", "metric"], sort=True):
        family = group["family"].iloc[0]
        fam = FAMILIES[family]
        med = group["median"].to_numpy("float64")
        low = group["min"].to_numpy("float64")
        y = transform(family, med, low)[0](med)
        suite, floors, clock = thresholds[series]
        threshold, key = threshold_for(metric, family, suite, fallback)
        floor = floors.floor_for(metric, family, clock)[0] if floors else None
        if threshold is not None and floor is not None:  # as in 'hotbench compare': the larger gates
            threshold, key = max(threshold, floor), (key if threshold >= floor else f"{key} (raised to the noise "
                                                     f"floor)")
        cuts = _history_steps.detect(y)
        bounds = [0, *cuts, len(y)]
        for i, cut in enumerate(cuts):
            lo, hi = bounds[i], bounds[i + 2]
            before, after = float(np.median(med[lo:cut])), float(np.median(med[cut:hi]))
            low_before, low_after = float(np.median(low[lo:cut])), float(np.median(low[cut:hi]))
            bad, good = _bad(family, before, after), _bad(family, after, before)
            if fam.test == "rank":  # the minimums must move the same way, as in 'hotbench compare'
                bad = min(bad, _bad(family, low_before, low_after))
                good = min(good, _bad(family, low_after, low_before))
            if threshold is None or not (bad > threshold or good > threshold):
                continue
            prev, nxt = group.iloc[cut - 1], group.iloc[cut]
            found.append({"series": series, "metric": metric, "family": family, "index": int(cut),
                          "run_before": prev["run_id"], "run_after": nxt["run_id"],
                          "date_before": prev["date"], "date_after": nxt["date"],
                          "kernel_before": prev["kernel"], "kernel_after": nxt["kernel"],
                          "before": before, "after": after, "change": _change(family, before, after),
                          "threshold": threshold, "threshold_key": key,
                          "direction": "regression" if bad > threshold else "improvement"})
    found.sort(key=lambda s: (s["date_after"], s["series"], s["metric"]))
    return found


def _previous(history: History, latest: dict) -> dict | None:

    same = [e for e in history.entries if nightly_store.series_key(e) == nightly_store.series_key(latest)
            and e["run_id"] != latest["run_id"] and (e["date"], e["run_id"]) < (latest["date"], latest["run_id"])]
    return same[-1] if same else None


def _publish(path: Path, data: bytes) -> None:
    """Write atomically, readable by all (the page is meant to be served: results files are 0644)."""
    from bench import results

    results.atomic_write_bytes(path, data)


def build(store: Path, out: Path | None = None, metric: str | None = None, kernel: str | None = None) -> dict:
    """Write figures, steps.json and index.html; returns what was written and found."""
    from analysis import _history_figs, _history_html
    from analysis import compare as compare_mod
    from bench import results

    history = load(store, metric, kernel)
    out = Path(out) if out else Path(store) / "report"
    try:
        (out / FIGURES_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HotbenchError(f"cannot write to {out}: {e.strerror}; choose another --out") from None
    found = steps(history)
    figures = _history_figs.write_all(history, found, out / FIGURES_DIR)
    _publish(out / STEPS_JSON, (json.dumps(found, indent=2, default=str) + "\n").encode())
    latest = history.entries[-1]
    previous = _previous(history, latest)
    comparison = None
    if previous:
        a = compare_mod.load_run(Path(store) / previous["dir"])
        b = compare_mod.load_run(Path(store) / latest["dir"])
        comparison = compare_mod.compare(a, b)
    page = _history_html.page(history, latest, results.load_manifest(Path(store) / latest["dir"]), previous,
                              comparison, found, figures)
    _publish(out / INDEX_HTML, page.encode())
    return {"out": out, "index": out / INDEX_HTML, "figures": figures, "steps": found, "latest": latest,
            "previous": previous, "comparison": comparison, "runs": len(history.entries),
            "metrics": history.points["metric"].nunique()}
