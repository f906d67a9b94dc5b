"""DAMON masim's own config format (``*.cfg``), read and written.

The format, as masim's ``read_config`` parses it (github.com/sjp38/masim, ``masim.c``):
lines starting with ``#`` are dropped; blank lines separate paragraphs. The first paragraph
lists the regions, one per line::

    name, size in bytes[, file to fill it from]

Every later paragraph is one phase: a name line, a duration line (milliseconds), then one
access pattern per line::

    region, random (1) or sequential (0), stride in bytes, probability[, ro|wo|rw]

A pattern without a mode takes masim's ``--default_rw_mode`` (write-only unless told
otherwise). Probabilities are relative weights within their phase; a region may appear in
several patterns of one phase.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["CfgError", "Region", "Pattern", "Phase", "parse", "render"]

MODES = ("ro", "wo", "rw")


class CfgError(ValueError):
    """The text is not a masim config; the message names the line."""


class Region(NamedTuple):
    name: str
    size: int  # bytes


class Pattern(NamedTuple):
    region: str
    random: bool
    stride: int  # bytes
    probability: int
    mode: str | None  # None: the default mode


class Phase(NamedTuple):
    name: str
    time_ms: int
    patterns: list[Pattern]


def _paragraphs(text: str) -> list[list[tuple[int, str]]]:
    """(line number, line) paragraphs, comment lines dropped (they do not split paragraphs)."""
    out: list[list[tuple[int, str]]] = [[]]
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("#"):
            continue
        if line.strip():
            out[-1].append((number, line.strip()))
        elif out[-1]:
            out.append([])
    return [p for p in out if p]


def _int(where: str, text: str, what: str, lo: int = 0) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise CfgError(f"{where}: {what} must be an integer, got {text.strip()!r}") from None
    if value < lo:
        raise CfgError(f"{where}: {what} must be at least {lo}, got {value}")
    return value


def _region(where: str, line: str) -> Region:
    fields = [f.strip() for f in line.split(",")]
    if len(fields) not in (2, 3) or not fields[0]:
        raise CfgError(f"{where}: a region is 'name, size in bytes[, data file]', got {line!r}")
    return Region(fields[0], _int(where, fields[1], "a region's size", 1))


def _pattern(where: str, line: str, regions: set[str]) -> Pattern:
    fields = [f.strip() for f in line.split(",")]
    if len(fields) not in (4, 5):
        raise CfgError(f"{where}: a pattern is 'region, random (0/1), stride, probability[, ro|wo|rw]', "
                       f"got {line!r}")
    if fields[0] not in regions:
        raise CfgError(f"{where}: no region named {fields[0]!r} (regions: {', '.join(sorted(regions))})")
    random = _int(where, fields[1], "random (0 or 1)")
    mode = fields[4] if len(fields) == 5 else None
    if random not in (0, 1):
        raise CfgError(f"{where}: random must be 0 (sequential) or 1 (random), got {random}")
    if mode is not None and mode not in MODES:
        raise CfgError(f"{where}: the mode must be ro, wo or rw, got {mode!r}")
    return Pattern(fields[0], bool(random), _int(where, fields[2], "the stride", 1),
                   _int(where, fields[3], "the probability"), mode)


def parse(text: str, source: str = "config") -> tuple[list[Region], list[Phase]]:
    paragraphs = _paragraphs(text)
    if len(paragraphs) < 2:
        raise CfgError(f"{source}: a masim config is a paragraph of regions, then one paragraph per phase "
                       f"(separated by blank lines)")
    regions = [_region(f"{source}:{n}", line) for n, line in paragraphs[0]]
    names = {r.name for r in regions}
    if len(names) != len(regions):
        raise CfgError(f"{source}: a region name appears twice")
    phases = []
    for paragraph in paragraphs[1:]:
        (first, name), where = paragraph[0], f"{source}:{paragraph[0][0]}"
        if len(paragraph) < 3:
            raise CfgError(f"{where}: phase {name!r} needs a name, a duration in ms and at least one pattern")
        number, duration = paragraph[1]
        patterns = [_pattern(f"{source}:{n}", line, names) for n, line in paragraph[2:]]
        phases.append(Phase(name, _int(f"{source}:{number}", duration, "a phase's duration (ms)", 1), patterns))
    return regions, phases


def render(regions: list[Region], phases: list[Phase]) -> str:
    """The config as masim writes it: ``parse(render(r, p)) == (r, p)``."""
    lines = ["#regions", *(f"{r.name}, {r.size}" for r in regions), "", "#phases"]
    for phase in phases:
        lines += [phase.name, str(phase.time_ms)]
        lines += [f"{p.region}, {int(p.random)}, {p.stride}, {p.probability}" + (f", {p.mode}" if p.mode else "")
                  for p in phase.patterns]
        lines.append("")
    return "\n".join(lines)

