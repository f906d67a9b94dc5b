"""``report.md``, ``report.html`` and one CSV per table, from results directories alone.

The Markdown report holds plain aligned text tables in fenced blocks: they paste into a
mailing-list reply unchanged. The HTML report has the same content with every figure
embedded (base64 PNG) and no external resource. Nothing in either depends on where the
results live or when the report was made, so a copied results directory rebuilds a
byte-identical report.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from analysis import catalog, stats
from analysis.data import CONCURRENT, Data, format_size, load
from bench import clock as clock_mod
from bench.clock import Clock
from analysis.tables import Table, three_significant, format_table  # noqa: F401 (Table: the answers take it from here)
from bench import results

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
TABLES_DIR = "tables"
FIGURES_DIR = "figures"
KEYS = ["label", "tracker", "workload_label", "backing", "size_bytes"]


def _fixed(digits: int):
    return lambda v, like=None: f"{v:.{digits}f}"


def _pct(v: float, like=None) -> str:
    return f"{v:.1%}"


def _spct(v: float, like=None) -> str:
    return f"{v:+.1%}"


# metric -> (header, format of the mean, format of the spread)
ACCURACY = {
    "precision": ("precision", _fixed(3), _fixed(3)),
    "recall": ("recall", _fixed(3), _fixed(3)),
    "f1": ("F1", _fixed(3), _fixed(3)),
    "recall_any": ("recall(any)", _fixed(3), _fixed(3)),
    "wss_error": ("WSS err", _spct, _pct),
    "cold_fp_rate": ("cold FP", _pct, _pct),
}
COST = {
    "collect_ms_per_gib": ("collect ms/GiB", three_significant, three_significant),
    "arm_ms_per_gib": ("arm ms/GiB", three_significant, three_significant),
    "tracker_cpu_ms_per_gib": ("CPU ms/GiB", three_significant, three_significant),
}
OVERHEAD = {
    "slowdown": ("slowdown", _fixed(3), _fixed(3)),
    "lat_p50_us": ("p50 µs", three_significant, three_significant),
    "lat_p99_us": ("p99 stall µs", three_significant, three_significant),
    "lat_p999_us": ("p99.9 µs", three_significant, three_significant),
    "tracker_cpu_ms_per_cycle": ("CPU ms/cycle", three_significant, three_significant),
}
TIMING = set(COST) | set(OVERHEAD) - {"slowdown"}
HEADERS = {**{m: h for m, (h, _, _) in {**ACCURACY, **COST, **OVERHEAD}.items()}}


# ---- tables --------------------------------------------------------------------------------------

def _mean_sd(rec: dict, metric: str, fmts) -> str:
    mean, sd, n = rec.get(f"{metric}_mean"), rec.get(f"{metric}_sd"), rec.get(f"{metric}_n", 0)
    if mean is None or not math.isfinite(mean):
        return "-"
    _, fmt, sfmt = fmts
    return fmt(mean) if n < 2 or not math.isfinite(sd) else f"{fmt(mean)} ± {sfmt(sd, like=mean)}"


def _order(frame, data: Data):
    """Rows by label order, tracker (style order), workload, backing, size."""
    from analysis._fig_kit import ordered_trackers

    from analysis._fig_kit import natural_key

    trackers = ordered_trackers(frame) if len(frame) else []
    workloads = sorted(frame["workload_label"].astype(str).unique(), key=natural_key) if len(frame) else []
    return frame.assign(_l=frame["label"].map(data.label_index), _t=frame["tracker"].map(trackers.index),
                        _w=frame["workload_label"].astype(str).map(workloads.index)).sort_values(
        ["_l", "_t", "_w", "backing", "size_bytes"], kind="stable").drop(columns=["_l", "_t", "_w"])


def _metric_table(data: Data, df, name: str, metrics: dict, degraded: set, clock: Clock = Clock()) -> Table | None:
    present = [m for m in metrics if m in df and df[m].notna().any()]
    if not len(df) or not present:
        return None
    units = stats.per_repeat(df, KEYS, present)
    summary = _order(stats.summarise(units, KEYS, present), data)
    counts = units.groupby(KEYS, sort=False, dropna=False).size().rename("n").reset_index()
    summary = summary.merge(counts, on=KEYS, how="left")
    multi = len(data.labels) > 1
    headers = (["kernel"] if multi else []) + ["tracker", "workload", "backing", "size", "n"]
    headers += [clock.relabel(HEADERS[m]) for m in present]
    rows = []
    for rec in summary.to_dict("records"):
        mark = "*" if (rec["label"], rec["tracker"], rec["workload_label"], rec["backing"],
                       rec["size_bytes"]) in degraded else ""
        cells = ([rec["label"]] if multi else []) + [rec["tracker"] + mark, rec["workload_label"], rec["backing"],
                                                     format_size(rec["size_bytes"]), str(rec["n"])]
        rows.append(cells + [_mean_sd(rec, m, metrics[m]) for m in present])
    right = [False] * (len(headers) - len(present) - 2) + [True, True] + [True] * len(present)
    frame = summary.rename(columns={"workload_label": "workload"})
    table = Table(name, headers, rows, right, frame)
    if any("*" in r[1 if multi else 0] for r in rows):
        table.notes.append("* some intervals of this cell were degraded (status column of samples.parquet)")
    return table


def _degraded(df) -> set:
    if not len(df) or "status" not in df:
        return set()
    bad = df[df["status"].astype(str) != "ok"]
    return set(map(tuple, bad[KEYS].drop_duplicates().itertuples(index=False, name=None)))


def _environment(data: Data) -> tuple[str, object]:
    import pandas as pd

    blocks, rows = [], []
    for run in data.runs:
        env, m = run.env, run.manifest
        mem = env.get("mem_total_bytes")
        rec = {
            "run": run.run_id,
            "label": run.label,
            "kernel": " ".join(str(x) for x in (env.get("kernel_release"), env.get("kernel_version")) if x),
            "accel": env.get("accel") or "native",
            "clock": _clock_line(env),
            "host": env.get("hostname"),
            "cpu": f"{env.get('cpu_model')} ({env.get('cpus')} CPUs)" if env.get("cpu_model") else None,
            "memory": format_size(mem) if isinstance(mem, (int, float)) and mem else None,
            "THP": env.get("thp_enabled") + (f" (defrag {env['thp_defrag']})" if env.get("thp_defrag") else "")
            if env.get("thp_enabled") else None,
            "NUMA balancing": env.get("numa_balancing"),
            "governor": env.get("cpufreq_governor"),
            "settings": ", ".join(f"{k}={v}" for k, v in sorted((m.get("settings") or {}).items())) or None,
            "mode": m.get("mode"),
            "status": results.status_line(m),
            "hotbench": " ".join(x for x in (env.get("hotbench_version"), (m.get("git_commit") or "")[:12]) if x),
            "command": _command(m.get("command")),
        }
        rows.append(rec)
        width = max(len(k) for k in rec)
        blocks.append("\n".join(f"{k.ljust(width)}  {v}" for k, v in rec.items() if v not in (None, "")))
    return "\n\n".join(blocks), pd.DataFrame(rows)


def _clock_line(env: dict) -> str | None:
    clk = clock_mod.of_environment(env)
    if not clk.instructions:
        return None
    vcpus = env.get("vcpus")
    return clk.describe() + (f", {vcpus} vCPU{'s' if vcpus != 1 else ''}" if vcpus else "")


def _command(argv) -> str | None:
    """The command that made the run, without its --out (where results went is not part of it)."""
    if not argv:
        return None
    argv = list(argv)
    out, skip = ["hotbench"], False
    for arg in argv[1:]:
        if skip:
            skip = False
        elif arg == "--out":
            skip = True
        elif not arg.startswith("--out="):
            out.append(arg)
    return " ".join(out)


def _unavailable(data: Data) -> Table:
    import pandas as pd

    recs = {}
    for run in data.runs:
        for tracker, reason in sorted((run.manifest.get("skipped") or {}).items()):
            recs[(run.label, tracker, str(reason))] = None
    multi = len(data.labels) > 1
    rows = [([lb] if multi else []) + [t, r] for lb, t, r in recs]
    headers = (["kernel"] if multi else []) + ["mechanism", "reason"]
    frame = pd.DataFrame([{"label": lb, "mechanism": t, "reason": r} for lb, t, r in recs],
                         columns=["label", "mechanism", "reason"])
    return Table("unavailable", headers, rows, [False] * len(headers), frame)


_ERROR_COLUMNS = {"label": "kernel", "run_id": "run", "tracker": "tracker", "workload_spec": "workload",
                  "backing": "backing", "size_bytes": "size", "repeat": "repeat", "interval": "interval",
                  "status": "status"}


def _errors(data: Data) -> Table | None:
    err = data.errors
    if err is None or not len(err):
        return None
    cols = [c for c in _ERROR_COLUMNS if c in err and (c != "label" or len(data.labels) > 1)]
    frame = err[cols].reset_index(drop=True)

    def cell(col, value):
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "-"
        if col == "size_bytes":
            return format_size(value)
        if isinstance(value, float) and value == int(value):
            return str(int(value))
        return str(value)

    rows = [[cell(c, rec.get(c)) for c in cols] for rec in frame.to_dict("records")]
    return Table("errors", [_ERROR_COLUMNS[c] for c in cols], rows, [False] * len(cols), frame)


def _kernel_work(data: Data) -> list[tuple]:
    """Kernel events per phase, per page and per GiB (runs made with --kernel-events)."""
    from analysis import kernel_work

    tables, missing = kernel_work.tables(data), kernel_work.unavailable(data)
    if not tables and not missing:
        return []
    out: list[tuple] = [("h2", "Kernel work per phase"),
                        ("p", "Kernel events counted with perf_event_open on the runner's thread (and the threads it "
                              "started, and a tracker's kernel threads) during each phase: arm, workload (the "
                              "touches, with the faults the tracker's protection costs), collect, and kdamond (the "
                              "whole interval). Lockstep: median count per interval, per page and per GiB of arena; "
                              "events whose median is zero are left out. "
                              "Concurrent: arm and collect per cycle, workload events per page fault. Timings of "
                              "these runs include the counting's own small cost. Kernel profile (run --kernel-profile): "
                              "per profiled phase, the functions with the largest median share of the phase — with the "
                              "function profiler, their time including callees over the phase's measured time and "
                              "their calls per interval and per page; with sampling (kernels without it), the "
                              "cpu-clock samples with the function anywhere in the callchain over the phase's samples "
                              "(share) and with the sampled instruction in it (self), and the samples per interval. "
                              "Either is a share of the phase's instructions in an icount guest. Profiled timings "
                              "include the profiler's own cost, so they are shares, not costs.")]
    out += [("table", t) for t in tables]
    if missing:
        out += [("p", "Not counted on these kernels:"), ("list", missing)]
    return out


def _scaling(data: Data, clock: Clock = Clock()) -> Table | None:
    from analysis._fig_cost import COST_METRICS, cost_fits

    fits = cost_fits(data)
    if not len(fits):
        return None
    fits = _order(fits.assign(size_bytes=0), data).drop(columns=["size_bytes"])
    multi = len(data.labels) > 1
    headers = (["kernel"] if multi else []) + ["tracker", "workload", "backing", "cost", "exponent",
                                               clock.relabel("ms/GiB"), clock.relabel("fixed ms"), "r²", "sizes"]
    rows = [([rec["label"]] if multi else []) + [rec["tracker"], rec["workload_label"], rec["backing"],
                                                 COST_METRICS[rec["metric"]], f"{rec['exponent']:.2f}",
                                                 three_significant(rec["ms_per_gib"]), three_significant(rec["intercept_ms"]),
                                                 f"{rec['r2']:.2f}", str(rec["sizes"])]
            for rec in fits.to_dict("records")]
    right = [False] * (len(headers) - 5) + [True] * 5
    return Table("scaling", headers, rows, right, fits.rename(columns={"workload_label": "workload"}))


def _growth(data: Data, clock: Clock = Clock()) -> Table | None:
    """Does a tracker's cost follow all of memory or the pages touched? (analysis.scaling)"""
    from analysis.scaling import cost_fits as growth_fits

    frames = [f for f in (data.samples, data.concurrent) if f is not None and len(f)]
    fits = [growth_fits(f) for f in frames]
    fits = [f for f in fits if len(f)]
    if not fits:
        return None
    import pandas as pd

    table = pd.concat(fits, ignore_index=True)

    def slope(rec, name):
        value = rec.get(name)
        if value is None or value != value:
            return "-"
        return f"{three_significant(value)} ± {three_significant(rec[name + '_se'])}"

    headers = ["tracker", "backing", "cost", clock.relabel("ms/GiB memory"), clock.relabel("ms/GiB touched"), "r²",
               "n", "grows with"]
    rows = [[rec["tracker"], rec["backing"], rec["cost"], slope(rec, "ms_per_gib_memory"),
             slope(rec, "ms_per_gib_touched"), f"{rec['r2']:.2f}", str(rec["n"]), rec["grows_with"]]
            for rec in table.to_dict("records")]
    return Table("growth", headers, rows, [False] * 3 + [True] * 4 + [False], table)


