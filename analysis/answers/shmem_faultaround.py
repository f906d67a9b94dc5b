"""shmem-faultaround: pages reported per page read by shmem PTE-zap, with and without fault-around."""

from __future__ import annotations

from analysis.answers import Answer, Context, NoData, pct
from analysis.report import Table

ZAP = "shmem-zap"
EXACT = {"shmem-zap-minor": "shmem-zap-minor (zap + uffd MINOR faults)", "uffd-minor": "uffd-minor (MINOR faults only)"}


def _fault_around(ctx: Context) -> dict:
    """run_id -> the fault-around setting the run used ('kernel default' when it set none)."""
    out = {}
    for run in ctx.data.runs:
        setting = (run.manifest.get("settings") or {}).get("fault-around") or {}
        out[run.run_id] = setting.get("set") or f"kernel default{_was(setting)}"
    return out


def _was(setting: dict) -> str:
    return f" ({setting['was']} bytes)" if setting.get("was") else ""


def _summary(frame):
    g = frame.groupby(["tracker", "fault_around", "workload_label"])[["tp", "fp", "truth_any"]].sum()
    g["per_page_read"] = (g["tp"] + g["fp"]) / g["truth_any"]
    g["precision"] = g["tp"] / (g["tp"] + g["fp"])
    cold = frame.groupby(["tracker", "fault_around", "workload_label"])["cold_fp_rate"].mean()
    return g.assign(cold_fp_rate=cold).reset_index()


def _table(summary, name: str) -> Table:
    rows = [[r.tracker, r.fault_around, r.workload_label, f"{r.per_page_read:.2f}", f"{r.precision:.3f}",
             pct(r.cold_fp_rate, 2)] for r in summary.itertuples()]
    return Table(name, ["tracker", "fault-around", "workload", "reported per page read", "precision",
                                       "cold FP rate"], rows, [False, False, False, True, True, True], summary)


def _sentence(summary, tracker: str, setting: str | None = None) -> str:
    rows = summary[summary["tracker"] == tracker]
    if setting is not None:
        rows = rows[rows["fault_around"] == setting]
    parts = [f"{r.per_page_read:.2f} pages per page read on {r.workload_label} (precision {r.precision:.3f})"
             for r in rows.itertuples()]
    return "; ".join(parts)


def _label_text(ctx: Context, label: str, summary) -> str:
    settings = sorted(summary.loc[summary["tracker"] == ZAP, "fault_around"].unique())
    text = f"On {ctx.where(label)}, reading only, shmem PTE-zap reported " + "; with fault-around ".join(
        f"{_sentence(summary, ZAP, s)} [fault-around {s}]" for s in settings) + "."
    for tracker, what in EXACT.items():
        if tracker in set(summary["tracker"]):
            text += f" {what} reported {_sentence(summary, tracker)}."
    return text


def answer(ctx: Context) -> Answer:
    df = ctx.lockstep
    frame = df[df["tracker"].isin([ZAP, *EXACT]) & (df["backing"] == "shmem")] if len(df) else df
    if not len(frame) or ZAP not in set(frame["tracker"]):
        raise NoData("shmem-zap did not run")
    frame = frame.assign(fault_around=frame["run_id"].map(_fault_around(ctx)))
    texts, blocks = [], []
    for i, label in enumerate(ctx.labels_with(frame, [ZAP])):
        summary = _summary(frame[frame["label"] == label])
        texts.append(_label_text(ctx, label, summary))
        blocks += [("p", f"{label}:"), ("table", _table(summary, f"shmem_faultaround_{i}"))]
    return Answer(" ".join(texts), blocks)
