"""icount-bridge: native nanoseconds per guest instruction, measured, and the native costs it predicts.

The same cells run natively and in QEMU icount guests. Per tracker phase (arm, collect), the
bridge is the native thread CPU time over the guest's instruction count (thread CPU "ns" under
icount shift 0 — ``bench.clock``), each the median over the intervals after the first. Over the
mechanisms and sizes both sides ran, the bridges form a band; a guest-only mechanism's
instruction count times that band is the native cost it implies — a prediction, labelled with
its band and the mechanisms that calibrated it. Phases of fewer than ``MIN_INSTRUCTIONS`` (an
``arm`` that does nothing after the first interval: the interpreter's own few thousand
instructions) are shown but not calibrated on, nor predicted. DAMON's work is its kdamond's CPU time over a
concurrent run (instructions in a guest), per second of monitoring: the same band applies.
"""

from __future__ import annotations

import math

from analysis.answers import Answer, Context, NoData, num
from analysis.data import format_size
from analysis.report import Table
from bench import clock

NATIVE = ["uffd-wp", "mprotect", "shmem-zap", "shmem-zap-minor", "uffd-minor", "referenced"]
PREDICTED = ["rwp", "idle-page", "mglru", "soft-dirty"]
DAMON = ["damon-vaddr", "damon-paddr"]
PHASES = {"arm": "arm_cpu_ns", "collect": "collect_cpu_ns"}
MIN_INSTRUCTIONS = 1e6
TOO_WIDE = 3.0  # a band whose ends differ by more than this cannot rank costs closer than it
CELL = ["tracker", "backing", "size_bytes", "phase"]


def _clock_of(ctx: Context, label: str) -> clock.Clock:
    run = next(r for r in ctx.data.runs if r.label == label)
    return clock.of_manifest(run.manifest)


def _accel(ctx: Context, label: str) -> str:
    run = next(r for r in ctx.data.runs if r.label == label)
    return str(run.env.get("accel") or "native")


def _kernel(ctx: Context, label: str) -> str:
    run = next(r for r in ctx.data.runs if r.label == label)
    return str(run.env.get("kernel_release", label))


def phase_medians(frame, to_units=None):
    """Per tracker, backing, size and phase: the median over intervals after the first of the
    phase's thread CPU (converted by *to_units*: instructions in a guest)."""
    steady = frame[frame["interval"] > 0] if (frame["interval"] > 0).any() else frame
    long = steady.melt(id_vars=["tracker", "backing", "size_bytes"], value_vars=list(PHASES.values()),
                       var_name="column", value_name="value")
    long["phase"] = long["column"].map({v: k for k, v in PHASES.items()})
    out = long.groupby(CELL)["value"].agg(["median", "size"]).reset_index()
    if to_units is not None:
        out["median"] = to_units(out["median"])
    return out.rename(columns={"median": "value", "size": "n"})


def _labels_by_clock(ctx: Context, frame) -> tuple[str, list[str]]:
    native = [lb for lb in ctx.data.labels if not _clock_of(ctx, lb).instructions and _accel(ctx, lb) == "native"
              and set(NATIVE) & set(frame.loc[frame["label"] == lb, "tracker"])]
    guests = [lb for lb in ctx.data.labels if _clock_of(ctx, lb).instructions and len(frame[frame["label"] == lb])]
    if not native:
        raise NoData("no native run of a mechanism this host has (uffd-wp, mprotect, shmem-zap, ...): run this "
                     "experiment on the host")
    if not guests:
        raise NoData("no run on the instruction clock: run the printed 'hotbench vm --icount' command for the "
                     "guest half, then 'hotbench experiment icount-bridge --from HOST_DIR GUEST_DIR...'")
    return native[0], guests


def bridges(ctx: Context):
    """One row per guest kernel and calibrated cell: native ns, guest instructions, ns per instruction."""
    import pandas as pd

    df = ctx.lockstep
    native_label, guests = _labels_by_clock(ctx, df)
    native = phase_medians(df[(df["label"] == native_label) & df["tracker"].isin(NATIVE)])
    rows = []
    for label in guests:
        guest = phase_medians(df[df["label"] == label], _clock_of(ctx, label).to_units)
        both = native.merge(guest, on=CELL, suffixes=("_native_ns", "_instr"))
        both = both.assign(guest=label, kernel=_kernel(ctx, label), native_kernel=_kernel(ctx, native_label),
                           ns_per_instr=both["value_native_ns"] / both["value_instr"])
        rows.append(both)
        rows.append(_kdamond_bridge(ctx, native_label, label))
    table = pd.concat([r for r in rows if r is not None and len(r)], ignore_index=True) if rows else pd.DataFrame()
    if not len(table):
        raise NoData("the native and guest runs share no cell (tracker, backing, size)")
    # kdamond rows (per second of monitoring) are shown, not calibrated on: native kdamond CPU comes
    # from /proc/PID/stat in clock ticks (10 ms), too coarse for a band.
    table["calibrates"] = (table["value_instr"] >= MIN_INSTRUCTIONS) & (table["phase"] != "kdamond")
    return table, guests