def micro_match_table(data: Data, clock: Clock = Clock()) -> Table | None:
    """Each tracker phase's fitted slopes against the micro-benchmarks of its primitive (analysis._micro_match)."""
    from analysis._micro_match import ALL, micro_comparison

    if data.micro is None or not len(data.micro) or not len(data.samples):
        return None
    table = micro_comparison(data.samples, data.micro, pages=data.pages)
    if not len(table) or not table["micro_ms_per_gib"].notna().any():
        return None  # no size sweep, or none of the mapped micro cases measured
    multi = len(data.labels) > 1

    def num(value):
        return "-" if value != value else three_significant(value)

    headers = (["kernel"] if multi else []) + ["tracker", "phase", "slope", clock.relabel("fitted ms/GiB"),
                                               clock.relabel("micro ms/GiB"), "micro", "ratio", "n", "verdict"]
    rows = [([rec["label"]] if multi else []) + [
        rec["tracker"], rec["phase"], rec["coefficient"] + (f" ({rec['state']})" if rec.get("state") else "")
        + (f" [{rec['rows']}]" if rec.get("rows") not in (None, ALL) and rec.get("rows") == rec.get("rows") else ""),
        "-" if rec.get("fit_ms_per_gib") != rec.get("fit_ms_per_gib") else
        f"{three_significant(rec['fit_ms_per_gib'])} ± {three_significant(rec['fit_se'], rec['fit_ms_per_gib'])}",
        num(rec.get("micro_ms_per_gib", float("nan"))), rec.get("micro_at") or "-",
        "-" if rec.get("ratio") != rec.get("ratio") else f"{rec['ratio']:.2f}", str(rec["n"]), rec["verdict"]]
        for rec in table.to_dict("records")]
    right = [False] * (len(headers) - 6) + [True, True, False, True, True, False]
    return Table("micro_match", headers, rows, right, table)


