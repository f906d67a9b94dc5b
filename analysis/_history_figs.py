"""Figures of ``hotbench history``: one per metric family, one small panel per metric.

Each panel draws every series (machine · suite version · variant) over time, one point per
nightly run (the median of its values); a dotted grey line marks where the series' kernel
release changes (labelled with the new release), a dashed vermillion line a reported step
change (labelled with its size), and a dashed line of the series' colour the fitted levels.
Colours: the tracker's colour (``analysis.style``) when the store holds one series, the
Okabe-Ito palette by series otherwise. Files are written with ``style.save``: same data,
same bytes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from analysis import _history_steps, style
from analysis.compare import FAMILIES
from analysis._history_steps import transform
from bench import clock as clock_mod
from bench.clock import Clock

__all__ = ["write_all", "PANELS_PER_FIGURE"]

PANELS_PER_FIGURE = 20
_COLS = 4
_RC = {**style.RC, "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "xtick.labelsize": 8,
       "ytick.labelsize": 8, "legend.fontsize": 9, "figure.titlesize": 12, "lines.linewidth": 1.5,
       "lines.markersize": 4}
_SERIES_COLOURS = [c for name, c in style.OKABE_ITO.items() if name not in ("yellow", "vermillion")]
_SERIES_MARKERS = ["o", "s", "D", "^", "v", "P", "X"]
_TITLES = {f.name: f.what for f in FAMILIES.values()}


def _unit(family: str, values: np.ndarray) -> tuple[float, str]:
    """(multiplier, axis label) for a panel."""
    unit = FAMILIES[family].unit
    if unit in ("s", "ns"):
        seconds = np.nanmedian(values) * (1e-9 if unit == "ns" else 1.0)
        for name, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
            if seconds >= scale or name == "ns":
                return (1e-9 if unit == "ns" else 1.0) / scale, name
    if family in ("slowdown", "wss_error"):
        return 100.0, "%"
    return 1.0, ""


def _tracker(metric: str) -> str:
    return metric.split(":", 1)[1].split("/", 1)[0] if not metric.startswith("micro:") else metric.split(":", 1)[1]


def _style(series_index: int, metric: str, single: bool) -> dict:
    if single:
        kw = style.marker_kw(_tracker(metric))
        kw.pop("path_effects", None)
        return kw
    colour = _SERIES_COLOURS[series_index % len(_SERIES_COLOURS)]
    return {"color": colour, "marker": _SERIES_MARKERS[series_index % len(_SERIES_MARKERS)],
            "markeredgecolor": colour, "markerfacecolor": colour}


def _between(when, i: int):
    """The moment halfway between run i-1 and run i: where a change between them is drawn."""
    return when.iloc[i - 1] + (when.iloc[i] - when.iloc[i - 1]) / 2


def _panel(ax, metric: str, family: str, group, series_order: list[str], steps: list[dict],
           clock: Clock = Clock()) -> None:
    import matplotlib.dates as mdates

    scale, unit = _unit(family, group["median"].to_numpy("float64"))
    unit = clock.relabel(unit)  # ms of an icount run are Minstr
    single = len(series_order) == 1
    marked: set = set()
    for index, series in enumerate(series_order):
        rows = group[group["series"] == series]
        if not len(rows):
            continue
        kw = _style(index, metric, single)
        x, y = rows["when"].to_numpy(), rows["median"].to_numpy("float64") * scale
        ax.plot(x, y, linestyle="-", label=series, **kw)
        kernels = rows["kernel"].tolist()
        for i in range(1, len(kernels)):
            between = _between(rows["when"], i)
            if kernels[i] != kernels[i - 1] and (between, kernels[i]) not in marked:
                marked.add((between, kernels[i]))
                ax.axvline(between, color=style.GREY, linestyle=":", linewidth=1)
                ax.annotate(str(kernels[i]), (between, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                            fontsize=6, color="#555555", ha="right", va="top")
        mine = [s for s in steps if s["series"] == series and s["metric"] == metric]
        if mine:
            forward, inverse = transform(family, rows["median"].to_numpy("float64"), rows["min"].to_numpy("float64"))
            fitted = inverse(_history_steps.levels(forward(rows["median"].to_numpy("float64")),
                                                   [s["index"] for s in mine]))
            ax.plot(x, fitted * scale, linestyle="--", drawstyle="steps-mid", color=kw["color"], linewidth=1,
                    marker=None)
        for s in mine:
            when = _between(rows["when"], s["index"])
            ax.axvline(when, color=style.OKABE_ITO["vermillion"], linestyle="--", linewidth=1.2)
            text = f"{s['change']:+.0%}" if FAMILIES[family].kind != "absolute" else f"{s['change']:+.3f}"
            ax.annotate(text, (when, 0.02), xycoords=("data", "axes fraction"), fontsize=8, ha="left",
                        color=style.OKABE_ITO["vermillion"], fontweight="bold")
    ax.set_title(metric.split(":", 1)[1], loc="left")
    if unit:
        ax.set_ylabel(unit)
    locator = mdates.AutoDateLocator(minticks=2, maxticks=5)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    low, high = ax.get_ylim()
    if FAMILIES[family].kind == "relative" and low > 0:
        ax.set_ylim(0, high * 1.05)


def write_all(history, steps: list[dict], directory: Path) -> list[dict]:
    """One PNG per family (split every PANELS_PER_FIGURE panels); [{family, title, path}]."""
    import matplotlib

    written = []
    with matplotlib.rc_context(_RC):
        for clock, points in _by_clock(history.points):
            written += _write_clock(points, steps, directory, clock)
    return written


def _by_clock(points) -> list[tuple[Clock, object]]:
    """The points split by the clock their runs counted in: wall-clock series and instruction-count
    series never share an axis."""
    if "clock" not in points or not len(points):
        return [(Clock(), points)]
    groups = points.groupby([points["clock"], points["icount_shift"].fillna(-1)], sort=True)
    return [(clock_mod.of_environment({"clock": kind, "icount_shift": None if shift < 0 else int(shift)}), group)
            for (kind, shift), group in sorted(groups, key=lambda kv: kv[0][0] != clock_mod.WALL)]


def _write_clock(points, steps: list[dict], directory: Path, clock: Clock) -> list[dict]:
    series_order = sorted(points["series"].unique())
    suffix = "-icount" if clock.instructions else ""
    written = []
    for family in FAMILIES:
        metrics = sorted(points.loc[points["family"] == family, "metric"].unique())
        chunks = [metrics[i:i + PANELS_PER_FIGURE] for i in range(0, len(metrics), PANELS_PER_FIGURE)]
        for number, chunk in enumerate(chunks, 1):
            cols = min(_COLS, len(chunk))
            rows = math.ceil(len(chunk) / cols)
            fig, axes = style.new_figure(rows, cols, size=(4.2 * cols, 2.9 * rows + 1.3))
            for ax, metric in zip(axes.flat, chunk):
                _panel(ax, metric, family, points[points["metric"] == metric], series_order, steps, clock)
            for ax in list(axes.flat)[len(chunk):]:
                ax.set_visible(False)
            title = f"{family}: {_TITLES[family]}" + (f" ({number}/{len(chunks)})" if len(chunks) > 1 else "")
            title += " — guest instructions (icount)" if clock.instructions else ""
            if len(series_order) > 1:  # one series: its colours are the trackers', its name goes in the title
                handles, labels = axes.flat[0].get_legend_handles_labels()
                fig.legend(handles, labels, loc="outside upper center", ncol=min(len(labels), 3), frameon=False)
            else:
                title += f" — {series_order[0]}"
            fig.suptitle(title, x=0.01, ha="left")
            style.caption(fig, "one point per nightly run (median of its values); dotted grey: the kernel "
                               "changes; dashed vermillion: a step change beyond the regression threshold")
            stem = (family if len(chunks) == 1 else f"{family}-{number}") + suffix
            path = style.save(fig, directory / stem, "png")
            written.append({"family": family, "title": title, "path": path})
    return written
