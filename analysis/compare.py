"""Compare two runs metric by metric: LKP-style ``%change ± %stddev`` with significance, and a
verdict against per-metric thresholds (``hotbench compare``).

Metrics (a full name is ``family:key``; docs/nightly.md lists them):

  micro:<benchmark>                    pyperf values of 'hotbench micro' (s per GiB or per page)
  harness:loop/<pattern>,              'hotbench harness' in a nightly, one value per A/B pair: the
  harness:<arm|collect>/<tracker>,     workload loop's time over the bare loop's, a tracker phase
  harness:fault/<tracker>/<placement>  over its raw primitive, in-run fault cost over micro's
  arm_ns:<cell>, collect_ns:<cell>     lockstep wall time of each arm / collect, one value per
  arm_cpu_ns:<cell>,                   interval, and the tracker thread's CPU time of each (blind
  collect_cpu_ns:<cell>                to the time other processes take the CPU away); interval
                                       0 (the first arm after start, a different path) is left
                                       out when a cell has more
  precision:<cell>, recall:<cell>,     lockstep accuracy, one value per repeat (the mean of its
  wss_error:<cell>                     intervals: intervals of one repeat are not independent)
  slowdown:<cell>, p99_ratio:<cell>,   concurrent mode, one value per A/B pair: slowdown against
  cycle_cpu_ns:<cell>                  the interleaved baseline; p99 batch latency with the
                                       tracker over the baseline's of the same pair (the absolute
                                       p99 on a shared machine is the scheduler's, 0.8-10 ms from
                                       run to run, tracker or not); tracker CPU per cycle
  where <cell> = tracker/workload/backing/size, e.g. uffd-wp/hotcold/anon/16M

The error model. The table shows, per run, the mean ± the standard deviation as a
percentage of the mean and the change of the means (LKP's layout); the verdict is one of
regression, improvement, changed, inconclusive, unchanged (``judge``), from three numbers:

* the *effect*, measured robustly (``effect``): for the timing families
  (micro, arm_ns, collect_ns, arm_cpu_ns, collect_cpu_ns, p99_ratio, cycle_cpu_ns; relative)
  and slowdown (judged as the cost factor 1 + s: from +5 % to +30 % is +24 %) the smaller of
  the change of the medians and of the best (minimum) values, nothing when they disagree —
  interference only ever adds time, so the best value is the one load spoils least; for the
  accuracy families (precision, recall, wss_error; absolute) the change of the means over
  repeats. Equal values are no effect: precision 1.000 against 1.000 is "unchanged".
* the *noise floor*: the largest effect two runs of the same build showed on this clock
  (learnt from A/A runs, ``analysis.floors``; stored with the suite, ``bench.nightly.floors``).
  An effect within it is "unchanged" whatever the test says: on a shared machine the load
  moves whole runs, and a rank test on 14 values calls such a shift significant.
* *significance*: the two-sided Mann-Whitney U test on the timing values
  (``scipy.stats.mannwhitneyu``; it keeps its power under outliers 3-60x their neighbours,
  where Welch's or pyperf's t-test call even an exact 2x copy "not significant"), Welch's
  t-test on the accuracy repeats (``analysis.stats.welch``); p < 0.05. Samples too few for
  the test to reach p < 0.05 at all (one repeat; a rank test needs 2 / C(na + nb, na) < 0.05)
  make an effect beyond the floor "inconclusive", never "changed"; so does a clock with no
  floors learnt.

A supported effect beyond the floor is a *regression* (or an improvement) when it is also
beyond the metric's regression threshold, else "changed". No multiple-comparison correction
is applied: with 4 A/B pairs the smallest possible rank-test p is 0.029, which any correction
over a hundred metrics would make unreachable; the floor is what keeps noise from being
called a change.

Thresholds say what size of regression matters; floors say what size of change this machine
can see: the gate is the larger of the two. Thresholds come from the run's own suite
(embedded in its manifest; B's, else A's, else the packaged default suite, or the packaged
icount suite for two instruction-clock runs), overridden by ``--threshold KEY=VALUE``; a key
is a family, a glob over full names or one full name, the most specific winning (``threshold_for``). A metric none of these covers (a family newer than
the runs) takes the packaged default suite's threshold. Floors: ``--floors FILE``, else the
ones B's suite embedded, else A's, else the packaged default suite's, for B's clock.
Metrics only one run has are explained by what differs (``analysis._compare_missing``).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench import results
from bench.errors import HotbenchError
from bench.nightly import floors as floors_mod
from bench.nightly.floors import Floors, threshold_for

__all__ = ["Family", "FAMILIES", "ALPHA", "VERDICTS", "Run", "Comparison", "load_run", "run_metrics",
           "threshold_for", "summarise", "change", "bad_change", "effect", "judge", "compare", "text", "as_json"]

ALPHA = 0.05
FORMAT = "hotbench-compare"
FORMAT_VERSION = 2  # 2: verdicts unchanged/inconclusive, floors, why metrics are missing


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # "relative" (thresholds are fractions of A), "factor" (fractions of 1 + A: a slowdown s
    # is the cost factor 1 + s) or "absolute" (thresholds in the metric's unit)
    worse: str  # "up", "down" or "abs_up" (|value| up)
    test: str  # "rank" (Mann-Whitney U + median and best) or "welch" (means)
    unit: str  # "s", "ns", "ratio" or "fraction"
    what: str


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("micro", "relative", "up", "rank", "s", "pyperf micro-benchmark (s per GiB or per 4 KiB page)"),
    Family("arm_ns", "relative", "up", "rank", "ns", "lockstep: wall time of one arm"),
    Family("collect_ns", "relative", "up", "rank", "ns", "lockstep: wall time of one collect"),
    Family("arm_cpu_ns", "relative", "up", "rank", "ns", "lockstep: thread CPU time of one arm"),
    Family("collect_cpu_ns", "relative", "up", "rank", "ns", "lockstep: thread CPU time of one collect"),
    Family("p99_ratio", "relative", "up", "rank", "ratio", "concurrent: p99 batch latency over the interleaved "
           "baseline's"),
    Family("cycle_cpu_ns", "relative", "up", "rank", "ns", "concurrent: tracker CPU time per cycle"),
    Family("slowdown", "factor", "up", "rank", "fraction", "concurrent: workload slowdown against no tracker"),
    Family("precision", "absolute", "down", "welch", "fraction", "lockstep: precision per repeat"),
    Family("recall", "absolute", "down", "welch", "fraction", "lockstep: recall per repeat"),
    Family("wss_error", "absolute", "abs_up", "welch", "fraction", "lockstep: relative WSS error per repeat"),
    Family("harness", "relative", "up", "rank", "ratio", "harness: workload loop time over the bare loop's, a "
           "tracker's arm/collect over its raw primitive, in-run fault cost over the micro round trip"),
)}
_CONCURRENT = {"slowdown": "slowdown", "p99_ratio": "p99_ratio", "cycle_cpu_ns": "tracker_cpu_ns_per_cycle"}


# ---------------------------------------------------------------- reading a run

@dataclass
class Run:
    path: Path
    manifest: dict
    metrics: object  # pandas.DataFrame: metric, family, value

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id") or self.path.name)

    @property
    def clock(self):
        """What the run's costs count (``bench.clock.Clock``): wall time, or guest instructions."""
        from bench import clock

        return clock.of_manifest(self.manifest)

    def info(self) -> dict:
        env = self.manifest.get("environment") or {}
        suite = (self.manifest.get("nightly") or {}).get("suite") or {}
        from bench.nightly.store import machine_label

        return {"run_id": self.run_id, "path": str(self.path), "kernel_release": env.get("kernel_release"),
                "machine": machine_label(env, (self.manifest.get("nightly") or {}).get("machine")),
                "accel": env.get("accel") or "native", "clock": _clock_label(self.clock),
                "date": (self.manifest.get("nightly") or {}).get("started") or self.run_id[:16],
                "suite": suite.get("name"), "suite_version": suite.get("version"), "variant": suite.get("variant"),
                "status": self.manifest.get("status"), "git_commit": self.manifest.get("git_commit")}