def _comparison(data: Data) -> tuple[Table | None, str]:
    """Welch's t-test of every cell and metric, each later label against the first."""
    import pandas as pd

    if len(data.labels) < 2:
        return None, "All runs share one kernel and machine: there is nothing to compare."
    frames = []
    # accuracy across every run; costs only between runs of one clock (instructions are not ns)
    parts = [(data, list(ACCURACY), [])] + [(part, list(COST), list(OVERHEAD)) for _, part in data.by_clock()]
    for part, lockstep, concurrent in parts:
        for df, names in ((part.samples, lockstep), (part.concurrent, concurrent)):
            present = [m for m in names if m in df]
            if len(df) and present and len(part.labels) > 1:
                units = stats.per_repeat(df, KEYS, present)
                frames.append(stats.compare(units, KEYS, present, part.labels))
    frames = [f for f in frames if len(f)]
    if not frames:
        return None, ("No cell ran at least twice on two kernels, so no difference can be tested; "
                      "run with --repeats 3 or more.")
    tests = pd.concat(frames, ignore_index=True)
    # one family: Benjamini–Hochberg over every test of the report
    from scipy.stats import false_discovery_control

    tests["q"] = false_discovery_control(tests["p"].to_numpy("float64"), method="bh")
    tests["significant"] = tests["q"] < stats.ALPHA
    accel = {r.label: (r.env.get("accel") or "native") for r in data.runs}
    tests["note"] = [("timing under tcg: not comparable" if m in TIMING and (accel[a] != "native" or accel[b] != "native")
                      and accel[a] != accel[b] else "") for m, a, b in zip(tests["metric"], tests["ref"], tests["label"])]
    sig = _order(tests[tests["significant"]], data)
    fmts = {**ACCURACY, **COST, **OVERHEAD}
    refs = list(dict.fromkeys(sig["ref"]))
    headers = ["kernel", "tracker", "workload", "backing", "size", "metric",
               f"vs {refs[0]}" if len(refs) == 1 else "reference", "this kernel", "change", "q", "note"]
    rows = []
    for rec in sig.to_dict("records"):
        f = fmts[rec["metric"]]
        ref = {f"{rec['metric']}_mean": rec["ref_mean"], f"{rec['metric']}_sd": rec["ref_sd"],
               f"{rec['metric']}_n": rec["ref_n"]}
        new = {f"{rec['metric']}_mean": rec["mean"], f"{rec['metric']}_sd": rec["sd"], f"{rec['metric']}_n": rec["n"]}
        change = f"{rec['change']:+.1%}" if math.isfinite(rec["change"]) else "-"
        kernel = rec["label"] if len(refs) == 1 else f"{rec['label']} vs {rec['ref']}"
        rows.append([kernel, rec["tracker"], rec["workload_label"], rec["backing"], format_size(rec["size_bytes"]),
                     data.clock_of(rec["label"]).relabel(HEADERS[rec["metric"]]), _mean_sd(ref, rec["metric"], f),
                     _mean_sd(new, rec["metric"], f), change, f"{rec['q']:.2g}", rec["note"]])
    right = [False] * 6 + [True] * 4 + [False]
    frame = _order(tests, data).rename(columns={"workload_label": "workload"})
    summary = (f"{len(tests)} differences tested (cells with at least two repeats on both sides); "
               f"{int(tests['significant'].sum())} significant at q < {stats.ALPHA}.")
    return Table("comparison", headers, rows, right, frame), summary


