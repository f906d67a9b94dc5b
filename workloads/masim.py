"""masim: DAMON masim-style regions and phases.

Spec: ``masim`` (the built-in config, DEFAULT_CONFIG below) or ``masim:config=PATH`` with
PATH a TOML file, or a ``.cfg`` file in DAMON masim's own format (relative to the current
directory); a bare name such as ``masim:config=example`` also finds
``workloads/configs/<name>.toml``. PATH cannot contain a comma (the spec separator).
``params()`` records the resolved regions and phases, so a result stays interpretable if the
file changes.

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
    c = { weight = 5, mode = "ro", stride = "4K" }
                                       # mode: ro (reads only), wo (writes only),
                                       #   rw (writes with the workload's write_ratio);
                                       # stride: sequential access, a cursor moving this
                                       #   many bytes per access (default: random pages)

A region a phase leaves out gets no accesses in that phase. Each phase needs a positive weight.

DAMON masim's ``.cfg`` (``workloads/_masim_cfg.py`` describes it): regions with sizes in
bytes, laid out from page 0 (rounded up to whole pages); phases with a duration in ms and
patterns (region, random or sequential, stride, probability, ro/wo/rw). The mapping:

* A phase lasts round(duration / ``interval_ms``) intervals, at least one. ``interval_ms``
  (a spec parameter) defaults to the shortest phase's duration, so the shortest phase is one
  interval and a phase twice as long is two. An interval's length stays ``accesses`` (masim
  runs a phase for its time; hotbench measures per interval, not per millisecond).
* Each access picks a pattern with probability proportional to its probability (masim picks
  one per 128 Ki accesses: the same shares). A random pattern touches a uniformly random
  page of its region; a sequential one touches the byte at its cursor, which then moves by
  the stride and returns to the region's start past its end, as masim's does. The cursor of
  every interval (and of each thread, over its share of the accesses) starts where the
  accesses expected before it would have left it, so truth(i) is a function of i alone.
* A pattern without a mode takes ``default_rw`` (a spec parameter; masim's default: wo).
* A region's data file is not read (the arena is the workload's own memory).
"""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

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
_ACCESS_KEYS = ("weight", "mode", "stride")


class Access(NamedTuple):
    """One pattern of a phase: a region, its relative weight, ro/wo/rw, and the stride in
    bytes of a sequential cursor (0: random pages)."""

    region: str
    weight: float
    mode: str
    stride: int = 0
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)


