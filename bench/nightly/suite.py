"""Nightly suites: versioned TOML files in ``bench/suites/`` (or any path), read and checked.

A suite has ``name``, ``version``, three sections — ``[micro]`` (pyperf micro-benchmarks),
``[accuracy]`` (lockstep matrix), ``[overhead]`` (concurrent matrix) — an optional
``[quick.<section>]`` table per section whose keys replace the section's under ``--quick``,
an optional ``[harness]`` ('hotbench harness' with these settings: its ratios are judged like
any other metric, so a harness regression fails the nightly as a kernel regression does),
and ``[thresholds]`` (regression thresholds, read by ``analysis.compare``; ``[quick.thresholds]``
replaces or adds keys for the quick variant). An optional ``[vm]`` table runs the suite inside
``hotbench vm`` guests of cached kernels instead (``bench/nightly/guests.py``). Unknown keys are
refused by name, so a typo never silently changes what a nightly measures.

Beside a suite, ``<name>.floors.toml`` holds its noise floors per clock, learnt from A/A runs
by 'hotbench floors' (``analysis/floors.py``, kept as ``bench/nightly/floors.py`` reads them); a run
embeds them with the thresholds.
"""

from __future__ import annotations

import copy
import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import HotbenchError
from bench.nightly import floors

__all__ = ["Suite", "SUITES_DIR", "DEFAULT_SUITE", "load_suite", "suite_names", "parse_threshold"]

SUITES_DIR = Path(__file__).resolve().parents[1] / "suites"
DEFAULT_SUITE = "default"

# section -> {key: (type or tuple of types, required)}
_SECTIONS: dict[str, dict[str, tuple]] = {
    "micro": {"bench": (str, True), "options": (list, False)},
    "accuracy": {"trackers": (list, True), "workloads": (list, True), "size": (str, True),
                 "intervals": (int, True), "repeats": (int, False), "seed": (int, False), "backings": (list, False)},
    "overhead": {"trackers": (list, True), "workloads": (list, True), "size": (str, True),
                 "duration": ((int, float), True), "cycle": ((int, float), False), "batch": (int, False),
                 "pairs": (int, False)},
}
# Optional sections: a suite without one skips that phase.
_OPTIONAL = {"harness": {"size": (str, False), "accesses": (int, False), "patterns": (list, False),
                         "collect_size": (str, False), "fraction": ((int, float), False), "repeats": (int, False),
                         "fault_size": (str, False), "fault_accesses": (int, False), "faults": (bool, False)}}
# [vm]: run the suite inside 'hotbench vm' guests of these cached kernels (bench/nightly/guests.py)
_VM = {"kernels": (list, True), "icount": (int, False), "mem": (str, False), "cpus": (int, False),
       "timeout": ((int, float), False)}
_TOP = {"name", "version", "description", "quick", "thresholds", "vm", *_SECTIONS, *_OPTIONAL}


@dataclass(frozen=True)
class Suite:
    name: str
    version: int
    quick: bool
    sections: dict  # section -> effective settings (quick overrides applied)
    thresholds: dict[str, float]
    source: str  # the file it came from
    sha256: str  # of the file's bytes
    vm: dict = field(default_factory=dict)  # [vm]: the guests it runs in (empty: this kernel)
    path: Path | None = None
    floors: object = field(default=None, compare=False)  # floors.Floors (from <name>.floors.toml)

    @property
    def variant(self) -> str:
        return "quick" if self.quick else "full"

    def manifest(self) -> dict:
        """What a run records: enough to know exactly what was measured and how it is judged."""
        return {"name": self.name, "version": self.version, "variant": self.variant, "source": self.source,
                "sha256": self.sha256, "sections": self.sections, "thresholds": self.thresholds,
                "floors": self.floors.as_dict() if self.floors is not None else None,
                **({"vm": self.vm} if self.vm else {})}


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml") if not p.name.endswith(".floors.toml"))


def _path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml" or "/" in name_or_path:
        if not path.is_file():
            raise HotbenchError(f"suite file {path} does not exist")
        return path
    path = SUITES_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise HotbenchError(f"unknown suite {name_or_path!r}; choose from {', '.join(suite_names())} or give a "
                            f"path to a .toml file")
    return path


