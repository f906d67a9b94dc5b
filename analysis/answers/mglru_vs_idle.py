"""mglru-vs-idle: idle page tracking's recall with MGLRU off, on, and on while it ages."""

from __future__ import annotations

from analysis.answers import Answer, Context, NoData, pct
from analysis.report import Table


def _regime(ctx: Context, frame):
    """'MGLRU off' / 'MGLRU on' / 'MGLRU on + aging' per row, from the run's settings and interference."""
    mglru = {r.run_id: ((r.manifest.get("settings") or {}).get("mglru") or {}).get("set", "as found")
             for r in ctx.data.runs}
    interfere = frame["interfere"].fillna("none") if "interfere" in frame else "none"
    base = frame["run_id"].map(lambda run: f"MGLRU {mglru.get(run, 'as found')}")
    return base.where(interfere == "none", base + " + aging")


def _summary(frame):
    first = frame[frame["interval"] == 0].groupby("regime")["recall"].mean().rename("recall_first")
    later = frame[frame["interval"] > 0].groupby("regime")["recall"].mean().rename("recall_later")
    g = frame.groupby("regime")[["tp", "fn", "fp"]].sum()
    g["recall"] = g["tp"] / (g["tp"] + g["fn"])
    g["false_idle"] = g["fn"]
    return g.join(first).join(later).reset_index()


def _table(summary) -> Table:
    rows = [[r.regime, f"{r.recall:.3f}", f"{r.recall_first:.3f}", f"{r.recall_later:.3f}", f"{int(r.false_idle):,}"]
            for r in summary.itertuples()]
    return Table("mglru_vs_idle", ["regime", "recall", "first interval", "later intervals", "accessed pages reported idle"],
                 rows, [False, True, True, True, True], summary)


def answer(ctx: Context) -> Answer:
    df = ctx.lockstep
    frame = df[df["tracker"] == "idle-page"] if len(df) else df
    if not len(frame):
        raise NoData("idle page tracking did not run (it needs the built 7.3 kernel: 'hotbench kernel build --debian 7.3')")
    frame = frame.assign(regime=_regime(ctx, frame))
    summary = _summary(frame).set_index("regime")
    label = frame["label"].iloc[0]
    parts = [f"{regime}: recall {r.recall:.3f} ({pct(1 - r.recall)} of accessed pages reported idle; first "
             f"interval {r.recall_first:.3f}, later {r.recall_later:.3f})" for regime, r in summary.iterrows()]
    text = f"On {ctx.where(label)}, idle page tracking against the exact truth — " + "; ".join(parts) + "."
    if {"MGLRU on", "MGLRU on + aging"} <= set(summary.index):
        drop = summary.loc["MGLRU on", "recall"] - summary.loc["MGLRU on + aging", "recall"]
        text += (f" MGLRU aging between the accesses and the read-back changed recall by {-drop:+.3f} "
                 f"({int(summary.loc['MGLRU on + aging', 'false_idle']) - int(summary.loc['MGLRU on', 'false_idle']):+,} "
                 "false idles).")
    return Answer(text, [("table", _table(summary.reset_index()))])
