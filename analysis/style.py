"""One look for every hotbench figure: slide-sized fonts, the Okabe–Ito palette, a fixed
colour and marker per tracker, a caption naming kernel and accel, reproducible files.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot, no global state) and
saved through Agg (PNG) or matplotlib's vector writers (SVG, PDF) with the timestamp and
version metadata removed, so the same data always gives the same bytes.
"""

from __future__ import annotations

import contextlib
import functools
import zlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402 (after the backend choice)

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision deficiency.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
GREY = "#7F7F7F"

BASELINE_STYLE = (GREY, ".")
_FALLBACK_COLOURS = [c for name, c in OKABE_ITO.items() if name != "yellow"]
_FALLBACK_MARKERS = ["o", "s", "D", "^", "v", "P", "X", "h", "<", ">", "p", "d"]
BASELINE_NAMES = ("baseline", "none", "")

# Kernels (run labels) are told apart by line style and marker fill, trackers by colour and marker.
LABEL_LINESTYLES = ["-", "--", ":", "-."]

# Difference maps (heatmaps): over-reporting and missing pages, a colour-blind-safe pair.
FP_COLOUR = OKABE_ITO["orange"]
FN_COLOUR = OKABE_ITO["blue"]

RC = {
    "font.size": 16,
    "axes.titlesize": 17,
    "axes.labelsize": 16,
    "xtick.labelsize": 14,
    "ytick.labelsize": 14,
    "legend.fontsize": 13,
    "legend.title_fontsize": 13,
    "figure.titlesize": 19,
    "lines.linewidth": 2.5,
    "lines.markersize": 9,
    "axes.grid": True,
    "grid.alpha": 0.35,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": 120,
    "svg.hashsalt": "hotbench",  # SVG element ids from a fixed salt, not a random one
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
    "path.simplify": True,
}

SLIDE = (13.33, 7.5)  # inches: a 16:9 slide

FORMATS = ("png", "svg", "pdf")
_METADATA = {  # no dates, no tool versions: the same data gives the same bytes
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
    "pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None},
}


@functools.cache
def tracker_styles() -> dict[str, tuple[str, str]]:
    """Tracker -> (colour, marker), in legend order: each tracker's own declaration
    (``Tracker.style``, read through ``bench.trackers.styles``), palette names resolved.

    The built-ins' pairs are unique; the trackers one host runs together (uffd-wp, uffd-minor,
    shmem-zap, shmem-zap-minor, mprotect, damon-paddr, referenced) and the headline comparison
    (rwp, idle-page, uffd-wp, mglru, DAMON) get distinct colours; a colour is shared only by
    trackers with different markers that rarely meet (rwp-rfc never runs with rwp).
    """
    from bench.trackers import styles

    return {name: (OKABE_ITO.get(colour, colour), marker) for name, (colour, marker) in styles().items()}


def tracker_style(name: str) -> tuple[str, str]:
    """(colour, marker) for *name*: fixed for known trackers and names that contain one, a
    stable hash of the name otherwise."""
    known = tracker_styles()
    if name in known:
        return known[name]
    if name is None or str(name).lower() in BASELINE_NAMES:
        return BASELINE_STYLE
    family = max((t for t in known if t in str(name)), key=len, default=None)
    if family:  # a variant of a known tracker ("rwp-sync", "fault/uffd-wp-async") looks like it
        return known[family]
    return hashed_style(name)


def hashed_style(name: str) -> tuple[str, str]:
    """A stable (colour, marker) of the name's own, for a second variant of one tracker in a figure."""
    h = zlib.crc32(str(name).encode())
    return _FALLBACK_COLOURS[h % len(_FALLBACK_COLOURS)], _FALLBACK_MARKERS[(h // 7) % len(_FALLBACK_MARKERS)]


def marker_kw(name: str, hollow: bool = False, own: bool = False) -> dict:
    """Line/scatter keywords for a tracker; yellow gets a dark edge so it shows on white.
    *own*: the name's hashed style instead of its tracker family's."""
    from matplotlib import patheffects

    colour, marker = hashed_style(name) if own else tracker_style(name)
    kw = {"color": colour, "marker": marker, "markeredgecolor": colour,
          "markerfacecolor": "none" if hollow else colour, "markeredgewidth": 1.6}
    if colour == OKABE_ITO["yellow"]:  # pale on white: outline the line and the marks
        kw["markeredgecolor"] = "#333333"
        kw["path_effects"] = [patheffects.Stroke(linewidth=RC["lines.linewidth"] + 1.6, foreground="#333333"),
                              patheffects.Normal()]
    return kw


def label_linestyle(index: int) -> str:
    return LABEL_LINESTYLES[index % len(LABEL_LINESTYLES)]


@contextlib.contextmanager
def context():
    with matplotlib.rc_context(RC):
        yield


def new_figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = SLIDE, **kw):
    """A constrained-layout figure and its axes grid (always 2-D)."""
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def caption(fig, text: str) -> None:
    """The lines under every figure: kernel, accel and what the marks mean.

    Drawn as the figure's ``supxlabel`` so constrained layout reserves its room: it never
    overlaps the panels or the legend. Wrapped to the figure's width: a longer line would
    widen the saved image and squeeze the panels into part of it.
    """
    import textwrap

    fontsize = 12
    chars = int(fig.get_figwidth() * 72 / (fontsize * 0.55))  # DejaVu Sans: ~0.55 em per character
    lines = [wrapped for line in text.splitlines() for wrapped in (textwrap.wrap(line, chars) or [""])]
    fig.supxlabel("\n".join(lines), x=0.0, ha="left", fontsize=fontsize, color="#444444", multialignment="left")


def legend_above(fig, handles, labels, ncol: int | None = None, title: str | None = None) -> None:
    """One legend for the whole figure, above the panels, where it cannot cover data (the
    caption takes the room below)."""
    ncol = ncol or min(len(labels), 5)
    fig.legend(handles, labels, loc="outside upper center", ncol=ncol, frameon=False, title=title)


def save(fig, path: Path, fmt: str) -> Path:
    """Write *fig* as *fmt* with reproducible bytes; returns the path written."""
    path = Path(path).with_suffix("." + fmt)
    with context():
        fig.savefig(path, format=fmt, metadata=_METADATA[fmt], bbox_inches="tight", pad_inches=0.25)
    return path