def _clock_label(clock) -> str:
    return clock.kind if not clock.instructions else f"{clock.kind} (icount shift {clock.shift or 0})"


def _cell_key(frame):
    from bench.arena import size_token

    return (frame["tracker"].astype(str) + "/" + frame["workload_spec"].astype(str) + "/"
            + frame["backing"].astype(str) + "/" + frame["size_bytes"].map(lambda s: size_token(int(s))))


def _micro_rows(run_dir: Path) -> list[dict]:
    import pyperf

    rows = []
    for path in sorted(run_dir.glob("micro*.json")):
        try:
            suite = pyperf.BenchmarkSuite.load(str(path))
        except Exception as e:  # pyperf raises many types on a torn or foreign file
            raise HotbenchError(f"cannot read pyperf file {path}: {(str(e).splitlines() or [type(e).__name__])[0]}") \
                from None
        for bench in suite.get_benchmarks():
            rows += [{"metric": f"micro:{bench.get_name()}", "family": "micro", "value": float(v)}
                     for v in bench.get_values()]
    return rows


def _harness_rows(run_dir: Path) -> list[dict]:
    import json

    path = run_dir / "harness.json"  # bench.nightly.run.HARNESS_FILE
    return json.loads(path.read_text()) if path.is_file() else []


def run_metrics(run_dir: Path, manifest: dict | None = None):
    """Every metric sample of one results directory, long form (metric, family, value)."""
    import pandas as pd

    run_dir = Path(run_dir)
    manifest = manifest or results.load_manifest(run_dir)
    rows = _micro_rows(run_dir) + _harness_rows(run_dir)
    frames = [pd.DataFrame(rows, columns=["metric", "family", "value"])]
    samples = pd.read_parquet(run_dir / results.SAMPLES) if (run_dir / results.SAMPLES).is_file() else pd.DataFrame()
    if len(samples):
        if "mode" not in samples:
            samples = samples.assign(mode=manifest.get("mode") or "lockstep")
        if "status" in samples:
            samples = samples[~samples["status"].astype(str).str.startswith("error")]
        concurrent = samples[samples["mode"].astype(str) == "concurrent"]
        lockstep = samples[samples["mode"].astype(str) != "concurrent"]
        frames += [_lockstep(lockstep), _concurrent(concurrent)]
    out = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) \
        else frames[0]
    out = out[np.isfinite(out["value"].astype("float64"))]
    return out.reset_index(drop=True)