class Masim(SegmentWorkload):
    """Regions with per-phase access weights and modes (ro/wo/rw), random or sequential,
    phases cycling."""

    name = "masim"
    defaults = {"config": "", "interval_ms": 0.0, "default_rw": "wo"}
    config: str
    interval_ms: float
    default_rw: str

    def _setup(self) -> None:
        self._require(self.default_rw in _WRITE_PROB, f"default_rw must be ro, wo or rw, got {self.default_rw!r}")
        self._require(self.interval_ms >= 0, f"interval_ms must be >= 0, got {self.interval_ms:g}")
        path = self._path()
        if path is not None and path.suffix == ".cfg":
            self._source = str(path)
            self._regions, self._phases = self._from_cfg(path)
        else:
            raw, self._source = self._load(path)
            regions, phases = raw.get("regions"), raw.get("phase")
            extra = sorted(set(raw) - {"regions", "phase"})
            self._require(not extra, f"{self._source}: unknown section(s) {', '.join(extra)}; "
                                     "use [regions] and [[phase]]")
            self._regions = self._parse_regions(regions)
            self._phases = self._parse_phases(phases)
        self._sequential = any(a.stride for _, _, accesses in self._phases for a in accesses)
        if self._sequential:  # the mixed kernels: random and sequential rows in one table
            from workloads import _kernels as K

            self._record = K.record_mixed

    # ---- loading and checking the config ----------------------------------------------

    def _path(self) -> Path | None:
        if not self.config:
            return None
        path = Path(self.config).expanduser()
        if not path.exists() and "/" not in self.config:
            path = CONFIG_DIR / f"{self.config}.toml"
        if not path.is_file():
            shipped = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.toml")))
            self._fail(f"config file {self.config!r} not found; give a TOML or masim .cfg file path "
                       f"or one of: {shipped}")
        return path

    def _load(self, path: Path | None) -> tuple[dict[str, Any], str]:
        if path is None:
            return DEFAULT_CONFIG, "built-in config"
        try:
            with path.open("rb") as f:
                return tomllib.load(f), str(path)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            self._fail(f"cannot read {path}: {' '.join(str(exc).split())}")

    def _from_cfg(self, path: Path) -> tuple[dict[str, range], list]:
        """DAMON masim's format, mapped as the module docstring says."""
        from workloads import _masim_cfg as cfg

        try:
            regions, phases = cfg.parse(path.read_text(), str(path))
        except (OSError, UnicodeDecodeError) as exc:
            self._fail(f"cannot read {path}: {exc}")
        except cfg.CfgError as exc:
            self._fail(str(exc))
        out, next_page = {}, 0
        for region in regions:
            pages = -(-region.size // self.page_size)
            out[region.name] = range(next_page, next_page + pages)
            next_page += pages
        need = next_page * self.page_size
        self._require(next_page <= self.npages,
                      f"{path}: regions need {next_page} pages ({need / 2**20:.0f} MiB) but the arena has "
                      f"{self.npages}; run with --size {math.ceil(need / 2**20)}M or more")
        unit = self.interval_ms or min(p.time_ms for p in phases)
        parsed = []
        for phase in phases:
            accesses = [Access(p.region, float(p.probability), p.mode or self.default_rw, 0 if p.random else p.stride)
                        for p in phase.patterns]
            self._require(any(a.weight > 0 for a in accesses),
                          f"{path}: phase {phase.name!r}: every probability is 0; give one pattern a positive one")
            parsed.append((phase.name, max(1, round(phase.time_ms / unit)), accesses))
        return out, parsed

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

    def _parse_phase(self, index: int, phase: Any) -> tuple[str, int, list[Access]]:
        where = f"{self._source}: phase {index + 1}"
        self._require(isinstance(phase, dict), f"{where} must be a table")
        label = str(phase.get("name", f"phase{index + 1}"))
        intervals = phase.get("intervals")
        self._require(isinstance(intervals, int) and not isinstance(intervals, bool)
                      and intervals >= 1, f"{where}: intervals must be an integer >= 1, "
                                          f"got {intervals!r}")
        accesses = []
        for region, access in phase.items():
            if region in _PHASE_KEYS:
                continue
            self._require(region in self._regions, f"{where}: unknown region {region!r}; "
                                                   f"regions are {', '.join(self._regions)}")
            accesses.append(Access(region, *self._parse_access(f"{where} region {region!r}", access)))
        self._require(any(a.weight > 0 for a in accesses),
                      f"{where}: give at least one region a positive weight")
        return label, intervals, accesses

    def _parse_access(self, where: str, access: Any) -> tuple[float, str, int]:
        if isinstance(access, dict):
            unknown = sorted(set(access) - set(_ACCESS_KEYS))
            self._require(not unknown, f"{where}: unknown key(s) {', '.join(unknown)}; "
                                       "use weight, mode and stride")
            weight, mode, stride = access.get("weight"), access.get("mode", "rw"), access.get("stride", 0)
        else:
            weight, mode, stride = access, "rw", 0
        self._require(isinstance(weight, (int, float)) and not isinstance(weight, bool)
                      and weight >= 0, f"{where}: weight must be a number >= 0, got {weight!r}")
        self._require(mode in _WRITE_PROB, f"{where}: mode must be ro, wo or rw, got {mode!r}")
        return float(weight), mode, self._stride(where, stride)

    def _stride(self, where: str, stride: Any) -> int:
        if isinstance(stride, str) and (m := _SIZE.fullmatch(stride.strip())):
            stride = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
        self._require(isinstance(stride, int) and not isinstance(stride, bool) and stride >= 0,
                      f"{where}: stride must be bytes (64, \"4K\"), got {stride!r}")
        return stride

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
        return [Segment(self._regions[a.region].start, len(self._regions[a.region]), a.weight, _WRITE_PROB[a.mode])
                for a in self._phases[self.phase_of(interval)][2]]

    def _interval_args(self, interval: int) -> tuple:
        if not self._sequential:
            return super()._interval_args(interval)
        from workloads import _kernels as K

        accesses = [a for a in self._phases[self.phase_of(interval)][2] if a.weight > 0]
        base = self._table([s for s in self.segments(interval) if s.weight > 0])
        table = np.zeros((len(accesses), K.MIX_COLUMNS), np.uint64)
        table[:, :K.SEG_COLUMNS] = base
        table[:, K.MIX_STRIDE] = [a.stride for a in accesses]
        return (table,)

    def _thread_args(self, shared: tuple, first: int) -> tuple:
        """Sequential rows: the cursor where the accesses expected before *first* left it."""
        if not self._sequential:
            return shared
        from workloads import _kernels as K

        table = shared[0].copy()
        weights = np.diff(np.concatenate(([0], table[:, K.SEG_CUM].astype(np.float64)))) / K.ONE32
        for k in np.flatnonzero(table[:, K.MIX_STRIDE]):
            stride = int(table[k, K.MIX_STRIDE])
            positions = -(-int(table[k, K.SEG_PAGES]) * self.page_size // stride)  # 0, stride, ... < span
            table[k, K.MIX_OFFSET] = (int(first * weights[k] + 0.5) % positions) * stride
        return (table,)

    def _touch_call(self, plan: tuple):
        if not self._sequential:
            return super()._touch_call(plan)
        from workloads import _kernels as K

        return K.touch_mixed, plan

    def _warmup_plans(self) -> list[tuple]:
        return self._plan(0)[:1] if self._sequential else super()._warmup_plans()

    def _derived_params(self) -> dict[str, Any]:
        # The resolved config, so a manifest stays meaningful if the file changes.
        return {
            "regions": {name: [r.start, len(r)] for name, r in self._regions.items()},
            "phases": [{"name": label, "intervals": intervals,
                        "access": [{"region": a.region, "weight": a.weight, "mode": a.mode,
                                    **({"stride": a.stride} if a.stride else {})} for a in accesses]}
                       for label, intervals, accesses in self._phases],
        }
