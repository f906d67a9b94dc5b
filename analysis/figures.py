"""The figure registry: every figure hotbench can draw, what data it needs, and how it is saved.

A figure is built only when the results hold what it needs; otherwise it is *skipped* with
a one-line reason (``Skip``), which ``hotbench plot`` prints and the report lists. Builders
return ``(file stem, Figure)`` pairs — most figures are one file, a few are one file per
workload. Unless the arena size is the x-axis, a figure shows the largest size in the data
(named in its caption), and every mark is the mean over repeats with a 95 % confidence
interval where there are at least two repeats; the caption says which (``ci_note``). Legends
mark the trackers that see writes only (``writes_only``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from analysis import catalog, style
from analysis._fig_kit import Skip
from analysis.data import Data

__all__ = ["Skip", "render"]


def _builders() -> dict[str, Callable[[Data], list]]:
    from analysis import _fig_accuracy as acc
    from analysis import _fig_cost as cost
    from analysis import _fig_dist as dist

    return {
        "accuracy-vs-interval": acc.accuracy_vs_interval,
        "precision-recall": acc.precision_recall,
        "wss-timeline": acc.wss_timeline,
        "cost-vs-size": cost.cost_vs_size,
        "pareto": cost.pareto_cpu,
        "pareto-slowdown": cost.pareto_slowdown,
        "heatmap": dist.heatmap,
        "fault-cost-cdf": dist.fault_cost_cdf,
        "stall-cdf": dist.stall_cdf,
        "eviction-timeline": dist.eviction_timeline,
    }


def render(data: Data, out_dir: Path, names: list[str] | None = None, fmt: str = "png"):
    """Build and save the figures *names* (default: all). Returns (paths written, {name: skip reason})."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    skipped: dict[str, str] = {}
    builders = _builders()
    for name in names or catalog.NAMES:
        _remove_stale(out_dir, name, fmt)
        # a cost figure never puts instruction counts and nanoseconds on one axis: one figure per clock
        parts = data.by_clock() if name in catalog.TIMING else [(None, data)]
        for clock, part in parts:
            suffix = "-icount" if len(parts) > 1 and clock.instructions else ""
            try:
                with style.context():
                    figures = builders[name](part)
            except Skip as e:
                skipped[name + suffix] = str(e)
                continue
            for stem, fig in figures:
                if clock is not None:
                    _relabel_axes(fig, clock)
                written.append(style.save(fig, out_dir / (stem + suffix), fmt))
    return written, skipped


def _relabel_axes(fig, clock) -> None:
    """Axis labels in the figure's clock: "(ms)" -> "(Minstr)", "µs" -> "kinstr" (bench/clock.py)."""
    for ax in fig.axes:
        ax.set_xlabel(clock.relabel(ax.get_xlabel()))
        ax.set_ylabel(clock.relabel(ax.get_ylabel()))


def _remove_stale(out_dir: Path, name: str, fmt: str) -> None:
    """Delete this figure's files from an earlier build (it may have had more parts, or none now)."""
    import re

    own = re.compile(rf"{re.escape(name)}(-.+)?" if name == "heatmap" else rf"{re.escape(name)}(-\d+)?(-icount)?")
    for path in out_dir.glob(f"{name}*.{fmt}"):
        if own.fullmatch(path.stem):
            path.unlink()
