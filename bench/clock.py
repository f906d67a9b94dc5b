"""Which clock a run's "ns" columns were measured on, and what unit they are therefore in.

Natively (and in a KVM or plain TCG guest) every ``*_ns`` column is nanoseconds of wall or
thread CPU time. Under ``hotbench vm --icount[=SHIFT]`` QEMU runs the guest on its
instruction counter (``-icount shift=N,sleep=off``): every guest clock advances 2**N ns per
guest instruction executed, so the same columns count *instructions* (``ns >> N``), exact and
free of the host's load; an idle vCPU's clock jumps to its next timer, so a region that
sleeps also counts the virtual time skipped. ``hotbench vm`` tells the guest through the
environment (``HOTBENCH_CLOCK=instructions``, ``HOTBENCH_ICOUNT_SHIFT=N``); every manifest's
``environment`` records ``clock`` and ``icount_shift`` and every samples row carries them,
so merged runs stay labelled.

This module is the one place that says what a cost's unit is and converts it: tables, plots,
reports, compare and history ask it, and never put instructions and nanoseconds side by side.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

__all__ = ["WALL", "INSTRUCTIONS", "ENV_CLOCK", "ENV_SHIFT", "Clock", "current", "of_environment",
           "of_manifest", "of_rows", "row_fields", "guest_env", "MixedClocksError", "single"]

WALL = "wall"
INSTRUCTIONS = "instructions"
ENV_CLOCK = "HOTBENCH_CLOCK"
ENV_SHIFT = "HOTBENCH_ICOUNT_SHIFT"


# a time unit standing alone in a label: "ms/GiB", "(µs)", "p99 us", "s per GiB" (not "slowdown")
_TIME_UNIT = re.compile(r"(?<![\w])(s|ms|us|µs|ns)(?![\w])")


class MixedClocksError(ValueError):
    """Costs measured on the instruction clock and on the wall clock were to be compared."""


@dataclass(frozen=True)
class Clock:
    """*kind* is WALL or INSTRUCTIONS; *shift* the icount shift (guest ns per instruction = 2**shift)."""

    kind: str = WALL
    shift: int | None = None

    @property
    def instructions(self) -> bool:
        return self.kind == INSTRUCTIONS

    @property
    def unit(self) -> str:
        """The unit of a converted ``*_ns`` value: "instr" or "ns"."""
        return "instr" if self.instructions else "ns"

    def to_units(self, ns):
        """*ns* (a number, numpy array or pandas column of guest ns) in this clock's unit:
        instructions (ns / 2**shift) or ns unchanged."""
        return ns / (1 << (self.shift or 0)) if self.instructions else ns

    def scaled_unit(self, base: str) -> str:
        """The label of a cost printed in *base* time units ("ms", "us", "s", "ns"), translated
        to this clock: for instructions, ms -> Minstr, us -> kinstr, s -> Ginstr, ns -> instr
        (the factor 10**3k is the same; the value must already be in instructions, to_units)."""
        if not self.instructions:
            return base
        return {"s": "Ginstr", "ms": "Minstr", "us": "kinstr", "µs": "kinstr", "ns": "instr"}[base]

    def relabel(self, text: str) -> str:
        """A header or axis label with its time units translated to this clock ("collect ms/GiB"
        -> "collect Minstr/GiB", "p99 stall µs" -> "p99 stall kinstr"); unchanged on the wall clock."""
        if not self.instructions:
            return text
        return _TIME_UNIT.sub(lambda m: self.scaled_unit(m[1]), text)

    def describe(self) -> str:
        if self.instructions:
            return f"guest instructions (QEMU icount, shift {self.shift or 0})"
        return "wall-clock time"

    def tag(self) -> str:
        """Short label for run labels and headings: "icount" or "" (wall)."""
        return "icount" if self.instructions else ""


def _shift(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def current(environ: dict[str, str] | None = None) -> Clock:
    """The clock this process runs on (``hotbench vm --icount`` sets the variables in its guest)."""
    environ = os.environ if environ is None else environ
    if environ.get(ENV_CLOCK) == INSTRUCTIONS:
        return Clock(INSTRUCTIONS, _shift(environ.get(ENV_SHIFT)) or 0)
    return Clock(WALL, None)


def of_environment(env: dict | None) -> Clock:
    """The clock a manifest's ``environment`` block records (runs older than the field: wall)."""
    env = env or {}
    if env.get("clock") == INSTRUCTIONS:
        return Clock(INSTRUCTIONS, _shift(env.get("icount_shift")) or 0)
    return Clock(WALL, None)


def of_manifest(manifest: dict | None) -> Clock:
    return of_environment((manifest or {}).get("environment"))


def of_rows(frame) -> Clock:
    """The one clock of a samples frame's rows (their ``clock``/``icount_shift`` columns; rows
    without them: wall); MixedClocksError when rows of both clocks were concatenated."""
    if frame is None or "clock" not in frame:
        return Clock()
    shifts = frame["icount_shift"] if "icount_shift" in frame else [None] * len(frame)
    pairs = {(kind, None if shift != shift else shift) for kind, shift in zip(frame["clock"], shifts)}
    return single([of_environment({"clock": kind, "icount_shift": shift}) for kind, shift in sorted(pairs, key=str)],
                  "these rows")


def row_fields(clock: Clock | None = None) -> dict:
    """The columns every samples row carries: ``clock`` and ``icount_shift`` (None on the wall clock)."""
    clock = clock or current()
    return {"clock": clock.kind, "icount_shift": clock.shift}


def guest_env(shift: int | None) -> dict[str, str]:
    """What ``hotbench vm`` puts in its guest's environment: nothing without icount."""
    if shift is None:
        return {}
    return {ENV_CLOCK: INSTRUCTIONS, ENV_SHIFT: str(shift)}


def single(clocks, what: str = "these runs") -> Clock:
    """The one clock shared by *clocks*; MixedClocksError naming both when they differ
    (instruction counts and nanoseconds are never compared)."""
    found = list(dict.fromkeys(clocks))
    if not found:
        return Clock()
    if len({(c.kind, c.shift) for c in found}) > 1:
        raise MixedClocksError(f"{what} mix clocks ({', '.join(c.describe() for c in found)}): instruction counts "
                               "and nanoseconds cannot be compared; compare icount runs with icount runs")
    return found[0]
