"""Noise floors, as a suite stores them and a nightly run embeds them, per clock.

A floor is the smallest change 'hotbench compare' will call a change (``analysis.compare``);
floors are learnt from A/A runs by 'hotbench floors' (``analysis/floors.py``), never typed in.
This module is the file they are kept in and the lookup a comparison makes.

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
thresholds. A key of a priors table, like one of a suite's ``[thresholds]``, is a family, a
glob over full metric names or one full name, the most specific winning (``threshold_for``).
"""


from __future__ import annotations

import fnmatch
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import HotbenchError

__all__ = ["FORMAT", "Floors", "clock_of", "threshold_for", "floors_path", "load", "from_manifest", "to_toml",
           "write"]

FORMAT = 1
SUFFIX = ".floors.toml"


def clock_of(manifest: dict) -> str:
    """The clock whose floors judge a run's costs: ``bench.clock``'s kind ("wall" or
    "instructions"). Floors are relative, so an icount shift does not change them."""
    from bench import clock

    return clock.of_manifest(manifest).kind


def _specificity(key: str, metric: str, family: str) -> int | None:
    """3 an exact name, 2 + length a glob over names, 1 a family; None when *key* does not apply."""
    if key == metric:
        return 1_000_000
    if any(ch in key for ch in "*?[") and fnmatch.fnmatchcase(metric, key):
        return 1000 + len(key.replace("*", ""))
    if key == family:
        return 1
    return None


def threshold_for(metric: str, family: str, *sources: dict[str, float]) -> tuple[float | None, str | None]:
    """(threshold, the key that gave it): the first source with a matching key wins, and within
    a source the most specific key (exact name > glob > family)."""
    for source in sources:
        best = max(((s, k) for k in source if (s := _specificity(k, metric, family)) is not None), default=None)
        if best:
            return source[best[1]], best[1]
    return None, None


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