# ---- assembling ------------------------------------------------------------------------------------

def _clock_heading(clock: Clock) -> str:
    return "in guest instructions (icount)" if clock.instructions else "in wall-clock time"


def _csv_name(name: str, clock: Clock, heading: str) -> str:
    """One CSV per table: a report that separates clocks writes cost-icount.csv beside cost.csv."""
    return f"{name}-icount" if heading and clock.instructions else name


def _cost_intro(clock: Clock) -> str:
    if clock.instructions:
        return ("Per interval, per GiB of arena, in guest instructions (QEMU icount: exact, independent of the "
                "host's load): the instructions the guest executed during collect and during arm (any thread), "
                "and the tracker thread's own for both (CPU). Mean ± standard deviation over repeats.")
    return ("Per interval, per GiB of arena: wall time of collect and of arm, and the tracker thread's CPU "
            "time for both. Mean ± standard deviation over repeats.")


def _cost_sections(data: Data, clock: Clock, heading: str, deg: set) -> list[tuple]:
    """Cost, overhead, scaling, growth and micro-match sections of runs that share one clock."""
    out: list[tuple] = []
    heading = f" — {heading}" if heading else ""
    cost = _metric_table(data, data.samples, _csv_name("cost", clock, heading), COST, deg, clock)
    out.append(("h2", f"Cost (lockstep runs){heading}"))
    out += [("p", _cost_intro(clock)), ("table", cost)] if cost else [("p", "No lockstep rows with timings.")]
    out.append(("h2", f"Overhead (concurrent runs){heading}"))
    conc = data.concurrent if data.concurrent is not None and len(data.concurrent) else None
    over = _metric_table(data, conc, _csv_name("overhead", clock, heading), OVERHEAD, _degraded(conc),
                         clock) if conc is not None else None
    out += [("p", "Workload slowdown against the no-tracker baseline of the same invocation, batch-latency "
                  "percentiles (stalls) and tracker CPU per cycle. Mean ± standard deviation over repeats."),
            ("table", over)] if over else [("p", "No concurrent rows in these results: slowdown and stall "
                                                 "percentiles are not available.")]
    out += _fitted("scaling", _scaling(data, clock), clock, heading, "Cost scaling with arena size",
                   "Fits over every repeat: exponent of a log-log fit (1 = proportional to the arena, "
                   "0 = independent of it), and a linear fit " + clock.relabel("ms = fixed + ms/GiB × GiB."))
    out += _fitted("growth", _growth(data, clock), clock, heading, "Does the cost follow memory or the working set?",
                   "Least-squares fit per tracker over every interval (or concurrent cycle): cost = fixed + "
                   "a × arena GiB + b × touched GiB, ± standard errors; a slope counts when it exceeds twice "
                   "its standard error. A physical-memory tracker follows a, a per-mm hot-set scan follows b.")
    out += _fitted("micro_match", micro_match_table(data, clock), clock, heading, "Sweep against micro-benchmarks",
                   "Per tracker phase, the tracker thread's CPU time fitted over every interval as c0 + "
                   "a × arena GiB + b × state GiB [+ c × blocks GiB], where the state is the pages (or runs of "
                   "pages) the phase's primitive works on (reported: this collect's; reported before: the "
                   "previous collect's, every page at interval 0) and blocks the 2 MiB page-table blocks "
                   "holding them (runs and blocks need 'hotbench run --pages'). The micro-benchmarks of the "
                   "same primitive at 0, 1 and 100 % of its pages in that state predict a, b and c: measured "
                   "at several arena sizes ('hotbench micro --size 256M,16G'), as slopes over them, like the "
                   "sweep's; at one size, as that arena's time per GiB, its fixed cost included. A slope "
                   "is judged when it exceeds twice its standard error or the micro predicts it at 10 % or "
                   "more of the largest cost, and agrees within 1.3x. tables/micro_match.csv names the cases "
                   "and why each matches (analysis/_micro_match.py).")
    return out


