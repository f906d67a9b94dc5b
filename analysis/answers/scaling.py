"""scaling: per tracker, does cost follow total memory, the working set, both or neither?"""

from __future__ import annotations

from analysis.answers import Answer, Context, NoData, cpu_fits, sizes, slope
from analysis.data import format_size
from analysis.report import Table

CLAIM = {"rwp": "working set", "idle-page": "total memory"}  # Kiryl's claim, tested below


def _table(fits) -> Table:
    rows = [[f["tracker"], f["backing"], slope(f, "ms_per_gib_memory"), slope(f, "ms_per_gib_touched"),
             f"{f['r2']:.2f}", f["grows_with"]] for f in fits.to_dict("records")]
    return Table("scaling_fits", ["tracker", "backing", "CPU ms per GiB memory", "CPU ms per GiB touched", "R²", "grows with"],
                 rows, [False, False, True, True, True, False], fits)


def _groups(fits) -> str:
    parts = []
    for verdict in sorted(fits["grows_with"].unique()):
        names = ", ".join(fits.loc[fits["grows_with"] == verdict, "tracker"])
        parts.append(f"{verdict}: {names}")
    return "; ".join(parts)


def _claim(fits) -> str:
    found = {f["tracker"]: f["grows_with"] for f in fits.to_dict("records") if f["tracker"] in CLAIM}
    if not found:
        return " Kiryl's claim needs RWP and idle page tracking, which did not run here."
    verdicts = [f"{t} follows {v} (claimed: {CLAIM[t]})" for t, v in found.items()]
    return " Kiryl's claim: " + "; ".join(verdicts) + "."


def answer(ctx: Context) -> Answer:
    df = ctx.lockstep
    if not len(df) or df["size_bytes"].nunique() < 2:
        raise NoData("no lockstep sweep over two or more sizes")
    text, blocks = [], []
    for label in ctx.data.labels:
        frame = df[df["label"] == label]
        if frame["size_bytes"].nunique() < 2:
            continue
        fits = cpu_fits(frame)
        touched = frame["truth_any"] * 4096
        text.append(f"On {ctx.where(label)}, over arenas of {sizes(frame)} and working sets of "
                    f"{format_size(touched.min())} to {format_size(touched.max())} (tracker CPU per cycle fitted as "
                    f"c + a·memory + b·touched; a slope counts at ≥ 2 standard errors), cost grows with "
                    f"{_groups(fits)}." + _claim(fits))
        blocks.append(("table", _table(fits)))
    if not text:
        raise NoData("no kernel ran a sweep over two or more sizes")
    return Answer(" ".join(text), blocks)
