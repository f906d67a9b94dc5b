"""The kernel work behind each tracker phase, from ``kev.<phase>.<event>`` samples columns
(``hotbench run --kernel-events``, ``bench.attribution``), per arena page and per GiB.

Lockstep rows count each phase once per interval: the table gives the median count per
interval over every interval and repeat of a cell (the first interval, which arms a fresh
arena, is one of them), that count per page of the arena and per GiB of it; an event whose
median is zero is left out of the table (the CSV has every count). Concurrent rows
count arm and collect summed over a tracked run's cycles and the workload threads over the
whole run: the table gives arm and collect per cycle, and the workload's events per page
fault it took (``fault_user``), the "cost of one tracking fault" in kernel events.
"""

from __future__ import annotations

import math

from analysis.data import format_size

KEYS = ["label", "tracker", "workload_label", "backing", "size_bytes"]
GIB = 1 << 30


def kev_columns(frame) -> list[str]:
    from bench.attribution import split_column

    return [c for c in frame.columns if split_column(c)] if frame is not None else []


def _long(frame, columns: list[str]):
    """One row per sample row × counted event: keys, phase, event, count (NaN rows dropped:
    an event that was not counted in that run)."""
    from bench.attribution import split_column

    keys = [k for k in KEYS + ["npages", "cycles", "kev_faults"] if k in frame]
    long = frame[keys + columns].melt(id_vars=keys, value_vars=columns, var_name="column", value_name="count")
    long = long.dropna(subset=["count"])
    parts = long["column"].map(split_column)
    return long.assign(phase=parts.str[0], event=parts.str[1]).drop(columns=["column"])


def _sorted(frame):
    """Rows by kernel label, tracker, workload, backing, size, then phase in running order."""
    from bench.attribution import PHASES

    order = {p: i for i, p in enumerate(PHASES)}
    frame = frame.assign(_p=frame["phase"].map(lambda p: order.get(p, len(order))))
    return frame.sort_values(KEYS + ["_p", "event"], kind="stable").drop(columns=["_p"]).reset_index(drop=True)


def lockstep_table(frame):
    """Median count per interval, per page and per GiB of arena, for every counted event whose
    median is not zero."""
    columns = kev_columns(frame)
    if not len(frame) or not columns:
        return None
    long = _long(frame, columns)
    g = long.groupby(KEYS + ["phase", "event"], sort=False, dropna=False)
    out = g.agg(count=("count", "median"), n=("count", "size"), npages=("npages", "first")).reset_index()
    out = out[out["count"] > 0]
    out = out.assign(per_page=out["count"] / out["npages"], per_gib=out["count"] / (out["size_bytes"] / GIB))
    return _sorted(out)


def concurrent_table(frame):
    """Arm and collect events per cycle; workload events per user page fault, per tracked run."""
    columns = kev_columns(frame)
    if frame is None or not len(frame) or not columns:
        return None
    faults = frame.get("kev.workload.fault_user")
    long = _long(frame.assign(kev_faults=faults), columns)
    per_cycle = long["phase"].isin(["arm", "collect"])
    denom = long["cycles"].where(per_cycle, long["kev_faults"])
    long = long.assign(rate=long["count"] / denom.where(denom > 0), per="cycle")
    long.loc[~per_cycle, "per"] = "fault"
    out = long.groupby(KEYS + ["phase", "event", "per"], sort=False, dropna=False).agg(
        rate=("rate", "median"), n=("rate", "size")).reset_index()
    return _sorted(out[out["rate"].fillna(0) > 0])


TOP_FUNCTIONS = 10
_PHASE_NS = {"arm": "arm_ns", "workload": "workload_ns", "collect": "collect_ns"}


def _profile_columns(profile):
    """*profile* with every column either method writes (function profiler: hits, time_ns;
    sampling: self_samples, samples, phase_samples), NaN where the method has none."""
    missing = [c for c in ("hits", "time_ns", "self_samples", "samples", "phase_samples") if c not in profile]
    return profile.assign(**{c: float("nan") for c in missing})


def profile_table(profile, samples):
    """Per cell and profiled phase, the top functions by median share of the phase per interval:
    the function profiler's time (callees included) over the phase's measured time, or the
    samples with the function in their callchain over the phase's samples — of its instructions
    in an icount guest either way; the self share (samples in the function itself); median
    calls (function profiler) or samples per interval, and calls per arena page."""
    if profile is None or not len(profile) or not len(samples):
        return None
    keys = ["run_id", "cell", "interval"]
    phases = samples[keys + KEYS + [c for c in _PHASE_NS.values() if c in samples] + ["npages"]]
    columns = ["phase", "function", "hits", "time_ns", "self_samples", "samples", "phase_samples"]
    rows = _profile_columns(profile)[keys + columns].merge(phases, on=keys, how="inner")
    phase_ns = rows.apply(lambda r: r.get(_PHASE_NS.get(r["phase"], ""), float("nan")), axis=1)
    sampled = rows["phase_samples"].where(rows["phase_samples"] > 0)
    share = (rows["time_ns"] / phase_ns.where(phase_ns > 0)).fillna(rows["samples"] / sampled)
    rows = rows.assign(share=share, self_share=rows["self_samples"] / sampled,
                       hits_per_page=rows["hits"] / rows["npages"])
    group = KEYS + ["phase", "function"]
    out = rows.groupby(group, sort=False, dropna=False).agg(
        share=("share", "median"), self_share=("self_share", "median"), hits=("hits", "median"),
        samples=("samples", "median"), hits_per_page=("hits_per_page", "median"), n=("share", "size")).reset_index()
    out = out.sort_values(KEYS + ["phase", "share"], ascending=[True] * (len(KEYS) + 1) + [False], kind="stable")
    return out.groupby(KEYS + ["phase"], sort=False, dropna=False).head(TOP_FUNCTIONS).reset_index(drop=True)