def _long(frame, key, columns: dict[str, str]):
    import pandas as pd

    parts = []
    for family, column in columns.items():
        if column not in frame:
            continue
        values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        parts.append(pd.DataFrame({"metric": family + ":" + key, "family": family, "value": values.to_numpy()}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["metric", "family", "value"])


def _lockstep(frame):
    import pandas as pd

    from analysis.metrics import add_rates

    if not len(frame) or "collect_ns" not in frame:
        return pd.DataFrame(columns=["metric", "family", "value"])
    frame = frame.assign(cell=_cell_key(frame))
    first = frame.groupby("cell")["interval"].transform("max") > 0
    timing = frame[~(first & (frame["interval"] == 0))]
    parts = [_long(timing, timing["cell"], {c: c for c in ("arm_ns", "collect_ns", "arm_cpu_ns", "collect_cpu_ns")})]
    if {"tp", "fp", "fn", "tp_any", "truth_any", "wss_true", "wss_est"} <= set(frame.columns):
        rated = add_rates(frame)
        keys = ["cell"] + [k for k in ("run_id", "repeat") if k in rated]
        rated = rated[keys + ["precision", "recall", "wss_error"]].copy()
        for col in ("precision", "recall", "wss_error"):
            rated[col] = rated[col].astype("Float64").astype("float64")
        per_repeat = rated.groupby(keys, sort=True, dropna=False)[["precision", "recall", "wss_error"]].mean()
        per_repeat = per_repeat.reset_index()
        parts.append(_long(per_repeat, per_repeat["cell"], {c: c for c in ("precision", "recall", "wss_error")}))
    return pd.concat(parts, ignore_index=True)


def _concurrent(frame):
    import pandas as pd

    if not len(frame):
        return pd.DataFrame(columns=["metric", "family", "value"])
    if {"lat_p99_ns", "base_lat_p99_ns"} <= set(frame.columns):
        base = pd.to_numeric(frame["base_lat_p99_ns"], errors="coerce")
        frame = frame.assign(p99_ratio=pd.to_numeric(frame["lat_p99_ns"], errors="coerce") / base.where(base > 0))
    return _long(frame, _cell_key(frame), _CONCURRENT)


def load_run(ref: str | Path, history: Path | None = None) -> Run:
    """A results directory, or a reference into the history store (run id, prefix, latest, latest~N)."""
    path = Path(ref)
    if not (path / results.MANIFEST).is_file():
        from bench.nightly import store as nightly_store

        store = history or nightly_store.default_history_dir()
        if not Path(store).is_dir():
            raise HotbenchError(f"{ref} is not a results directory, and there is no history store at {store} to "
                                f"look it up in (give --history DIR)")
        path = nightly_store.resolve(store, str(ref))
    manifest = results.load_manifest(path)
    return Run(path, manifest, run_metrics(path, manifest))


# ---------------------------------------------------------------- thresholds

def default_thresholds() -> dict[str, float]:
    from bench.nightly.suite import load_suite

    return load_suite().thresholds


ICOUNT_SUITE = "icount"  # its thresholds judge instruction-clock runs that embed no suite


def suite_thresholds(a: Run, b: Run) -> tuple[dict[str, float], str]:
    """The thresholds of B's suite, else A's, else the packaged default suite (the packaged icount
    suite's when both runs count guest instructions); and where they came from."""
    from bench import clock

    for run in (b, a):
        suite = (run.manifest.get("nightly") or {}).get("suite") or {}
        if isinstance(suite.get("thresholds"), dict):
            return suite["thresholds"], f"suite {suite.get('name')} v{suite.get('version')} " \
                                        f"({suite.get('variant')}) of {run.run_id}"
    if all(clock.of_manifest(run.manifest).instructions for run in (a, b)):
        # exact counts: the default suite's wall-clock thresholds (2x and more) would hide any regression
        from bench.nightly.suite import load_suite

        return load_suite(ICOUNT_SUITE).thresholds, f"the packaged {ICOUNT_SUITE} suite (instruction-clock runs)"
    return default_thresholds(), "the packaged default suite"


# ---------------------------------------------------------------- comparing

def summarise(values: np.ndarray) -> dict:
    n = len(values)
    return {"n": n, "mean": float(values.mean()) if n else math.nan,
            "sd": float(values.std(ddof=1)) if n > 1 else math.nan,
            "median": float(np.median(values)) if n else math.nan, "min": float(values.min()) if n else math.nan}


def change(fam: Family, a: float, b: float) -> float:
    """B against A in the family's unit: a fraction of A (relative), of 1 + A (factor), or B - A."""
    if fam.kind == "relative":
        return b / a - 1 if a > 0 else math.nan
    if fam.kind == "factor":
        return (1 + b) / (1 + a) - 1 if 1 + a > 0 else math.nan
    return b - a


def bad_change(fam: Family, a: float, b: float) -> float:
    """How much worse b is than a (positive: worse), in the threshold's unit."""
    if fam.worse == "abs_up":
        return abs(b) - abs(a)
    moved = change(fam, a, b)
    return moved if fam.worse == "up" else -moved


def effect(family: Family, a: dict, b: dict) -> tuple[float, float]:
    """(how much worse B is than A, how much better), both >= 0 and at most one positive.

    *a* and *b* summarise each side (mean, median, min). Timing: the smaller of the median's
    and the best value's change, zero when they disagree; accuracy: the change of the means.
    "Better" swaps the runs, so halving a cost is as large as doubling it.
    """
    if family.test == "rank":
        bad = min(bad_change(family, a["median"], b["median"]), bad_change(family, a["min"], b["min"]))
        good = min(bad_change(family, b["median"], a["median"]), bad_change(family, b["min"], a["min"]))
    else:
        bad, good = bad_change(family, a["mean"], b["mean"]), bad_change(family, b["mean"], a["mean"])
    bad, good = (0.0 if not math.isfinite(x) else max(x, 0.0) for x in (bad, good))
    return (bad, 0.0) if bad >= good else (0.0, good)


def _rank_test_can_decide(na: int, nb: int, alpha: float) -> bool:
    """Whether the two-sided Mann-Whitney U test can reach p < alpha at all with these sizes:
    its smallest p (the samples wholly apart) is 2 / C(na + nb, na)."""
    return na >= 1 and nb >= 1 and 2 / math.comb(na + nb, na) < alpha


def _test(fam: Family, a: np.ndarray, b: np.ndarray, alpha: float) -> tuple[str | None, float]:
    """(test name, two-sided p), or (None, nan) when the samples are too few for the test to
    decide anything at *alpha* (the verdict is then "inconclusive", never "changed")."""
    if fam.test == "welch":
        if len(a) < 2 or len(b) < 2:
            return None, math.nan
        from analysis.stats import welch

        return "welch", welch(a, b)[1]
    if not _rank_test_can_decide(len(a), len(b), alpha):
        return None, math.nan
    from scipy.stats import mannwhitneyu

    if np.all(a == a[0]) and np.all(b == a[0]):
        return "mann-whitney", 1.0
    return "mann-whitney", float(mannwhitneyu(a, b, alternative="two-sided").pvalue)


VERDICTS = ("regression", "improvement", "changed", "inconclusive", "unchanged")
EXACT = "exact clock"  # instruction counts: the threshold (or a learnt floor) decides, no rank test


def judge(bad: float, good: float, floor: float | None, threshold: float | None, test: str | None,
          p: float, alpha: float = ALPHA) -> str:
    """The error model, in order: no difference, or one within the noise floor, is
    "unchanged"; a larger one the samples are too few to test, or on a clock with no floor
    learnt, is "inconclusive"; one the test does not support is "unchanged"; a supported one
    is a "regression" or an "improvement" beyond both the threshold and the floor, else
    "changed"."""
    size = max(bad, good)
    if size <= 0 or (floor is not None and size <= floor):
        return "unchanged"
    if test is None:
        return "inconclusive"
    if test != EXACT and not p < alpha:
        return "unchanged"
    if floor is None:
        return "inconclusive"
    gate = None if threshold is None else max(threshold, floor)
    if gate is not None and bad > gate:
        return "regression"
    if gate is not None and good > gate:
        return "improvement"
    return "changed"


@dataclass
class Comparison:
    a: dict
    b: dict
    rows: list[dict]
    only_in_a: list[str]
    only_in_b: list[str]
    thresholds_from: str
    overrides: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    floors_from: str = ""
    missing: list[str] = field(default_factory=list)  # why metrics are only in A or only in B
    not_comparable: list[str] = field(default_factory=list)  # timing metrics of runs on different clocks

    @property
    def regressions(self) -> list[dict]:
        return [r for r in self.rows if r["verdict"] == "regression"]

    def count(self, verdict: str) -> int:
        return sum(r["verdict"] == verdict for r in self.rows)


def _warnings(a: Run, b: Run) -> list[str]:
    ia, ib = a.info(), b.info()
    out = []
    if (ia["suite"], ia["suite_version"], ia["variant"]) != (ib["suite"], ib["suite_version"], ib["variant"]):
        out.append(f"the runs come from different suites ({ia['suite']} v{ia['suite_version']} {ia['variant']} vs "
                   f"{ib['suite']} v{ib['suite_version']} {ib['variant']}): only metrics of the same name are compared")
    if ia["accel"] != ib["accel"]:
        out.append(f"accel differs ({ia['accel']} vs {ib['accel']}): timings are not comparable")
    if ia["clock"] != ib["clock"]:
        out.append(f"the runs count costs in different clocks ({ia['clock']} vs {ib['clock']}): timing metrics are "
                   f"not compared, accuracy is")
    for name, info in (("A", ia), ("B", ib)):
        if info["status"] not in (None, "complete"):
            out.append(f"{name} ({info['run_id']}) is {info['status']}")
    la, lb = _load(a), _load(b)
    if la and lb and max(la, lb) > LOAD_RATIO * min(la, lb) and max(la, lb) > 0.5 * _cpus(a, b):
        out.append(f"the machines were unequally loaded (1-minute load average {la:.1f} in A, {lb:.1f} in B, "
                   f"{_cpus(a, b)} CPUs): timing changes may be the load's")
    return out


LOAD_RATIO = 1.25


def _load(run: Run) -> float | None:
    """Mean 1-minute load average over a nightly's phases (None for other runs)."""
    phases = ((run.manifest.get("nightly") or {}).get("phases") or {}).values()
    values = [v for p in phases for v in (p.get("loadavg") or []) if isinstance(v, (int, float))]
    return sum(values) / len(values) if values else None


def _cpus(a: Run, b: Run) -> int:
    return int((b.manifest.get("environment") or {}).get("cpus") or (a.manifest.get("environment") or {}).get("cpus")
               or 1)


def run_floors(a: Run, b: Run) -> Floors:
    """The floors B's suite embedded, else A's, else the packaged default suite's."""
    for run in (b, a):
        embedded = floors_mod.from_manifest(run.manifest)
        if embedded is not None:
            return floors_mod.Floors(embedded.clocks, f"{embedded.source} (embedded in {run.run_id})")
    from bench.nightly.suite import load_suite

    return load_suite().floors


def compare(a: Run, b: Run, overrides: dict[str, float] | None = None, alpha: float = ALPHA,
            floors: Floors | None = None) -> Comparison:
    """Every metric both runs have, judged by ``judge``; *floors* default to ``run_floors``."""
    from analysis._compare_missing import explain
    from bench import clock as clock_mod

    overrides = overrides or {}
    suite, source = suite_thresholds(a, b)
    # Instruction counts (QEMU icount): two boots agree to about 1 % (docs/icount.md, measured), while
    # the intervals of one run differ among themselves by more than a regression (soft-dirty's collect
    # by 7 %), so a rank test over intervals cannot see a 3 % change. The threshold, set above the
    # measured A/A spread (bench/suites/icount.toml), decides alone (unless A/A floors for the
    # instruction clock were learnt); a change within it is no change.
    exact = all(clock_mod.of_manifest(run.manifest).instructions for run in (a, b))
    fallback = default_thresholds()  # for families newer than the suite the runs embedded
    floors = floors if floors is not None else run_floors(a, b)
    same_clock = a.clock == b.clock  # ns of one clock are never compared with another's (bench.clock)
    clock = floors_mod.clock_of(b.manifest)
    ga = {m: g["value"].to_numpy("float64") for m, g in a.metrics.groupby("metric", sort=True)}
    gb = {m: g["value"].to_numpy("float64") for m, g in b.metrics.groupby("metric", sort=True)}
    families = dict(zip(a.metrics["metric"], a.metrics["family"])) | dict(zip(b.metrics["metric"], b.metrics["family"]))
    rows, not_comparable = [], []
    for metric in sorted(set(ga) & set(gb)):
        fam = FAMILIES[families[metric]]
        if fam.test == "rank" and not same_clock:
            not_comparable.append(metric)
            continue
        va, vb = ga[metric], gb[metric]
        if fam.unit == "ns" and same_clock:  # instructions under icount (ns >> shift), else ns unchanged
            va, vb = b.clock.to_units(va), b.clock.to_units(vb)
        sa, sb = summarise(va), summarise(vb)
        bad, good = effect(fam, sa, sb)
        by_threshold = exact and fam.test == "rank"
        test, p = (EXACT, math.nan) if by_threshold else _test(fam, va, vb, alpha)
        threshold, key = threshold_for(metric, fam.name, overrides, suite, fallback)
        floor, floor_key = floors.floor_for(metric, fam.name, clock)
        if by_threshold and floor is None:  # no A/A floor learnt for these counts: the threshold is one
            floor, floor_key = threshold, f"{key} (threshold, exact clock)"
        unit = "instr" if fam.unit == "ns" and b.clock.instructions else fam.unit
        rows.append({"metric": metric, "family": fam.name, "kind": fam.kind, "unit": unit, "a": sa, "b": sb,
                     "change": change(fam, sa["mean"], sb["mean"]),
                     "change_median": change(fam, sa["median"], sb["median"]),
                     "change_best": change(fam, sa["min"], sb["min"]), "worse": bad, "better": good,
                     "test": test, "p": p, "significant": test == EXACT or bool(test and p < alpha),
                     "threshold": threshold,
                     "threshold_key": key, "floor": floor, "floor_key": floor_key,
                     "verdict": judge(bad, good, floor, threshold, test, p, alpha)})
        if rows[-1]["verdict"] == "inconclusive":
            test_name = "Welch's t-test" if fam.test == "welch" else "the rank test"
            rows[-1]["why"] = (f"too few values for {test_name} ({sa['n']} and {sb['n']})" if test is None
                               else f"no noise floor learnt for {fam.name} on the {clock} clock")
    only_a, only_b = sorted(set(ga) - set(gb)), sorted(set(gb) - set(ga))
    return Comparison(a=a.info(), b=b.info(), rows=rows, only_in_a=only_a, only_in_b=only_b, thresholds_from=source,
                      overrides=dict(overrides), warnings=_warnings(a, b),
                      floors_from=f"{floors.source}, clock {clock}", missing=explain(a, b, only_a, only_b),
                      not_comparable=not_comparable)


# ---------------------------------------------------------------- output

def _si_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if abs(seconds) >= scale or unit == "ns":
            value = seconds / scale
            return f"{value:.3g} {unit}" if abs(value) < 1000 else f"{value:.0f} {unit}"
    return "-"


def format_value(unit: str, value: float) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if unit == "s":
        return _si_seconds(value)
    if unit == "ns":
        return _si_seconds(value * 1e-9)
    if unit == "instr":  # guest instructions (QEMU icount): the ns columns converted by bench.clock
        for prefix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1.0)):
            if abs(value) >= scale or not prefix:
                return f"{value / scale:.3g} {prefix}instr"
    if unit == "ratio":
        return f"{value:.2f}x"
    return f"{value:.3f}"


