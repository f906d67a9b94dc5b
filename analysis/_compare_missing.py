"""Why a metric is in one run of a comparison and not the other, said by what actually differs.

A cell metric's key is tracker/workload/backing/size: the first of those dimensions whose
value the other run never ran names the reason ("size 64M: A ran 16M"), with the other
run's skip reason and kernel when a tracker is missing there; a micro-benchmark is missing
because the other run skipped it (its reason), ran no micro-benchmarks, or selected others.
Reasons are counted and printed one line each, most frequent first.
"""

from __future__ import annotations

from collections import Counter

__all__ = ["explain"]

DIMENSIONS = ("tracker", "workload", "backing", "size")


CONCURRENT = ("slowdown", "p99_ratio", "cycle_cpu_ns")  # families of concurrent-mode cells


def _mode(metric: str) -> str:
    return "concurrent" if metric.partition(":")[0] in CONCURRENT else "lockstep"


def _cells(run) -> dict[str, dict[str, set[str]]]:
    """Mode -> dimension -> the values the run's cell metrics of that mode have."""
    out: dict[str, dict[str, set[str]]] = {m: {d: set() for d in DIMENSIONS} for m in ("lockstep", "concurrent")}
    for metric in set(run.metrics["metric"]):
        parts = _cell(metric)
        if parts:
            for dim, value in zip(DIMENSIONS, parts):
                out[_mode(metric)][dim].add(value)
    return out


def _cell(metric: str) -> tuple[str, ...] | None:
    family, _, key = metric.partition(":")
    if family == "micro":
        return None
    parts = key.rsplit("/", 2)  # a workload spec may hold '/' (masim:config=dir/x.cfg); the tracker never does
    if len(parts) != 3:
        return None
    tracker, _, workload = parts[0].partition("/")
    return (tracker, workload, parts[1], parts[2]) if workload else None


def _skip_reason(run, tracker: str) -> str | None:
    skipped = run.manifest.get("skipped") or {}
    for key, reason in skipped.items():
        if key == tracker or key.startswith((f"{tracker}@", f"{tracker} +")):
            return str(reason)
    return None


def _micro_skips(run) -> dict[str, str]:
    phase = ((run.manifest.get("nightly") or {}).get("phases") or {}).get("micro") or {}
    return {str(k): str(v) for k, v in (phase.get("skipped") or {}).items()}


def _values(values: set[str]) -> str:
    shown = sorted(values)
    return ", ".join(shown[:4]) + ("…" if len(shown) > 4 else "") if shown else "none"


def _reason(metric: str, here, other, here_name: str, other_name: str, other_cells: dict) -> str:
    kernel = (other.manifest.get("environment") or {}).get("kernel_release") or "unknown kernel"
    family, _, key = metric.partition(":")
    if family == "micro":
        if not any(m.startswith("micro:") for m in other.metrics["metric"]):
            return f"{other_name} ran no micro-benchmarks"
        why = _micro_skips(other).get(key)
        return (f"micro-benchmark skipped in {other_name} (kernel {kernel}): {why}" if why
                else f"micro-benchmark not in {other_name}'s selection")
    cell = _cell(metric)
    if cell is None:
        return f"{family} metrics only in {here_name}"
    mode = _mode(metric)
    ran = other_cells[mode]
    if not any(ran.values()):
        return f"{other_name} ran no {mode} cells"
    for dim, value in zip(DIMENSIONS, cell):
        if value in ran[dim]:
            continue
        if dim == "tracker":
            why = _skip_reason(other, value)
            return (f"tracker {value} skipped in {other_name} (kernel {kernel}): {why}" if why
                    else f"tracker {value} not run in {other_name} (its {mode} cells ran {_values(ran[dim])})")
        return f"{mode} {dim} {value}: {other_name} ran {_values(ran[dim])}"
    if any(m.partition(":")[2] == key and _mode(m) == mode for m in other.metrics["metric"]):
        return f"{family} measured only in {here_name} (the cell ran in both)"
    return f"{mode} cell {key} ran only in {here_name} (each of its dimensions ran in {other_name}, not together)"


def explain(a, b, only_a: list[str], only_b: list[str]) -> list[str]:
    """One line per reason: "N metric(s) only in B: size 64M: A ran 16M"."""
    lines = []
    for here, other, names, here_name, other_name in ((a, b, only_a, "A", "B"), (b, a, only_b, "B", "A")):
        if not names:
            continue
        other_cells = _cells(other)
        reasons = Counter(_reason(m, here, other, here_name, other_name, other_cells) for m in names)
        lines += [f"{n} metric(s) only in {here_name}: {reason}" for reason, n in reasons.most_common()]
    return lines