def set_shares(profile, name: str):
    """Per run label, tracker, size and phase, the samples of the function set *name* (a
    tracker's ``profile_sets``) and the phase's samples, summed over the intervals after the
    first where there are later ones (the first arms a fresh arena); None without such rows."""
    if profile is None or not len(profile) or "kind" not in profile:
        return None
    rows = profile[(profile["kind"] == "set") & (profile["function"] == name)]
    if not len(rows):
        return None
    later = rows[rows["interval"] > 0]
    rows = later if len(later) else rows
    out = rows.groupby(["label", "tracker", "size_bytes", "phase"], sort=True)[["samples", "phase_samples"]].sum()
    return out.astype(int).reset_index()


def _num(v) -> str:
    """Three significant digits; "-" where there is no finite value."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    from analysis.tables import three_significant

    return three_significant(float(v))


def _pct(v) -> str:
    return "-" if v != v else f"{v:.1%}"


def tables(data):
    """The report's kernel-work tables (``analysis.tables.Table``), lockstep then concurrent."""
    from analysis.tables import Table

    out = []
    multi = len(data.labels) > 1
    lock = lockstep_table(data.samples)
    if lock is not None and len(lock):
        headers = (["kernel"] if multi else []) + ["tracker", "workload", "backing", "size", "phase", "event",
                                                   "per interval", "per page", "per GiB", "n"]
        rows = [([r["label"]] if multi else []) + [r["tracker"], r["workload_label"], r["backing"],
                                                   format_size(r["size_bytes"]), r["phase"], r["event"],
                                                   _num(r["count"]), _num(r["per_page"]), _num(r["per_gib"]),
                                                   str(r["n"])] for r in lock.to_dict("records")]
        right = [False] * (len(headers) - 4) + [True] * 4
        out.append(Table("kernel_work", headers, rows, right, lock.rename(columns={"workload_label": "workload"})))
    prof = profile_table(data.profile, data.samples)
    if prof is not None and len(prof):
        headers = (["kernel"] if multi else []) + ["tracker", "workload", "backing", "size", "phase", "function",
                                                   "share", "self", "calls", "samples", "calls/page", "n"]
        rows = [([r["label"]] if multi else []) + [r["tracker"], r["workload_label"], r["backing"],
                                                   format_size(r["size_bytes"]), r["phase"], r["function"],
                                                   _pct(r["share"]), _pct(r["self_share"]), _num(r["hits"]),
                                                   _num(r["samples"]), _num(r["hits_per_page"]), str(r["n"])]
                for r in prof.to_dict("records")]
        right = [False] * (len(headers) - 4) + [True] * 4
        out.append(Table("kernel_profile", headers, rows, right, prof.rename(columns={"workload_label": "workload"})))
    conc = concurrent_table(data.concurrent)
    if conc is not None and len(conc):
        headers = (["kernel"] if multi else []) + ["tracker", "workload", "backing", "size", "phase", "event",
                                                   "count", "per", "n"]
        rows = [([r["label"]] if multi else []) + [r["tracker"], r["workload_label"], r["backing"],
                                                   format_size(r["size_bytes"]), r["phase"], r["event"],
                                                   _num(r["rate"]), r["per"], str(r["n"])]
                for r in conc.to_dict("records")]
        right = [False] * (len(headers) - 3) + [True, False, True]
        out.append(Table("kernel_work_concurrent", headers, rows, right,
                         conc.rename(columns={"workload_label": "workload"})))
    return out


def unavailable(data) -> list[str]:
    """'tracker: event: why' for every event a run wanted to count but could not, and runs that
    could not count or profile at all (their reason), from the manifests."""
    lines = []
    for run in data.runs:
        prefix = f"{run.label}: " if len(data.labels) > 1 else ""
        profile = run.manifest.get("kernel_profile")
        if profile and not profile.get("enabled", False):
            lines.append(f"{prefix}no kernel profile: {profile.get('reason')}")
        record = run.manifest.get("kernel_events")
        if not record:
            continue
        if not record.get("enabled", False):
            lines.append(f"{prefix}no kernel events counted: {record.get('reason')}")
            continue
        for tracker, rec in sorted((record.get("trackers") or {}).items()):
            for event, why in sorted((rec.get("unavailable") or {}).items()):
                lines.append(f"{prefix}{tracker}: {event}: {why}")
    return list(dict.fromkeys(lines))
