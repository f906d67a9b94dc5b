"""idle-vs-rwp: cost per cycle vs memory size, and accuracy, of idle page tracking and RWP."""

from __future__ import annotations

from analysis.answers import Answer, Context, NoData, cpu_fits, num, pct, ratio, sizes, slope
from analysis.data import format_size
from analysis.report import Table
from bench.clock import Clock

TRACKERS = ["idle-page", "rwp"]


def _per_size(frame):
    """Median arm + collect wall and CPU time per cycle (ms, or Minstr under icount), the CPU per
    page and per GiB of arena, and accuracy, per tracker and size. Medians: the first cycles of a
    cell pay for cold caches (and, under TCG, translation)."""
    cpu = (frame["arm_cpu_ns"] + frame["collect_cpu_ns"]) / 1e6
    pages = frame["npages"] if "npages" in frame else frame["size_bytes"] // 4096
    g = frame.assign(cpu_ms=cpu, npages=pages).groupby(["tracker", "size_bytes"])
    out = g[["cycle_ms", "cpu_ms"]].median().join(g[["tp", "fp", "fn"]].sum()).join(g["npages"].first())
    out["precision"] = out["tp"] / (out["tp"] + out["fp"])
    out["recall"] = out["tp"] / (out["tp"] + out["fn"])
    out = out.reset_index()
    out["cpu_ns_per_page"] = out["cpu_ms"] * 1e6 / out["npages"]
    out["cpu_ms_per_gib"] = out["cpu_ms"] / (out["size_bytes"] / float(1 << 30))
    return out


def _table(per_size, clock: Clock) -> Table:
    rows = [[r.tracker, format_size(r.size_bytes), num(r.cycle_ms), num(r.cpu_ms), num(r.cpu_ns_per_page),
             num(r.cpu_ms_per_gib), f"{r.precision:.3f}", f"{r.recall:.3f}"] for r in per_size.itertuples()]
    headers = ["tracker", "size", "cycle ms (median)", "CPU ms (median)", "CPU ns/page", "CPU ms/GiB", "precision",
               "recall"]
    return Table("idle_vs_rwp", [clock.relabel(h) for h in headers], rows, [False] + [True] * 7, per_size)


def _growth(frame, unit: str = "ms") -> str:
    """Slope of CPU per cycle over memory alone, after the first interval: the working set is
    held still by design, so a 'per GiB touched' term would only fit noise."""
    steady = frame[frame["interval"] > 0] if (frame["interval"] > 0).any() else frame  # interval 0 arms afresh
    fits = cpu_fits(steady.assign(truth_any=steady["truth_any"].median()))
    parts = []
    for f in fits.to_dict("records"):
        grows = "significant" if f["grows_with"] == "total memory" else "not significant"
        parts.append(f"{f['tracker']} {slope(f, 'ms_per_gib_memory')} CPU {unit} per GiB of memory ({grows})")
    return "; ".join(parts)


def _per_page_by_size(per_size, ns: str) -> str:
    """'idle-page 1,234 at 32 MiB, ...; rwp ...': CPU per page of the arena at every size."""
    parts = []
    for tracker in TRACKERS:
        rows = per_size[per_size["tracker"] == tracker].sort_values("size_bytes")
        parts.append(f"{tracker} " + ", ".join(f"{num(r.cpu_ns_per_page)} at {format_size(r.size_bytes)}"
                                                 for r in rows.itertuples()))
    return f"Per page of the arena, in {ns}: " + "; ".join(parts)