def kdamond_per_second(ctx: Context, label: str):
    """Per DAMON tracker, backing and size: the kdamond's CPU per second of monitoring (median over
    concurrent runs), in this label's units (instructions in a guest); None without such rows."""
    conc = ctx.data.concurrent
    if conc is None or not len(conc) or "kdamond_cpu_ns" not in conc:
        return None
    rows = conc[(conc["label"] == label) & conc["tracker"].isin(DAMON) & conc["kdamond_cpu_ns"].notna()]
    if not len(rows):
        return None
    per_s = _clock_of(ctx, label).to_units(rows["kdamond_cpu_ns"]) / rows["duration_s"]
    out = rows.assign(value=per_s).groupby(["tracker", "backing", "size_bytes"])["value"].median().reset_index()
    return out.assign(phase="kdamond", n=rows.groupby(["tracker", "backing", "size_bytes"]).size().values)


def _kdamond_bridge(ctx: Context, native_label: str, label: str):
    """A DAMON tracker that ran on both sides: native kdamond ns per guest kdamond instruction
    (natively from /proc/PID/stat, in clock ticks: coarse, hence a row of its own)."""
    native, guest = kdamond_per_second(ctx, native_label), kdamond_per_second(ctx, label)
    if native is None or guest is None:
        return None
    both = native.merge(guest, on=CELL, suffixes=("_native_ns", "_instr"))
    return both.assign(guest=label, kernel=_kernel(ctx, label), native_kernel=_kernel(ctx, native_label),
                       ns_per_instr=both["value_native_ns"] / both["value_instr"])


def band(table) -> dict:
    """min / median / max ns per instruction over the calibrating rows, and what they cover."""
    cal = table[table["calibrates"]]
    if not len(cal):
        return {"n": 0}
    values = cal["ns_per_instr"]
    return {"lo": float(values.min()), "median": float(values.median()), "hi": float(values.max()), "n": len(cal),
            "mechanisms": sorted(cal["tracker"].unique()), "sizes": sorted(cal["size_bytes"].unique()),
            "phases": sorted(cal["phase"].unique())}


def predictions(ctx: Context, label: str, b: dict):
    """Guest-only mechanisms' phases: instructions and the native range the band implies (µs)."""
    df = ctx.lockstep
    guest = phase_medians(df[(df["label"] == label) & df["tracker"].isin(PREDICTED)], _clock_of(ctx, label).to_units)
    guest = guest[guest["value"] >= MIN_INSTRUCTIONS]  # a phase that does nothing has no kernel cost to predict
    return guest.assign(lo_us=guest["value"] * b["lo"] / 1e3, mid_us=guest["value"] * b["median"] / 1e3,
                        hi_us=guest["value"] * b["hi"] / 1e3)


def damon_predictions(ctx: Context, label: str, b: dict):
    """kdamond instructions per second of monitoring (concurrent rows) and the native ms/s implied."""
    out = kdamond_per_second(ctx, label)
    if out is None:
        return None
    out = out.rename(columns={"value": "instr_per_s"})
    return out.assign(lo_ms=out["instr_per_s"] * b["lo"] / 1e6, hi_ms=out["instr_per_s"] * b["hi"] / 1e6)


def _note(r) -> str:
    if r.phase == "kdamond":
        return "per second of monitoring; not calibrated on (CPU in clock ticks)"
    return "" if r.calibrates else "below 1 Minstr: not calibrated on"


def _bridge_table(table) -> Table:
    rows = [[r.kernel, r.native_kernel, r.tracker, r.phase, format_size(r.size_bytes), num(r.value_native_ns / 1e3),
             num(r.value_instr / 1e6), f"{r.ns_per_instr:.3f}", _note(r)]
            for r in table.itertuples()]
    headers = ["guest kernel", "native kernel", "tracker", "phase", "size", "native CPU µs", "guest Minstr",
               "ns/instr", "note"]
    return Table("icount_bridge", headers, rows, [False] * 5 + [True] * 3 + [False], table)


def _prediction_table(pred, label_kernel: str) -> Table:
    rows = [[label_kernel, r.tracker, r.phase, format_size(r.size_bytes), num(r.value / 1e6),
             f"{num(r.lo_us)} – {num(r.hi_us)}", num(r.mid_us),
             f"{num(r.lo_us / 1e3 / (r.size_bytes / (1 << 30)))} – {num(r.hi_us / 1e3 / (r.size_bytes / (1 << 30)))}"]
            for r in pred.itertuples()]
    headers = ["guest kernel", "tracker", "phase", "size", "guest Minstr", "predicted native µs", "at median",
               "predicted ms/GiB"]
    return Table("icount_predictions", headers, rows, [False] * 4 + [True] * 4, pred)


