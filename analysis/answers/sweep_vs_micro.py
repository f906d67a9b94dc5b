"""sweep-vs-micro: is each tracker phase's fitted cost per GiB the cost of its kernel primitive?"""

from __future__ import annotations

from analysis._micro_match import ALL
from analysis.answers import Answer, Context, NoData, sizes
from analysis.report import micro_match_table


def _judged(table, memory: bool):
    rows = table[~table["verdict"].str.startswith(("not judged", "not fitted"))]
    return rows[(rows["coefficient"] == "memory") == memory]


def _per(coefficient: str, state: str) -> str:
    """What a slope is per: memory; GiB of pages in state (a run counted as one page); GiB of 2 MiB blocks."""
    if coefficient == "memory":
        return ""
    if coefficient == "blocks":
        return f" per GiB of 2 MiB blocks holding pages {state}"
    if state.startswith("runs "):
        return f" per GiB of {state} (a run counted as a 4 KiB page)"
    return f" per GiB of pages {state}"


def _when(rows) -> str:
    """' (interval 0 only)' for a phase fitted in parts (a zap's first arm), '' for every interval."""
    return f" ({rows})" if isinstance(rows, str) and rows != ALL else ""


def _listing(rows) -> str:
    return "; ".join(f"{r['tracker']} {r['phase']}{_when(r.get('rows'))}{_per(r['coefficient'], r['state'])} "
                     f"{r['fit_ms_per_gib']:.3g} vs {r['micro_ms_per_gib']:.3g} ({r['ratio']:.2f}×)"
                     for r in rows.to_dict("records"))


def _count(rows) -> str:
    inside = int(rows["verdict"].str.startswith("within").sum())
    return f"{inside} of {len(rows)} within 1.3×"


def _paragraph(ctx: Context, label: str, table, frame) -> str:
    memory, state = _judged(table, True), _judged(table, False)
    where = {w for w in table["micro_at"] if w}
    measured = " and ".join(sorted(where)) or "sizes not recorded"
    text = (f"On {ctx.where(label)}, over arenas of {sizes(frame)}, each tracker phase's CPU time fitted as "
            f"c0 + a·memory + b·state against its primitive measured alone (micro {measured}): cost per GiB of "
            f"memory, fitted vs micro ms/GiB: {_listing(memory) or 'none judged'}"
            + (f" — {_count(memory)}." if len(memory) else "."))
    if len(state):
        text += f" Cost per GiB of pages in the state each primitive acts on: {_listing(state)} — {_count(state)}."
    if any(w.startswith("at ") for w in where):
        text += (" Micro measured at one size gives that arena's time per GiB, its fixed cost included, not "
                 "a slope: run the micro step at the sweep's sizes.")
    return text


def answer(ctx: Context) -> Answer:
    data = ctx.data
    if data.micro is None or not len(data.micro):
        raise NoData("no micro-benchmark results (the micro step)")
    if not len(ctx.lockstep) or ctx.lockstep["size_bytes"].nunique() < 2:
        raise NoData("no lockstep sweep over two or more sizes (the sweep step)")
    table = micro_match_table(data)
    if table is None:
        raise NoData("no tracker phase of the sweep maps to a micro case that ran")
    frame = table.frame
    text = [_paragraph(ctx, label, frame[frame["label"] == label], ctx.lockstep[ctx.lockstep["label"] == label])
            for label in dict.fromkeys(frame["label"])]
    return Answer(" ".join(text), [("table", table)])