def _check_section(where: str, section: str, values: dict, partial: bool) -> None:
    spec = _VM if section == "vm" else {**_SECTIONS, **_OPTIONAL}[section]
    for key, value in values.items():
        if key not in spec:
            raise HotbenchError(f"{where}: unknown key {key!r} in [{section}] (known: {', '.join(spec)})")
        kind = spec[key][0]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise HotbenchError(f"{where}: [{section}] {key} = {value!r} has the wrong type")
        if kind is list and not all(isinstance(item, str) for item in value):
            raise HotbenchError(f"{where}: [{section}] {key} must be a list of strings")
    if not partial:
        missing = [k for k, (_, required) in spec.items() if required and k not in values]
        if missing:
            raise HotbenchError(f"{where}: [{section}] lacks {', '.join(missing)}")


def parse_threshold(text: str | float | int, where: str = "threshold") -> float:
    """0.25, "0.25" or "25%" -> 0.25; never negative."""
    try:
        value = float(text.strip().removesuffix("%")) / (100 if text.strip().endswith("%") else 1) \
            if isinstance(text, str) else float(text)
    except ValueError:
        raise HotbenchError(f"{where}: {text!r} is not a number (use 0.25 or 25%)") from None
    if value < 0 or value != value:
        raise HotbenchError(f"{where}: {text!r} must be zero or positive")
    return value


def load_suite(name_or_path: str = DEFAULT_SUITE, quick: bool = False) -> Suite:
    path = _path(name_or_path)
    raw_bytes = path.read_bytes()
    where = str(path)
    try:
        raw = tomllib.loads(raw_bytes.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise HotbenchError(f"{where}: not valid TOML ({e})") from None
    unknown = set(raw) - _TOP
    if unknown:
        raise HotbenchError(f"{where}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    if not isinstance(raw.get("name"), str) or not isinstance(raw.get("version"), int):
        raise HotbenchError(f"{where}: needs name = \"...\" and an integer version")
    sections = {}
    for section in _SECTIONS:
        values = raw.get(section)
        if not isinstance(values, dict):
            raise HotbenchError(f"{where}: lacks the [{section}] table")
        _check_section(where, section, values, partial=False)
        sections[section] = copy.deepcopy(values)
    for section in _OPTIONAL:
        if section in raw:
            if not isinstance(raw[section], dict):
                raise HotbenchError(f"{where}: [{section}] must be a table")
            _check_section(where, section, raw[section], partial=False)
            sections[section] = copy.deepcopy(raw[section])
    vm = raw.get("vm", {})
    if not isinstance(vm, dict):
        raise HotbenchError(f"{where}: [vm] must be a table")
    if vm:
        _check_section(where, "vm", vm, partial=False)
    quick_tables = raw.get("quick", {})
    for section, values in quick_tables.items():
        if section not in (*_SECTIONS, *_OPTIONAL, "thresholds") or not isinstance(values, dict):
            raise HotbenchError(f"{where}: [quick.{section}] is not a section of a suite")
        if section == "thresholds":
            continue
        _check_section(where, section, values, partial=True)
        if quick and section in sections:
            sections[section].update(copy.deepcopy(values))
    thresholds = {str(k): parse_threshold(v, f"{where}: [thresholds] {k}")
                  for k, v in (raw.get("thresholds") or {}).items()}
    if quick:  # the quick variant's own thresholds replace (or add to) the full variant's
        thresholds.update({str(k): parse_threshold(v, f"{where}: [quick.thresholds] {k}")
                           for k, v in (quick_tables.get("thresholds") or {}).items()})
    return Suite(name=raw["name"], version=raw["version"], quick=quick, sections=sections, thresholds=thresholds,
                 source=path.name if path.parent == SUITES_DIR else str(path.resolve()),
                 sha256=hashlib.sha256(raw_bytes).hexdigest(), vm=copy.deepcopy(vm), path=path.resolve(),
                 floors=floors.load(floors.floors_path(path)))