def _pct(value: float, sign: bool = True) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:+.1%}" if sign else f"{value:.0%}"


def _sd_pct(s: dict) -> str:
    return _pct(s["sd"] / abs(s["mean"]), sign=False) if s["n"] > 1 and s["mean"] else "-"


def _p(p: float) -> str:
    return "-" if not math.isfinite(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


_VERDICT = {"regression": "REGRESSION", "improvement": "improved", "changed": "changed",
            "inconclusive": "inconclusive", "unchanged": ""}


def _fraction(value: float | None, absolute: bool) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.3f}" if absolute else f"{value:.0%}"


def _timing_row(r: dict) -> list[str]:
    if r["unit"] == "fraction":  # slowdown: shown as a percentage, its spread in points
        value = _pct
        spread = (lambda s: f"{s['sd'] * 100:.1f}pt" if s["n"] > 1 else "-")
    else:
        value = (lambda v: format_value(r["unit"], v))
        spread = _sd_pct
    return [value(r["a"]["mean"]), spread(r["a"]), _pct(r["change"]), value(r["b"]["mean"]), spread(r["b"]),
            _pct(r["change_best"]), _p(r["p"]), _fraction(r["floor"], False), _fraction(r["threshold"], False),
            _VERDICT[r["verdict"]], r["metric"]]