def _fitted(name: str, table, clock, heading: str, title: str, text: str) -> list[tuple]:
    """A fit's section (heading, what it fits, the table, its CSV named after the clock), or none."""
    if not table:
        return []
    table.name = _csv_name(name, clock, heading)
    return [("h2", f"{title}{heading}"), ("p", text), ("table", table)]


def _sections(data: Data, figures: list[Path], skipped: dict[str, str]) -> list[tuple]:
    """The report as blocks: ('h1'|'h2'|'p', text), ('pre', text), ('table', Table), ('figure', path)."""
    from bench import __version__

    labels = ", ".join(data.labels)
    out: list[tuple] = [("h1", "hotbench report"),
                        ("p", f"{len(data.runs)} run(s), kernel label(s): {labels}. Built by hotbench {__version__} "
                              "from the results directories alone.")]
    env_text, env_frame = _environment(data)
    out += [("h2", "Environment"), ("pre", env_text), ("csv", "environment", env_frame)]
    unavailable = _unavailable(data)
    out.append(("h2", "Unavailable mechanisms"))
    out.append(("table", unavailable) if unavailable.rows else ("p", "None: every mechanism the runs asked for ran."))
    if errors := _errors(data):
        out += [("h2", "Errors"), ("p", "These intervals ended in an error and are left out of every statistic."),
                ("table", errors)]
    deg = _degraded(data.samples)
    acc = _metric_table(data, data.samples[data.samples["tp"].notna() | data.samples["wss_est"].notna()]
                        if len(data.samples) else data.samples, "accuracy", ACCURACY, deg)
    out.append(("h2", "Accuracy (lockstep runs)"))
    out += [("p", "Mean ± standard deviation over repeats (each repeat first averaged over its intervals); "
                  "n = repeats. Precision, recall and F1 against the accesses the tracker can see (writes for "
                  "write-only trackers), recall(any) against every access; cold FP = fp / (fp + tn)."),
            ("table", acc)] if acc else [("p", "No lockstep rows.")]
    parts = data.by_clock()
    for clk, part in parts:
        out += _cost_sections(part, clk, _clock_heading(clk) if len(parts) > 1 else "", _degraded(part.samples))
    out += _kernel_work(data)
    comparison, summary = _comparison(data)
    out += [("h2", "Differences between kernels"), ("p", summary)]
    if comparison:
        against = data.labels[0] if len(data.by_clock()) == 1 else \
            f"{data.labels[0]} (costs: the first kernel of the same clock)"
        out.append(("p", f"Each kernel against {against}, cell by cell, with Welch's t-test on the repeat "
                         "means; p-values adjusted for the number of tests (Benjamini–Hochberg) and a difference "
                         "shown only when q < 0.05. Every test, significant or not, is in tables/comparison.csv."))
        out.append(("table", comparison) if comparison.rows else ("p", "No significant difference."))
    out.append(("h2", "Figures"))
    out += [("figure", path) for path in figures]
    if skipped:
        out.append(("p", "Not drawn, for lack of data:"))
        out.append(("list", [f"{name}: {why}" for name, why in skipped.items()]))
    out += [("h2", "Method"), ("list", METHOD)]
    return out


