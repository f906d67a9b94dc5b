"""eviction-read-blocking: what blocking reads during eviction (rwp-sync, shmem-minor) costs and
buys against write-protect-only eviction (uffd-wp), from ``hotbench evict`` rows."""

from __future__ import annotations

from analysis.answers import Answer, Context, NoData, num, pct, ratio
from analysis.data import format_size
from analysis.report import Table

BLOCKERS = ["rwp-sync", "shmem-minor"]  # variants that block reads and writes, preferred first
WP = "uffd-wp"
ORDER = ["rwp-sync", "shmem-minor", "uffd-wp", "racy", "none"]
_RUN_KEYS = ["label", "run_id", "variant", "rescue", "repeat"]


def _ok_rows(data) -> object:
    ev = data.eviction
    if ev is None or not len(ev):
        raise NoData("no eviction rows ('hotbench evict') in these results")
    ok = ev[ev["status"].astype(str) == "ok"]
    if not len(ok):
        raise NoData("every eviction variant was skipped here")
    return ok.assign(rescue=ok["rescue"].astype(bool))


def summarize(rows) -> dict:
    """Per variant of *rows* (one label, one rescue setting): the numbers the answer quotes."""
    out = {}
    for variant, g in rows.groupby("variant", sort=False):
        runs = g.drop_duplicates(_RUN_KEYS)
        evicted = float(g["evicted_pages"].sum())
        out[variant] = {
            "runs": len(runs), "rounds": len(g),
            "evicted_per_s": float(g["evicted_per_s"].astype("float64").median()),
            "window_ms": float(g["window_ns"].median()) / 1e6,
            "ioctls": float(g["uffd_ioctls"].mean()), "cold_runs": float(g["runs"].mean()),
            "mib_written": float(g["bytes_written"].mean()) / (1 << 20),
            "refaults": int(g["refaults"].sum()), "evicted": int(evicted),
            "refault_frac": float(g["refaults"].sum()) / evicted if evicted else float("nan"),
            "rescued": float(g["rescued_pages"].mean()), "tracking_faults": float(g["tracking_faults"].mean()),
            "touched": int(g["window_touched_pages"].sum()), "touched_read": int(g["window_read_pages"].sum()),
            "seen": int(g["window_seen_pages"].sum()),
            "p99_ms": float(runs["run_lat_p99_ns"].median()) / 1e6,
            "max_ms": float(runs["run_lat_max_ns"].max()) / 1e6,
            "win_max_ms": float(g["win_lat_max_ns"].astype("float64").max()) / 1e6,
            "lost": int(runs["lost_pages"].sum()), "torn": int(runs["torn_pages"].sum()),
            "misplaced": int((runs["misplaced_pages"] + runs["zeroed_pages"]).sum()),
            "lost_writes": int(runs["lost_writes"].sum()),
        }
    return out


def _pick(ok) -> tuple[str, str]:
    """(label, blocking variant): the first kernel that ran uffd-wp beside rwp-sync, else shmem-minor."""
    for blocker in BLOCKERS:
        for label in dict.fromkeys(ok["label"]):
            have = set(ok.loc[(ok["label"] == label) & ~ok["rescue"], "variant"])
            if {WP, blocker} <= have:
                return label, blocker
    raise NoData("uffd-wp and a read-blocking variant (rwp-sync: Linux 7.3; shmem-minor) never ran on the same "
                 "kernel without --rescue")


def _per_variant(s: dict, u: str = "ms") -> str:
    parts = []
    for v in [v for v in ORDER if v in s] + [v for v in s if v not in ORDER]:
        m = s[v]
        if v == "none":
            parts.append(f"none (decides, evicts nothing) stall p99 {num(m['p99_ms'])} {u}, max {num(m['max_ms'])} {u}")
            continue
        parts.append(f"{v} {num(m['evicted_per_s'])} pages/s in a {num(m['window_ms'])} {u} window, "
                     f"{num(m['ioctls'])} ioctls per round ({num(m['cold_runs'])} cold runs), "
                     f"{num(m['mib_written'])} MiB written per round, {pct(m['refault_frac'])} of evicted pages "
                     f"refaulted, "
                     + (f"{num(m['tracking_faults'])} tracking faults per round, " if m["tracking_faults"] else "")
                     + f"stall p99 {num(m['p99_ms'])} {u} and max {num(m['max_ms'])} {u}, "
                     f"{m['lost']:,} lost and {m['torn']:,} torn pages")
    return "; ".join(parts)


def _integrity(s: dict) -> str:
    safe = [v for v in s if v not in ("racy", "none")]
    bad = [v for v in safe if s[v]["lost"] + s[v]["torn"] + s[v]["misplaced"] + s[v]["lost_writes"]]
    text = ""
    if "racy" in s:
        r = s["racy"]
        text += (f" The integrity checker found {r['lost']:,} lost pages and {r['lost_writes']:,} lost writes under "
                 f"racy (no interception)")
        damaged = r["lost"] + r["torn"] + r["misplaced"] + r["lost_writes"]
        text += ": it detects a missing interception." if damaged else ": racy lost nothing in these runs, so " \
            "they do not show that the checker would catch a loss."
    if bad:
        text += " Data was lost or damaged under " + ", ".join(
            f"{v} ({s[v]['lost']} lost, {s[v]['torn']} torn, {s[v]['misplaced']} misplaced pages, "
            f"{s[v]['lost_writes']} lost writes)" for v in bad) + "."
    else:
        text += f" {', '.join(safe)} kept every page intact."
    return text


