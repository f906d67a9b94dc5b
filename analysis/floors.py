"""Noise floors learnt: how far a metric moves between two runs of the same build, per clock.

A floor is the smallest change 'hotbench compare' will call a change: a difference must be
statistically supported *and* larger than the metric's floor (and, to be a regression,
larger than its regression threshold too). Floors are learnt, never typed in: ``hotbench
floors`` takes A/A runs (one build, one suite, one machine, run back to back) and, for every
metric, takes the largest change any pair of them shows, times ``MARGIN``. A metric that no
A/A run measured falls back to its family's floor (the largest learnt in the family). The
file they are kept in, one table per clock, is ``bench.nightly.floors``.

The change measured is the one 'hotbench compare' judges (``analysis.compare.effect``): for
the timing families the change of the medians and of the minimums (the best values),
whichever is smaller, and nothing when they disagree in sign (interference only adds time,
so a real change moves both); for the accuracy families the change of the means.
"""

from __future__ import annotations

import itertools
import math

from analysis.compare import FAMILIES, effect, summarise
from bench.errors import HotbenchError
from bench.nightly.floors import clock_of

__all__ = ["MARGIN", "learn"]

MARGIN = 1.5  # learnt floor = MARGIN x the largest A/A change: ten runs do not show the worst night


def _series(run) -> tuple:
    info = run.info()
    return info["machine"], info["suite"], info["suite_version"], info["variant"], clock_of(run.manifest)


def _ceil(value: float) -> float:
    """Round a floor up to two significant digits (a floor must never shrink by rounding)."""
    if value <= 0 or not math.isfinite(value):
        return 0.0
    scale = 10 ** (math.floor(math.log10(value)) - 1)
    return round(math.ceil(value / scale - 1e-9) * scale, 12)


def learn(runs: list, margin: float = MARGIN) -> tuple[str, dict]:
    """(clock, its table) learnt from A/A *runs* (``analysis.compare.Run``): per metric, *margin*
    times the largest change between any two runs of one series; per family the largest floor.

    Refuses runs of different clocks, and runs of different builds (an A/A pair compares a
    build with itself)."""
    if len(runs) < 2:
        raise HotbenchError("learning floors needs at least two A/A runs (ten or more give floors worth having)")
    clocks = sorted({clock_of(r.manifest) for r in runs})
    if len(clocks) > 1:
        raise HotbenchError(f"the runs count costs in different clocks ({', '.join(clocks)}); learn each clock's "
                            f"floors from its own runs")
    commits = sorted({str(r.manifest.get("git_commit")) for r in runs})
    if len(commits) > 1:
        raise HotbenchError(f"the runs come from {len(commits)} builds ({', '.join(c[:12] for c in commits)}); "
                            f"A/A runs are runs of one build")
    largest: dict[str, float] = {}
    families: dict[str, str] = {}
    pairs = 0
    by_series = itertools.groupby(sorted(runs, key=lambda r: (_series(r), r.run_id)), key=_series)
    for _, group in by_series:
        group = list(group)
        summaries = [{m: summarise(g["value"].to_numpy("float64")) for m, g in r.metrics.groupby("metric")}
                     for r in group]
        for r in group:
            families.update(zip(r.metrics["metric"], r.metrics["family"]))
        for sa, sb in itertools.combinations(summaries, 2):
            pairs += 1
            for metric in sa.keys() & sb.keys():
                bad, good = effect(FAMILIES[families[metric]], sa[metric], sb[metric])
                largest[metric] = max(largest.get(metric, 0.0), bad, good)
    if not pairs:
        raise HotbenchError("no two of the runs belong to one series (same machine, suite, version and variant)")
    floors = {m: _ceil(margin * v) for m, v in sorted(largest.items())}
    for metric, value in list(floors.items()):
        family = families[metric]
        floors[family] = max(floors.get(family, 0.0), value)
    first, last = min(r.info()["date"] for r in runs), max(r.info()["date"] for r in runs)
    about = {"runs": len(runs), "pairs": pairs, "margin": margin, "commit": commits[0],
             "machines": sorted({r.info()["machine"] for r in runs}),
             "kernels": sorted({str(r.info()["kernel_release"]) for r in runs}),
             "suites": sorted({f"{r.info()['suite']} v{r.info()['suite_version']} {r.info()['variant']}"
                               for r in runs}), "from": first, "to": last}
    family_first = dict(sorted(floors.items(), key=lambda kv: (":" in kv[0], kv[0])))
    return clocks[0], {**about, "floors": family_first}