METHOD = [
    "Unit of replication: a repeat (one cell run once with its own seed); intervals within a repeat are "
    "averaged first, because they share arena and tracker state.",
    "Spread: sample standard deviation over repeats (n−1); 95 % confidence intervals of the mean (Student's t, "
    "n−1 degrees of freedom) are drawn on the figures and listed in the CSV files (column <metric>_ci95, the "
    "half-width). With one repeat there is no spread: the tables show the mean alone and n = 1.",
    "Significance: Welch's unequal-variance t-test (scipy.stats.ttest_ind, equal_var=False), each kernel against "
    "the first named, with at least two repeats on each side; Benjamini–Hochberg adjustment over every test in "
    "the report; flagged when q < 0.05. Timings from tcg emulation are not comparable with native ones.",
    "Clocks: costs measured under 'hotbench vm --icount' are guest instructions (QEMU's instruction counter; "
    "Minstr = 10^6 instructions), exact and free of the host's load; they are shown in their own sections "
    "and never compared with wall-clock or CPU nanoseconds (bench/clock.py, docs/icount.md).",
    "Cold-page false-positive rate: fp / (fp + tn), the share of pages not accessed in the interval (by the truth "
    "the tracker is scored against) that the tracker reported as accessed.",
    "WSS error: (estimated − true working set) / true working set, per interval.",
    "Figures show the largest arena size in the data unless size is their x-axis.",
]