def _accuracy_row(r: dict) -> list[str]:
    sd = (lambda s: f"{s['sd']:.3f}" if s["n"] > 1 else "-")
    return [f"{r['a']['mean']:.3f}", sd(r["a"]), f"{r['change']:+.3f}", f"{r['b']['mean']:.3f}", sd(r["b"]),
            _p(r["p"]), _fraction(r["floor"], True), _fraction(r["threshold"], True), _VERDICT[r["verdict"]],
            r["metric"]]


def _header(c: Comparison) -> list[str]:
    def who(name, i):
        return (f"{name}: {i['run_id']}  kernel {i['kernel_release']}  {i['machine']}  clock {i['clock']}"
                + (f"  suite {i['suite']} v{i['suite_version']} {i['variant']}" if i["suite"] else ""))

    return [who("A", c.a), who("B", c.b)]


def _counts(c: Comparison, shown_all: bool) -> str:
    unchanged = c.count("unchanged")
    return (f"{len(c.rows)} metrics compared: {c.count('regression')} regression(s), {c.count('improvement')} "
            f"improvement(s), {c.count('changed')} change(s) within the regression threshold, "
            f"{c.count('inconclusive')} inconclusive, {unchanged} unchanged"
            + ("" if shown_all or not unchanged else " (not shown; --all shows them)"))


