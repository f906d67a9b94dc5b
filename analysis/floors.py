"""Noise floors: how far a metric moves between two runs of the same build, per clock.

A floor is the smallest change 'hotbench compare' will call a change: a difference must be
statistically supported *and* larger than the metric's floor (and, to be a regression,
larger than its regression threshold too). Floors are learnt, never typed in: ``hotbench
floors`` takes A/A runs (one build, one suite, one machine, run back to back) and, for every
metric, takes the largest change any pair of them shows, times ``MARGIN``. A metric that no
A/A run measured falls back to its family's floor (the largest learnt in the family).

A clock carries its own floors: a wall-clock nightly on a shared 2-CPU box moves by tens of
percent, a QEMU instruction count (``environment.clock = "instructions"``) by far less, and
neither says anything about the other. The file keeps one table per clock:

    format = 1
    [wall]                      # how the floors were learnt
    runs = 10
    pairs = 45
    margin = 1.5
    ...
    [wall.floors]               # learnt: every metric's, and per family the largest
    collect_ns = 1.21
    "collect_ns:uffd-wp/hotcold/anon/16M" = 0.62
    [wall.priors]               # set by hand, kept when floors are learnt again: metrics that
    "recall:damon-*" = 0.3      # no A/A run here could measure (mechanisms this host lacks)

A suite's floors live beside it as ``<suite>.floors.toml`` (the packaged suite's in
``bench/suites/``); a nightly run embeds the floors it was judged with, as it embeds its
thresholds.

The change measured is the one 'hotbench compare' judges (``effect``): for the timing
families the change of the medians and of the minimums (the best values), whichever is
smaller, and nothing when they disagree in sign (interference only adds time, so a real
change moves both); for the accuracy families the change of the means.
"""

from __future__ import annotations

import itertools
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import HotbenchError

__all__ = ["FORMAT", "MARGIN", "Floors", "clock_of", "effect", "floors_path", "load",
           "from_manifest", "learn", "to_toml", "write"]

FORMAT = 1
MARGIN = 1.5  # learnt floor = MARGIN x the largest A/A change: ten runs do not show the worst night
SUFFIX = ".floors.toml"


def clock_of(manifest: dict) -> str:
    """The clock whose floors judge a run's costs: ``bench.clock``'s kind ("wall" or
    "instructions"). Floors are relative, so an icount shift does not change them."""
    from bench import clock

    return clock.of_manifest(manifest).kind


@dataclass
class Floors:
    """Per clock: the learnt floors, the priors set by hand, and how the floors were learnt."""

    clocks: dict[str, dict] = field(default_factory=dict)  # clock -> {"floors": {}, "priors": {}, ...about}
    source: str = "no floors"

    def table(self, clock: str) -> dict | None:
        return self.clocks.get(clock)

    def floor_for(self, metric: str, family: str, clock: str) -> tuple[float | None, str | None]:
        """(floor, the key that gave it): a learnt floor of this very metric, else a prior
        (exact name, glob or family; the most specific), else the family's learnt floor."""
        from analysis.compare import threshold_for

        table = self.table(clock)
        if not table:
            return None, None
        learnt, priors = table.get("floors") or {}, table.get("priors") or {}
        if metric in learnt:
            return float(learnt[metric]), metric
        value, key = threshold_for(metric, family, priors)
        if key is not None:
            return value, f"{key} (prior)"
        if family in learnt:
            return float(learnt[family]), f"{family} (family)"
        return None, None

    def as_dict(self) -> dict:
        return {"source": self.source, "clocks": self.clocks}


def floors_path(suite_file: Path) -> Path:
    """Where a suite's floors live: ``default.toml`` -> ``default.floors.toml``."""
    return Path(suite_file).with_name(Path(suite_file).stem + SUFFIX)


def load(path: Path) -> Floors:
    """Read a floors file; a missing file is no floors (every change is then inconclusive)."""
    path = Path(path)
    if not path.is_file():
        return Floors({}, f"no floors file ({path} does not exist)")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as e:
        raise HotbenchError(f"{path}: not a floors file ({' '.join(str(e).split())})") from None
    if raw.get("format") != FORMAT:
        raise HotbenchError(f"{path}: floors format {raw.get('format')!r} is not one this hotbench reads ({FORMAT})")
    clocks = {}
    for clock, table in raw.items():
        if clock == "format":
            continue
        if not isinstance(table, dict):
            raise HotbenchError(f"{path}: [{clock}] must be a table of a clock's floors")
        for part in ("floors", "priors"):
            values = table.get(part) or {}
            bad = [k for k, v in values.items() if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0]
            if bad:
                raise HotbenchError(f"{path}: [{clock}.{part}] {bad[0]} must be a number >= 0")
        clocks[clock] = table
    return Floors(clocks, str(path))


def from_manifest(manifest: dict) -> Floors | None:
    """The floors a nightly run embedded (None for runs that embedded none)."""
    suite = (manifest.get("nightly") or {}).get("suite") or {}
    embedded = suite.get("floors")
    if not isinstance(embedded, dict) or not isinstance(embedded.get("clocks"), dict) or not embedded["clocks"]:
        return None  # none, or the suite had no floors file: the packaged floors judge it
    return Floors(embedded["clocks"], str(embedded.get("source") or "embedded"))


# ---------------------------------------------------------------- the change that is judged

def effect(family, a: dict, b: dict) -> tuple[float, float]:
    """(how much worse B is than A, how much better), both >= 0 and at most one positive.

    *a* and *b* summarise each side (mean, median, min). Timing: the smaller of the median's
    and the best value's change, zero when they disagree; accuracy: the change of the means.
    "Better" swaps the runs, so halving a cost is as large as doubling it.
    """
    from analysis.compare import bad_change

    if family.test == "rank":
        bad = min(bad_change(family, a["median"], b["median"]), bad_change(family, a["min"], b["min"]))
        good = min(bad_change(family, b["median"], a["median"]), bad_change(family, b["min"], a["min"]))
    else:
        bad, good = bad_change(family, a["mean"], b["mean"]), bad_change(family, b["mean"], a["mean"])
    bad, good = (0.0 if not math.isfinite(x) else max(x, 0.0) for x in (bad, good))
    return (bad, 0.0) if bad >= good else (0.0, good)


# ---------------------------------------------------------------- learning

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
    from analysis.compare import FAMILIES, summarise

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


# ---------------------------------------------------------------- writing

def _key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum()
    return key if bare else json.dumps(key)  # a JSON string is a TOML basic string


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(str(value))


def to_toml(floors: Floors, header: str = "") -> str:
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines += [f"format = {FORMAT}"]
    for clock, table in floors.clocks.items():
        lines += ["", f"[{_key(clock)}]"]
        lines += [f"{_key(k)} = {_value(v)}" for k, v in table.items() if k not in ("floors", "priors")]
        for part in ("floors", "priors"):
            if table.get(part):
                lines += ["", f"[{_key(clock)}.{part}]"]
                lines += [f"{_key(k)} = {_value(v)}" for k, v in table[part].items()]
    return "\n".join(lines) + "\n"


def write(path: Path, clock: str, table: dict, header: str) -> Floors:
    """Put *clock*'s learnt table into the floors file at *path*, keeping the other clocks and
    this clock's priors; written atomically."""
    from bench import results

    current = load(path)
    priors = (current.clocks.get(clock) or {}).get("priors") or {}
    current.clocks[clock] = {**table, **({"priors": priors} if priors else {})}
    current.clocks = dict(sorted(current.clocks.items()))
    results.atomic_write_bytes(Path(path), to_toml(current, header).encode())
    return load(path)
