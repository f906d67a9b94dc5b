"""What the figure builders (``_fig_accuracy``, ``_fig_cost``, ``_fig_dist``) share: the ``Skip``
they raise when the results lack what a figure needs, captions, legends, tracker and workload
order, panel layout and ticks. The registry that names and draws them is ``analysis.figures``."""

from __future__ import annotations

from analysis import style
from analysis.data import Data, format_size


class Skip(Exception):
    """The results lack what this figure needs; the message says what."""


MAX_COLUMNS = 4


def chunks(items: list, n: int = MAX_COLUMNS) -> list[list]:
    return [items[i:i + n] for i in range(0, len(items), n)] or [[]]


def stem(name: str, index: int) -> str:
    return name if index == 0 else f"{name}-{index + 1}"


def largest_size(df) -> int:
    return int(df["size_bytes"].max())


def env_caption(data: Data, labels: list[str] | None = None, note: str = "", timing: bool = False) -> str:
    """'kernel 6.18.44 · accel native · host vm' per label, then what the marks mean."""
    labels = labels or data.labels
    parts = []
    tcg = icount = False
    for label in labels:
        run = next(r for r in data.runs if r.label == label)
        env = run.env
        accel = env.get("accel") or "native"
        clock = data.clock_of(label)
        tcg |= accel != "native" and not clock.instructions
        icount |= clock.instructions
        accel += f" (icount shift {clock.shift})" if clock.instructions else ""
        parts.append(f"kernel {env.get('kernel_release', '?')} · accel {accel} · host {env.get('hostname', '?')}")
    text = "; ".join(parts)
    if timing and icount:
        text += " — costs in guest instructions (QEMU icount), not time"
    if timing and tcg:
        text += " — times under tcg emulation are not comparable to native"
    return text + (f"\n{note}" if note else "")


def tracker_handles(trackers: list[str], hollow: bool = False):
    from matplotlib.lines import Line2D

    return [Line2D([], [], linestyle="-", **style.marker_kw(t, hollow)) for t in trackers], list(trackers)


def label_handles(data: Data, labels: list[str], numbered: bool = False):
    """Legend entries telling kernels apart (line style; hollow markers after the first)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="#333333", linestyle=style.label_linestyle(data.label_index(lb)),
                      marker="o", markerfacecolor="#333333" if data.label_index(lb) == 0 else "none",
                      markeredgecolor="#333333") for lb in labels]
    names = [f"[{data.label_index(lb) + 1}] {lb}" if numbered else lb for lb in labels]
    return handles, names


def writes_only(data: Data) -> set[str]:
    """Trackers that see writes only (uffd-wp, soft-dirty): every legend says so, since their
    marks sit where a read-and-write tracker's would and mean something else."""
    frames = [f for f in (data.samples, data.concurrent) if f is not None and len(f) and "sees" in f]
    return {str(t) for f in frames for t, sees in zip(f["tracker"], f["sees"]) if sees == "writes"}


def ci_note(summary, metrics: list[str]) -> str:
    """The caption's words for the error bars, as drawn: 95 % CIs, or why there are none."""
    import numpy as np

    columns = [f"{m}_ci95" for m in metrics if f"{m}_ci95" in summary]
    values = summary[columns].to_numpy("float64") if columns else np.array([])
    if not np.isfinite(values).any():
        return "no bars: one repeat per mark (--repeats 2 or more draws 95 % CIs)"
    if not np.nan_to_num(values).any():
        return "no bars: the repeats agree exactly"
    return "bars: 95 % CI of the mean over repeats (none where the repeats agree)"


def legend(fig, data: Data, trackers: list[str], labels: list[str], extra=None, numbered: bool = False) -> None:
    handles, names = tracker_handles(trackers)
    only = writes_only(data)
    names = [f"{name} (sees writes only)" if name in only else name for name in names]
    if len(labels) > 1:
        h2, n2 = label_handles(data, labels, numbered)
        handles, names = handles + h2, names + n2
    if extra:
        handles, names = handles + extra[0], names + extra[1]
    style.legend_above(fig, handles, names, ncol=min(len(names), 6))


def ordered_trackers(df) -> list[str]:
    """Trackers in a fixed order: the registry's legend order, then any others alphabetically."""
    present = set(df["tracker"].astype(str))
    known = [t for t in style.tracker_styles() if t in present]
    return known + sorted(present - set(known))


def natural_key(text: str) -> tuple:
    """Sort key with numbers compared as numbers: 'zipf accesses=3000' before 'zipf accesses=30000'."""
    import re

    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(text)))


def ordered_workloads(df, column: str = "workload_label") -> list[str]:
    return sorted(df[column].astype(str).unique(), key=natural_key)


def size_note(size: int) -> str:
    return f"arena {format_size(size)}"


def value_ticks(ax, values) -> None:
    """x ticks at the values that ran, as plain numbers (log axes otherwise crowd 2x10^1 labels)."""
    from matplotlib.ticker import FixedLocator, NullLocator

    values = sorted(float(v) for v in values)
    ax.xaxis.set_major_locator(FixedLocator(values))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(values, [f"{v:g}" for v in values])


def nested_size(rank: int, start: float = 18.0) -> float:
    """Marker size by tracker rank: earlier trackers larger, so marks at one point stay visible."""
    return max(start - 2.5 * rank, 7.0)


def plain_log_ticks(axis) -> None:
    """Ticks of a log axis as plain numbers (0.01, 1, 100), not 10^k; over less than two
    decades at 1-2-5 steps too, and never labels on the minor ticks (matplotlib's own, on a
    short axis, run into each other)."""
    import math

    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    low, high = sorted(axis.get_view_interval())
    short = low > 0 and math.log10(high / low) < 2
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if short else (1.0,)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())
