"""masim: DAMON masim-style regions and phases.

Spec: ``masim`` (the built-in config, DEFAULT_CONFIG below) or ``masim:config=PATH`` with
PATH a TOML file (relative to the current directory); a bare name such as
``masim:config=example`` also finds ``workloads/configs/<name>.toml``. PATH cannot contain a
comma (the spec separator). ``params()`` records the resolved regions and phases, so a
result stays interpretable if the file changes.

Config (TOML)::

    [regions]            # laid out from page 0 in this order; the rest of the arena is idle
    a = "30%"            # size: "N%" of the arena, a fraction (0.3), or bytes: "16M", "512K",
    b = "30%"            #   "1G", 65536 (rounded down to whole pages, at least one)
    c = "16M"

    [[phase]]            # phases run in order, for `intervals` intervals each, then repeat
    name = "a-hot"       # optional label
    intervals = 2
    a = { weight = 90, mode = "rw" }   # weight: relative access probability (>= 0)
    b = 5                              # shorthand for { weight = 5, mode = "rw" }
    c = { weight = 5, mode = "ro" }    # mode: ro (reads only), wo (writes only),
                                       #   rw (writes with the workload's write_ratio)

A region a phase leaves out gets no accesses in that phase. Each phase needs a positive weight.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from workloads._kinds import Segment, SegmentWorkload

__all__ = ["Masim"]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

# Region A hot then cold, region B the reverse, region C read rarely throughout.
DEFAULT_CONFIG: dict[str, Any] = {
    "regions": {"a": "30%", "b": "30%", "c": "20%"},
    "phase": [
        {"name": "a-hot", "intervals": 2, "a": 90, "b": 5, "c": {"weight": 5, "mode": "ro"}},
        {"name": "b-hot", "intervals": 2, "a": 5, "b": 90, "c": {"weight": 5, "mode": "ro"}},
    ],
}

_WRITE_PROB = {"ro": 0.0, "wo": 1.0, "rw": -1.0}    # -1: the workload's write_ratio
_PHASE_KEYS = ("name", "intervals")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)


class Masim(SegmentWorkload):
    """Regions with per-phase access weights and modes (ro/wo/rw), phases cycling."""

    name = "masim"
    defaults = {"config": ""}
    config: str

    def _setup(self) -> None:
        raw, self._source = self._load()
        regions, phases = raw.get("regions"), raw.get("phase")
        extra = sorted(set(raw) - {"regions", "phase"})
        self._require(not extra, f"{self._source}: unknown section(s) {', '.join(extra)}; "
                                 "use [regions] and [[phase]]")
        self._regions = self._parse_regions(regions)
        self._phases = self._parse_phases(phases)

    # ---- loading and checking the config ----------------------------------------------

    def _load(self) -> tuple[dict[str, Any], str]:
        if not self.config:
            return DEFAULT_CONFIG, "built-in config"
        path = Path(self.config).expanduser()
        if not path.exists() and "/" not in self.config:
            path = CONFIG_DIR / f"{self.config}.toml"
        if not path.is_file():
            shipped = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.toml")))
            self._fail(f"config file {self.config!r} not found; give a TOML file path "
                       f"or one of: {shipped}")
        try:
            with path.open("rb") as f:
                return tomllib.load(f), str(path)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            self._fail(f"cannot read {path}: {' '.join(str(exc).split())}")

    def _parse_regions(self, regions: Any) -> dict[str, range]:
        self._require(isinstance(regions, dict) and regions,
                      f"{self._source}: needs a [regions] table with at least one region")
        out, next_page = {}, 0
        for name, size in regions.items():
            self._require(name not in _PHASE_KEYS,
                          f"{self._source}: a region cannot be called {name!r}")
            pages = self._region_pages(name, size)
            out[name] = range(next_page, next_page + pages)
            next_page += pages
        self._require(next_page <= self.npages,
                      f"{self._source}: regions need {next_page} pages but the arena has "
                      f"{self.npages}; shrink the regions or grow the arena")
        return out

    def _region_pages(self, name: str, size: Any) -> int:
        bad = (f"{self._source}: region {name!r} size {size!r} is not understood; use "
               "\"30%\", a fraction such as 0.3, or bytes such as \"16M\"")
        if isinstance(size, float):
            self._require(0 < size <= 1, bad)
            pages = int(size * self.npages)
        elif isinstance(size, int) and not isinstance(size, bool):
            pages = size // self.page_size
        elif isinstance(size, str) and size.strip().endswith("%"):
            try:
                percent = float(size.strip()[:-1])
            except ValueError:
                self._fail(bad)
            self._require(0 < percent <= 100, bad)
            pages = int(percent / 100 * self.npages)
        elif isinstance(size, str) and (m := _SIZE.fullmatch(size.strip())):
            pages = int(float(m.group(1)) * _UNITS[m.group(2).lower()]) // self.page_size
        else:
            self._fail(bad)
        self._require(pages >= 1, f"{self._source}: region {name!r} ({size!r}) is smaller than "
                                  f"one page of this {self.npages}-page arena; make it larger")
        return pages

    def _parse_phases(self, phases: Any) -> list[tuple[str, int, list[Segment]]]:
        self._require(isinstance(phases, list) and phases,
                      f"{self._source}: needs at least one [[phase]]")
        return [self._parse_phase(i, phase) for i, phase in enumerate(phases)]

    def _parse_phase(self, index: int, phase: Any) -> tuple[str, int, list[Segment]]:
        where = f"{self._source}: phase {index + 1}"
        self._require(isinstance(phase, dict), f"{where} must be a table")
        label = str(phase.get("name", f"phase{index + 1}"))
        intervals = phase.get("intervals")
        self._require(isinstance(intervals, int) and not isinstance(intervals, bool)
                      and intervals >= 1, f"{where}: intervals must be an integer >= 1, "
                                          f"got {intervals!r}")
        segments = []
        for region, access in phase.items():
            if region in _PHASE_KEYS:
                continue
            self._require(region in self._regions, f"{where}: unknown region {region!r}; "
                                                   f"regions are {', '.join(self._regions)}")
            weight, mode = self._parse_access(f"{where} region {region!r}", access)
            pages = self._regions[region]
            segments.append(Segment(pages.start, len(pages), weight, _WRITE_PROB[mode]))
        self._require(any(s.weight > 0 for s in segments),
                      f"{where}: give at least one region a positive weight")
        return label, intervals, segments

    def _parse_access(self, where: str, access: Any) -> tuple[float, str]:
        if isinstance(access, dict):
            unknown = sorted(set(access) - {"weight", "mode"})
            self._require(not unknown, f"{where}: unknown key(s) {', '.join(unknown)}; "
                                       "use weight and mode")
            weight, mode = access.get("weight"), access.get("mode", "rw")
        else:
            weight, mode = access, "rw"
        self._require(isinstance(weight, (int, float)) and not isinstance(weight, bool)
                      and weight >= 0, f"{where}: weight must be a number >= 0, got {weight!r}")
        self._require(mode in _WRITE_PROB, f"{where}: mode must be ro, wo or rw, got {mode!r}")
        return float(weight), mode

    # ---- per interval ----------------------------------------------------------------------

    def phase_of(self, interval: int) -> int:
        """Index of the phase *interval* runs (phases repeat after the last one)."""
        cycle = sum(intervals for _, intervals, _ in self._phases)
        left = interval % cycle
        for index, (_, intervals, _) in enumerate(self._phases):
            if left < intervals:
                return index
            left -= intervals
        raise AssertionError("unreachable: left < cycle")

    def regions(self) -> dict[str, range]:
        """Region name -> its pages."""
        return dict(self._regions)

    def segments(self, interval: int) -> list[Segment]:
        return self._phases[self.phase_of(interval)][2]

    def _derived_params(self) -> dict[str, Any]:
        # The resolved config, so a manifest stays meaningful if the file changes.
        names = {r.start: name for name, r in self._regions.items()}
        return {
            "regions": {name: [r.start, len(r)] for name, r in self._regions.items()},
            "phases": [{"name": label, "intervals": intervals,
                        "access": {names[s.start]: {"weight": s.weight,
                                                    "mode": _mode(s.write_prob)}
                                   for s in segments}}
                       for label, intervals, segments in self._phases],
        }


def _mode(write_prob: float) -> str:
    return next(mode for mode, p in _WRITE_PROB.items() if p == write_prob)