def _gap_table(table, guests: list[str]) -> Table | None:
    """Instructions of the same cells on two guest kernels (the version gap)."""
    if len(guests) < 2:
        return None
    wide = table.pivot_table(index=CELL, columns="kernel", values="value_instr").dropna()
    if wide.shape[1] < 2 or not len(wide):
        return None
    first, last = wide.columns[0], wide.columns[-1]
    wide = wide.assign(ratio=wide[last] / wide[first]).reset_index()
    rows = [[r["tracker"], r["phase"], format_size(r["size_bytes"]), num(r[first] / 1e6), num(r[last] / 1e6),
             f"{r['ratio']:.3f}"] for r in wide.to_dict("records")]
    headers = ["tracker", "phase", "size", f"Minstr {first}", f"Minstr {last}", f"{last} / {first}"]
    return Table("icount_kernel_gap", headers, rows, [False] * 3 + [True] * 3, wide)


def _band_text(kernel: str, b: dict) -> str:
    spread = b["hi"] / b["lo"] if b["lo"] > 0 else math.inf
    text = (f"guest {kernel}: {b['lo']:.3f} – {b['hi']:.3f} ns per instruction (median {b['median']:.3f}; "
            f"{b['n']} phases of {', '.join(b['mechanisms'])} at {', '.join(format_size(s) for s in b['sizes'])})")
    if spread > TOO_WIDE:
        text += (f"; the band spans {spread:.1f}×, too wide to rank two mechanisms whose instruction counts differ "
                 f"by less than that")
    return text


def _compare(pred, b: dict) -> str:
    """RWP against idle page tracking at the largest size both ran: does the prediction decide?"""
    cycle = pred.groupby(["tracker", "size_bytes"])["value"].sum().reset_index()
    have = cycle[cycle["tracker"].isin(["rwp", "idle-page"])]
    common = have.groupby("size_bytes")["tracker"].nunique()
    common = common[common == 2]
    if not len(common):
        return ""
    size = common.index.max()
    at = have[have["size_bytes"] == size].set_index("tracker")["value"]
    ratio = at["idle-page"] / at["rwp"]
    spread = b["hi"] / b["lo"]
    verdict = ("more than the band's spread, so idle page tracking is predicted to cost more natively whatever "
               "the per-instruction cost within the band" if ratio > spread else
               "within the band's spread: the prediction cannot rank them")
    return (f" At {format_size(size)} one idle-page cycle (arm + collect) is {num(ratio)}× RWP's instructions, "
            f"{verdict}.")


def answer(ctx: Context) -> Answer:
    table, guests = bridges(ctx)
    native_kernel = table["native_kernel"].iloc[0]
    paragraphs, blocks = [], [("table", _bridge_table(table))]
    for label in guests:
        part = table[table["guest"] == label]
        b = band(part)
        kernel = _kernel(ctx, label)
        if not b["n"]:
            paragraphs.append(f"Guest {kernel}: no phase of at least {MIN_INSTRUCTIONS / 1e6:.0f} M instructions "
                              "to calibrate on.")
            continue
        text = (f"Native {native_kernel} (this host, thread CPU medians over every interval after the first, "
                f"pinned to one CPU, on a machine shared with other work) against {_band_text(kernel, b)}.")
        pred = predictions(ctx, label, b)
        if len(pred):
            text += (" Predicted native costs (instructions × that band; a prediction, calibrated on "
                     f"{', '.join(b['mechanisms'])}): ")
            big = pred[pred["size_bytes"] == pred["size_bytes"].max()]
            text += "; ".join(f"{r.tracker} {r.phase} {num(r.lo_us / 1e3)} – {num(r.hi_us / 1e3)} ms at "
                              f"{format_size(r.size_bytes)}" for r in big.itertuples()) + "."
            text += _compare(pred, b)
            blocks.append(("table", _prediction_table(pred, kernel)))
        damon = damon_predictions(ctx, label, b)
        if damon is not None and len(damon):
            text += " kdamond: " + "; ".join(
                f"{r.tracker} {num(r.instr_per_s / 1e6)} Minstr per second of monitoring → {num(r.lo_ms)} – "
                f"{num(r.hi_ms)} ms of native CPU per second" for r in damon.itertuples()) + "."
        paragraphs.append(text)
    if gap := _gap_table(table, guests):
        paragraphs.append(f"The version gap: the same cells on {len(guests)} guest kernels; the last table gives "
                          "each phase's instructions on both and their ratio.")
        blocks.append(("table", gap))
    return Answer(" ".join(paragraphs), blocks)
