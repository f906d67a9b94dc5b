"""tlb-missed-accesses: recall after the first interval, accessed-bit vs protection-based trackers,
with and without a TLB flush after arm."""

from __future__ import annotations

from analysis.answers import Answer, Context, NoData, pct
from analysis.report import Table

ACCESSED_BIT = ["referenced", "idle-page", "damon-vaddr", "damon-paddr"]  # clear A bits, no flush
PROTECTION = ["rwp", "mprotect", "uffd-wp", "soft-dirty"]  # a fault per first access after arm


def _summary(frame):
    frame = frame.assign(later=frame["interval"] > 0,
                         interfere=frame["interfere"].fillna("none") if "interfere" in frame else "none")
    # An aggregate tracker (referenced: a WSS count, no page list) is scored by the share of
    # the true working set it counted: what it misses, it under-counts.
    aggregate = frame["tp"].isna()
    frame = frame.assign(found=frame["tp"].where(~aggregate, frame["wss_est"].clip(upper=frame["wss_true"])),
                         missed=frame["fn"].where(~aggregate, (frame["wss_true"] - frame["wss_est"]).clip(lower=0)))
    g = frame.groupby(["tracker", "interfere", "later"])[["found", "missed"]].sum()
    g["recall"] = g["found"] / (g["found"] + g["missed"])
    g["fn"] = g["missed"]
    wide = g["recall"].unstack("later").rename(columns={False: "first", True: "later"})
    missed = g["fn"].xs(True, level="later").rename("missed_later")
    return wide.join(missed).reset_index()


def _table(summary, name: str) -> Table:
    rows = [[r.tracker, "accessed bit" if r.tracker in ACCESSED_BIT else "protection", r.interfere,
             f"{r.first:.3f}", f"{r.later:.3f}", f"{int(r.missed_later):,}"] for r in summary.itertuples()]
    return Table(name, ["tracker", "kind", "interference", "recall, interval 0", "recall, later",
                                "pages missed later"], rows, [False, False, False, True, True, True], summary)


def _phrase(summary, trackers: list[str], interfere: str) -> str:
    rows = summary[summary["tracker"].isin(trackers) & (summary["interfere"] == interfere)]
    return "; ".join(f"{r.tracker} {r.first:.3f} → {r.later:.3f} ({pct(1 - r.later)} missed)"
                     for r in rows.itertuples())


def answer(ctx: Context) -> Answer:
    df = ctx.lockstep
    frame = df[df["tracker"].isin(ACCESSED_BIT + PROTECTION)] if len(df) else df
    if not len(frame) or not set(frame["tracker"]) & set(ACCESSED_BIT):
        raise NoData("no accessed-bit tracker ran (referenced runs natively; idle-page and DAMON in the 7.3 guests)")
    text = []
    for label in ctx.data.labels:
        mine = frame[frame["label"] == label]
        if not len(mine):
            continue
        summary = _summary(mine)
        sentence = (f"On {ctx.where(label)}, recall in the first interval → after it, without a TLB flush: "
                    f"accessed-bit trackers {_phrase(summary, ACCESSED_BIT, 'none') or 'did not run'}; "
                    f"protection-based {_phrase(summary, PROTECTION, 'none') or 'did not run'}.")
        if (summary["interfere"] == "tlb-flush").any():
            sentence += (f" With the arena's TLB entries flushed after each arm: accessed-bit "
                         f"{_phrase(summary, ACCESSED_BIT, 'tlb-flush') or 'did not run'}.")
        if "emulation" in ctx.where(label):
            sentence += (" Under TCG the translations are QEMU's software TLB, not the CPU's: how many re-touches "
                         "it hides is the emulator's, only a native run measures the hardware's.")
        text.append(sentence)
    blocks = [b for i, lb in enumerate(ctx.data.labels) if (frame["label"] == lb).any()
              for b in (("p", f"{lb}:"), ("table", _table(_summary(frame[frame["label"] == lb]), f"tlb_missed_{i}")))]
    return Answer(" ".join(text) + " (uffd-wp and soft-dirty are scored against writes only; referenced, which "
                  "counts pages without naming them, by the share of the true working set it counted.)", blocks)