def _compare(s: dict, b: str, u: str = "ms") -> str:
    w, k = s[WP], s[b]
    per_run = w["ioctls"] / w["cold_runs"] if w["cold_runs"] else float("nan")
    text = (f" Write-protecting the cold set took uffd-wp {num(w['ioctls'])} ioctls per round ({num(per_run)} per "
            f"cold run) against {num(k['ioctls'])} for {b}: {ratio(w['ioctls'], k['ioctls'])}; its eviction window "
            f"was {num(w['window_ms'])} {u} against {num(k['window_ms'])} {u} "
            f"({ratio(w['window_ms'], k['window_ms'])}).")
    text += (f" Inside the windows the vCPUs touched {w['touched']:,} cold pages under uffd-wp, {w['touched_read']:,} "
             f"of them by reads, and uffd-wp saw {w['seen']:,} as faults; {b} saw {k['seen']:,} of the "
             f"{k['touched']:,} its vCPUs touched.")
    text += (f" Stall tail, {b} against uffd-wp: p99 {num(k['p99_ms'])} vs {num(w['p99_ms'])} {u} "
             f"({ratio(k['p99_ms'], w['p99_ms'])}), max {num(k['max_ms'])} vs {num(w['max_ms'])} {u} "
             f"({ratio(k['max_ms'], w['max_ms'])}); refaults per evicted page {pct(k['refault_frac'])} vs "
             f"{pct(w['refault_frac'])}.")
    return text


def _rescue(ok, label: str, b: str) -> str:
    r = summarize(ok[(ok["label"] == label) & ok["rescue"]])
    if not {WP, b} <= set(r):
        return ""
    w, k = r[WP], r[b]
    return (f" Keeping the pages seen faulting in the window (--rescue), {b} kept {num(k['rescued'])} pages per "
            f"round and {pct(k['refault_frac'])} of its evicted pages refaulted; uffd-wp kept {num(w['rescued'])} "
            f"and {pct(w['refault_frac'])} refaulted.")


def _others(ctx: Context, ok, label: str) -> str:
    text = ""
    for other in dict.fromkeys(ok["label"]):
        if other == label:
            continue
        s = summarize(ok[(ok["label"] == other) & ~ok["rescue"]])
        b = next((v for v in BLOCKERS if v in s), None)
        if b is None or WP not in s:
            continue
        w, k, u = s[WP], s[b], ctx.unit(other)
        text += (f" On {ctx.where(other)}, {b} against uffd-wp: "
                 f"{num(k['ioctls'])} vs {num(w['ioctls'])} ioctls per round, window {num(k['window_ms'])} vs "
                 f"{num(w['window_ms'])} {u}, stall p99 {num(k['p99_ms'])} vs {num(w['p99_ms'])} {u}, max "
                 f"{num(k['max_ms'])} vs {num(w['max_ms'])} {u}, refaults per evicted page {pct(k['refault_frac'])} "
                 f"vs {pct(w['refault_frac'])}; {k['lost'] + k['torn']} vs {w['lost'] + w['torn']} lost or torn pages.")
    return text


def _cell(col: str, value: float, unit: str = "") -> str:
    if value != value:  # NaN: nothing evicted
        return "-"
    if col in ("lost", "torn", "lost_writes"):
        return f"{int(value):,}"
    if col.endswith("_ms"):
        return num(value) + unit
    return pct(value) if col == "refault_frac" else num(value)


def _table(ctx: Context, ok) -> Table:
    cols = ["evicted_per_s", "window_ms", "ioctls", "cold_runs", "mib_written", "refault_frac", "rescued",
            "p99_ms", "max_ms", "lost", "torn", "lost_writes"]
    recs = []
    for (label, rescue), g in ok.groupby(["label", "rescue"], sort=False):
        for variant, m in summarize(g).items():
            recs.append({"label": label, "rescue": rescue, "variant": variant, **{c: m[c] for c in cols}})
    # costs in ms, or in Minstr for icount runs: in the headers when every kernel shares a clock, else per cell
    units = {label: ctx.unit(label) for label in dict.fromkeys(r["label"] for r in recs)}
    one = len(set(units.values())) == 1
    rows = [[r["label"], "rescue" if r["rescue"] else "documented", r["variant"],
             *(_cell(c, r[c], "" if one else f" {units[r['label']]}") for c in cols)] for r in recs]
    import pandas as pd

    u = next(iter(units.values())) if one else "time"
    headers = ["kernel", "step", "variant", "evicted/s", f"window {u}", "ioctls/round", "cold runs", "MiB/round",
               "refaults/evicted", "rescued/round", f"stall p99 {u}", f"stall max {u}", "lost", "torn", "lost writes"]
    return Table("eviction_read_blocking", headers, rows, [False, False, False] + [True] * len(cols),
                 pd.DataFrame(recs))


def answer(ctx: Context) -> Answer:
    ok = _ok_rows(ctx.data)
    label, blocker = _pick(ok)
    mine = ok[(ok["label"] == label) & ~ok["rescue"]]
    s = summarize(mine)
    first = mine.iloc[0]
    runs = s[WP]["runs"]
    text = (f"On {ctx.where(label)}, {format_size(first['size_bytes'])} of shmem guest memory, "
            f"{int(first['threads'])} vCPU threads, {int(first['rounds'])} eviction rounds after "
            f"{num(first['interval_s'] * 1e3)} ms observation windows, {runs} run(s) per variant, documented "
            f"workflow (pages touched in the window are evicted and refault): {_per_variant(s, ctx.unit(label))}.")
    text += (_integrity(s) + _compare(s, blocker, ctx.unit(label)) + _rescue(ok, label, blocker)
             + _others(ctx, ok, label))
    return Answer(text, [("table", _table(ctx, ok))])
