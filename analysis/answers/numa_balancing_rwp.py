"""numa-balancing-rwp: RWP's (and uffd-wp's) accuracy with NUMA balancing off and on."""

from __future__ import annotations

from analysis.answers import Answer, Context, NoData
from analysis.report import Table

STEPS = {"balancing_off": "off", "balancing_on": "on"}


def _balancing(ctx: Context):
    """run_id -> 'on'/'off' from each run's settings."""
    return {r.run_id: ((r.manifest.get("settings") or {}).get("numa-balancing") or {}).get("set", "as found")
            for r in ctx.data.runs}


def _scanned(ctx: Context, kernel: str) -> dict[str, dict]:
    """'on'/'off' -> NUMA balancing's vmstat growth during that step, on *kernel*."""
    out: dict[str, dict] = {}
    for record in ctx.records:
        if record.get("environment", {}).get("kernel_release") != kernel:
            continue
        for step in record.get("steps", []):
            if step["name"] in STEPS:
                mine = out.setdefault(STEPS[step["name"]], {})
                for key, value in (step.get("vmstat") or {}).items():
                    mine[key] = mine.get(key, 0) + value
    return out


def _summary(frame):
    g = frame.groupby(["tracker", "balancing"])[["tp", "fp", "fn"]].sum()
    g["precision"] = g["tp"] / (g["tp"] + g["fp"])
    g["recall"] = g["tp"] / (g["tp"] + g["fn"])
    return g.reset_index()


def _table(summary) -> Table:
    rows = [[r.tracker, r.balancing, f"{r.precision:.4f}", f"{r.recall:.4f}", f"{int(r.fp):,}", f"{int(r.fn):,}"]
            for r in summary.itertuples()]
    return Table("numa_balancing", ["tracker", "NUMA balancing", "precision", "recall", "false positives",
                                    "missed"], rows, [False, False, True, True, True, True], summary)


def _scan_text(scanned: dict, nodes) -> str:
    on = scanned.get("on", {})
    where = f"{nodes} NUMA node(s)" if nodes else "an unknown number of NUMA nodes"
    return (f"With {where}, NUMA balancing on updated {on.get('numa_pte_updates', 0):,} PTEs and took "
            f"{on.get('numa_hint_faults', 0):,} hinting faults during its step "
            f"(off: {scanned.get('off', {}).get('numa_hint_faults', 0):,} hinting faults; /proc/vmstat over each whole "
            f"step, so the process's start before its setting applied counts too).")


def answer(ctx: Context) -> Answer:
    df = ctx.lockstep
    frame = df[df["tracker"].isin(["rwp", "uffd-wp", "soft-dirty"])] if len(df) else df
    if not len(frame) or "rwp" not in set(frame["tracker"]):
        raise NoData("RWP did not run (it needs Linux 7.3: 'hotbench kernel fetch debian:7.3')")
    label = ctx.labels_with(frame, ["rwp"])[0]
    frame = frame[frame["label"] == label]
    frame = frame.assign(balancing=frame["run_id"].map(_balancing(ctx)))
    summary = _summary(frame)
    env = next(r for r in ctx.data.runs if r.label == label).env
    scanned = _scanned(ctx, env.get("kernel_release"))
    text = f"On {ctx.where(label)}: " + _scan_text(scanned, env.get("numa_nodes")) + " "
    parts = [f"{r.tracker} with balancing {r.balancing}: precision {r.precision:.4f}, recall {r.recall:.4f}"
             for r in summary.itertuples()]
    text += "; ".join(parts) + "."
    if not scanned.get("on", {}).get("numa_hint_faults"):
        text += " NUMA balancing took no hinting fault, so these runs cannot show an interaction."
    return Answer(text, [("table", _table(summary))])