def text(c: Comparison, show_all: bool = False) -> str:
    """Aligned plain text for a mailing-list reply: every metric not "unchanged" (all with *show_all*)."""
    from analysis.tables import format_table

    shown = [r for r in c.rows if show_all or r["verdict"] != "unchanged"]
    timing = [r for r in shown if FAMILIES[r["family"]].test == "rank"]
    accuracy = [r for r in shown if FAMILIES[r["family"]].test == "welch"]
    out = _header(c)
    if timing:
        out += ["", "timing: mean ±%stddev, %change of the means; best: %change of the minimum; p: Mann-Whitney U; "
                "floor: the noise floor; thr: the regression threshold"
                + ("; slowdown: changes of 1 + slowdown" if any(r["family"] == "slowdown" for r in timing) else ""),
                format_table(["A", "±%sd", "%change", "B", "±%sd", "best", "p", "floor", "thr", "verdict", "metric"],
                             [_timing_row(r) for r in timing],
                             right=[True] * 9 + [False, False])]
    if accuracy:
        out += ["", "accuracy: mean over repeats ±sd, change B - A; p: Welch's t-test; floor: the noise floor; "
                "thr: the regression threshold",
                format_table(["A", "±sd", "change", "B", "±sd", "p", "floor", "thr", "verdict", "metric"],
                             [_accuracy_row(r) for r in accuracy],
                             right=[True] * 8 + [False, False])]
    out += ["", _counts(c, show_all)]
    why = Counter(r["why"] for r in c.rows if r["verdict"] == "inconclusive")
    out += [f"inconclusive: {n} metric(s), {reason}" for reason, n in why.most_common()]
    if any(reason.startswith("no noise floor") for reason in why):
        out.append("  (learn floors from A/A runs of one build: hotbench floors --help)")
    elif why:
        out.append("  (more --repeats, or more values per benchmark, decide them)")
    out += [f"not compared: {len(c.not_comparable)} timing metric(s), the runs count costs in different clocks"] \
        if c.not_comparable else []
    out += c.missing
    overridden = ", ".join(f"{k}={v:g}" for k, v in c.overrides.items())
    out.append(f"thresholds: {c.thresholds_from}" + (f"; overridden: {overridden}" if overridden else ""))
    out.append(f"noise floors: {c.floors_from}")
    out += [f"warning: {w}" for w in c.warnings]
    return "\n".join(out)


def _clean(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return _clean(value.item())
    return value


def as_json(c: Comparison) -> dict:
    return _clean({"format": FORMAT, "format_version": FORMAT_VERSION, "a": c.a, "b": c.b, "alpha": ALPHA,
                   "thresholds_from": c.thresholds_from, "floors_from": c.floors_from, "overrides": c.overrides,
                   "metrics": c.rows, "counts": {v: c.count(v) for v in VERDICTS},
                   "regressions": [r["metric"] for r in c.regressions], "only_in_a": c.only_in_a,
                   "only_in_b": c.only_in_b, "missing": c.missing, "not_comparable": c.not_comparable,
                   "warnings": c.warnings})