def _md(blocks: list[tuple], out_dir: Path) -> str:
    lines: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "h1":
            lines += [f"# {block[1]}", ""]
        elif kind == "h2":
            lines += [f"## {block[1]}", ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "pre":
            lines += ["```text", block[1], "```", ""]
        elif kind == "table":
            table = block[1]
            lines += ["```text", table.text(), *table.notes, "```", f"CSV: {TABLES_DIR}/{table.name}.csv", ""]
        elif kind == "figure":
            rel = block[1].relative_to(out_dir).as_posix()
            lines += [f"![{block[1].stem}]({rel})", ""]
        elif kind == "list":
            lines += [f"- {item}" for item in block[1]] + [""]
    return "\n".join(lines).rstrip() + "\n"


_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:14px;margin:.5em 0}th,td{padding:2px 8px;border-bottom:1px solid #ddd}
th{text-align:left;background:#f4f4f4}td.r{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto}img{max-width:100%;border:1px solid #eee;margin:.5em 0}
p.note{color:#555;font-size:13px}"""


def _html(blocks: list[tuple], title: str = "hotbench report") -> str:
    esc = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{esc(title)}</title>",
             f"<style>{_CSS}</style></head><body>"]
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            parts.append(f"<{kind}>{esc(block[1])}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{esc(block[1])}</p>")
        elif kind == "pre":
            parts.append(f"<pre>{esc(block[1])}</pre>")
        elif kind == "table":
            t = block[1]
            head = "".join(f"<th>{esc(h)}</th>" for h in t.headers)
            body = "".join("<tr>" + "".join(f'<td class="r">{esc(c)}</td>' if r else f"<td>{esc(c)}</td>"
                                            for c, r in zip(row, t.right)) + "</tr>" for row in t.rows)
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            parts += [f'<p class="note">{esc(n)}</p>' for n in t.notes]
        elif kind == "figure":
            data = base64.b64encode(block[1].read_bytes()).decode()
            parts.append(f'<figure><img alt="{esc(block[1].stem)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{esc(block[1].stem)}</figcaption></figure>")
        elif kind == "list":
            parts.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in block[1]) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _write_csvs(blocks: list[tuple], out_dir: Path) -> list[Path]:
    tables = out_dir / TABLES_DIR
    tables.mkdir(parents=True, exist_ok=True)
    written = []
    for block in blocks:
        if block[0] == "table":
            name, frame = block[1].name, block[1].frame
        elif block[0] == "csv":
            name, frame = block[1], block[2]
        else:
            continue
        path = tables / f"{name}.csv"
        frame.to_csv(path, index=False, lineterminator="\n")
        written.append(path)
    return written


def build(paths: list[Path], out_dir: Path | None = None, data: Data | None = None) -> Path:
    """Write report.md, report.html, tables/*.csv and figures/*.png into *out_dir*
    (default: ``<first path>/report``); returns *out_dir*."""
    from analysis import figures

    data = data or load(paths)
    out_dir = Path(out_dir) if out_dir else Path(paths[0]) / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    figure_paths, skipped = figures.render(data, out_dir / FIGURES_DIR, list(catalog.NAMES), "png")
    write(_sections(data, figure_paths, skipped), out_dir)
    return out_dir


def write(blocks: list[tuple], out_dir: Path, title: str = "hotbench report") -> None:
    """Render *blocks* ("h1", "h2", "p", "pre", "list", "table" with a ``Table``, "figure" with
    a PNG path under *out_dir*, "csv") as report.md, report.html and tables/*.csv in *out_dir*."""
    _write_csvs(blocks, out_dir)
    (out_dir / REPORT_MD).write_text(_md(blocks, out_dir), encoding="utf-8")
    (out_dir / REPORT_HTML).write_text(_html(blocks, title), encoding="utf-8")