def _rmap_share(ctx: Context, label: str) -> str:
    """The rmap walk's share of idle-page's arm + collect samples per size (after the first
    interval where there are later ones), with the sample counts; or why there is none."""
    from analysis.kernel_work import set_shares

    shares = set_shares(ctx.data.profile, "rmap walk")
    shares = shares[(shares["label"] == label) & (shares["tracker"] == "idle-page")] if shares is not None else None
    if shares is None or not len(shares):
        return "The rmap walk's share of idle-page's cost is not known here: " + _why_no_profile(ctx, label) + "."
    period = _sampling_period(ctx, label)
    every = f"one cpu-clock sample per {period:,} guest instructions" if period else "cpu-clock samples"
    how = (f"a share of its instructions ({every})" if ctx.clock(label).instructions
           else f"a share of its time ({every.replace('guest instructions', 'ns')}: a native time profile)")
    parts = []
    for size, rows in shares.groupby("size_bytes"):
        total = rows[["samples", "phase_samples"]].sum()
        if not total["phase_samples"]:
            continue
        phases = ", ".join(f"{r.phase} {pct(r.samples / r.phase_samples)} of {r.phase_samples:,}"
                           for r in rows.itertuples() if r.phase_samples)
        parts.append(f"{pct(total['samples'] / total['phase_samples'])} of {int(total['phase_samples']):,} samples "
                     f"at {format_size(size)} ({phases})")
    if not parts:
        return "The rmap walk's share of idle-page's cost is not known here: its profile took no samples."
    return (f"Of idle-page's arm + collect, the rmap walk (samples with rmap_walk or its walkers in the kernel "
            f"callchain) took {'; '.join(parts)}: {how}, from a profiled step whose own timings are not used.")


def _sampling_period(ctx: Context, label: str) -> int | None:
    for run in ctx.data.runs:
        profile = run.manifest.get("kernel_profile") or {}
        if run.label == label and profile.get("method") == "sampling":
            return profile.get("period_ns")
    return None


def _why_no_profile(ctx: Context, label: str) -> str:
    for run in ctx.data.runs:
        profile = run.manifest.get("kernel_profile") or {}
        if run.label == label and profile and not profile.get("enabled"):
            return f"no kernel profile could be taken ({profile.get('reason')})"
    skipped = [f"{step['name']}: {step['status']}" for record in ctx.records for step in record.get("steps", [])
               if step.get("name") == "profile" and step.get("status") != "ok"]
    if skipped:
        return "the profile step did not run (" + "; ".join(skipped) + ")"
    return "no run of idle-page was profiled ('hotbench run --kernel-profile arm,collect' profiles one)"


def answer(ctx: Context) -> Answer:
    df = ctx.data.unprofiled().samples  # the profile step's timings include the sampling's work
    labels = ctx.labels_with(df, TRACKERS) if len(df) else []
    if not labels:
        raise NoData("idle page tracking and RWP never ran on the same kernel (both are in the built "
                     "7.3 kernel: 'hotbench kernel build --debian 7.3')")
    label = labels[0]
    frame = df[(df["label"] == label) & df["tracker"].isin(TRACKERS)]
    per_size = _per_size(frame)
    big = per_size[per_size["size_bytes"] == per_size["size_bytes"].max()].set_index("tracker")
    acc = per_size.groupby("tracker")[["tp", "fp", "fn"]].sum()
    clock, ms = ctx.clock(label), ctx.unit(label, "ms")
    what = "of the tracker thread's instructions" if clock.instructions else "of CPU"

    def cost(tracker: str) -> str:
        return (f"{num(big.loc[tracker, 'cpu_ms'])} {ms} {what} ({num(big.loc[tracker, 'cpu_ns_per_page'])} "
                f"{ctx.unit(label, 'ns')} per page of the arena, {num(big.loc[tracker, 'cpu_ms_per_gib'])} {ms}/GiB)")

    text = (f"On {ctx.where(label)}, arenas of {sizes(frame)} with the same working set, one idle-page cycle "
            f"(mark every page idle, read the bitmap back) took {cost('idle-page')} at "
            f"{format_size(per_size['size_bytes'].max())} against {cost('rwp')} for RWP (UFFDIO_RWPROTECT + "
            f"PAGEMAP_SCAN): {ratio(big.loc['idle-page', 'cpu_ms'], big.loc['rwp', 'cpu_ms'])}.")
    text += " " + _per_page_by_size(per_size, ctx.unit(label, "ns")) + "."
    try:
        text += " Cost growth with memory: " + _growth(frame, ms) + "."
    except NoData:
        pass
    text += " " + _rmap_share(ctx, label)
    for tracker in TRACKERS:
        tp, fp, fn = acc.loc[tracker]
        text += f" {tracker}: precision {tp / (tp + fp):.3f}, recall {tp / (tp + fn):.3f} against the exact truth."
    return Answer(text, [("table", _table(per_size, clock))])
