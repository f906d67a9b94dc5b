"""Loading one or more results directories into one set of frames, labelled by kernel.

Runs merge by concatenation. Each run gets a *label* — its kernel release, plus the accel
when not native and the host when two hosts ran the same kernel — and every row carries it;
labels keep the order in which their runs were named (the first is the reference when
runs are compared). Nothing here reads anything but the results directories, so a copied
directory gives the same frames on any machine.

Optional files beside ``samples.parquet`` (written by other parts of hotbench, or not yet):
``latency.parquet`` (batch latencies of concurrent runs), ``micro*.json`` (pyperf),
``eviction.parquet`` (eviction timeline), ``pages.parquet`` (per-page bitmaps) and
``profile.parquet`` (top kernel functions per profiled phase, ``run --kernel-profile``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench import clock as clock_mod
from bench import results
from bench.clock import Clock
from bench.errors import HotbenchError

LATENCY = "latency.parquet"
EVICTION = "eviction.parquet"
PAGES = "pages.parquet"
PROFILE = results.PROFILE
MICRO_GLOB = "micro*.json"
CONCURRENT = "concurrent"
LOCKSTEP = "lockstep"
# workload parameters that identify a replicate, not a different experiment
_REPLICATE_PARAMS = {"seed", "npages", "page_size"}


@dataclass
class RunInfo:
    run_id: str
    label: str
    manifest: dict

    @property
    def env(self) -> dict:
        return self.manifest.get("environment") or {}


@dataclass
class Data:
    runs: list[RunInfo]
    labels: list[str]
    samples: object  # lockstep rows, with rate columns (pandas.DataFrame)
    concurrent: object  # concurrent rows (pandas.DataFrame, maybe empty)
    latency: object = None
    micro: object = None  # label, run_id, benchmark, unit, arena_bytes (per-GiB cases), value
    eviction: object = None
    pages: object = None
    profile: object = None  # run --kernel-profile: top kernel functions per phase and interval
    errors: object = None  # rows whose status is an error (dropped from the statistics)
    notes: list[str] = field(default_factory=list)

    def label_index(self, label: str) -> int:
        return self.labels.index(label)

    def unprofiled(self) -> Data:
        """These results without the lockstep rows of runs that profiled their phases ('run
        --kernel-profile'): such timings include the profiler's own work, so they are no cost."""
        profiled = {r.run_id for r in self.runs if (r.manifest.get("kernel_profile") or {}).get("enabled")}
        if not profiled or not len(self.samples) or "run_id" not in self.samples:
            return self
        return replace(self, samples=self.samples[~self.samples["run_id"].isin(profiled)].reset_index(drop=True))

    def clock_of(self, label: str) -> Clock:
        """The clock of the run(s) behind *label* (a label names one kernel, accel and clock)."""
        return clock_mod.of_environment(next(r.env for r in self.runs if r.label == label))

    def clock(self, labels: list[str] | None = None) -> Clock:
        """The one clock of *labels* (default all); ``clock.MixedClocksError`` when they mix
        instruction counts and nanoseconds (split them with ``by_clock`` first)."""
        return clock_mod.single([self.clock_of(lb) for lb in (labels or self.labels)])

    def by_clock(self) -> list[tuple[Clock, Data]]:
        """This data split by clock, each part with its own labels; one part when they agree."""
        groups: dict[Clock, list[str]] = {}
        for label in self.labels:
            groups.setdefault(self.clock_of(label), []).append(label)
        if len(groups) == 1:
            return [(next(iter(groups)), self)]
        return [(clk, self.subset(labels)) for clk, labels in groups.items()]

    def subset(self, labels: list[str]) -> Data:
        """The runs of *labels* alone, every frame filtered to them."""
        def keep(frame):
            return frame if frame is None or "label" not in frame else \
                frame[frame["label"].isin(labels)].reset_index(drop=True)

        return Data(runs=[r for r in self.runs if r.label in labels], labels=[lb for lb in self.labels if lb in labels],
                    samples=keep(self.samples), concurrent=keep(self.concurrent), latency=keep(self.latency),
                    micro=keep(self.micro), eviction=keep(self.eviction), pages=keep(self.pages),
                    errors=keep(self.errors), notes=list(self.notes))


def find_run_dirs(paths: list[Path]) -> list[Path]:
    """Each path is a run directory, or a directory whose immediate subdirectories are runs."""
    found: list[Path] = []
    for path in map(Path, paths):
        if (path / results.MANIFEST).is_file():
            found.append(path)
            continue
        subs = results.run_dirs(path)
        if not subs:
            raise HotbenchError(f"{path} is not a hotbench results directory (no {results.MANIFEST}, "
                                f"here or in its subdirectories)")
        found.extend(subs)
    return found


def _labels(manifests: list[dict]) -> list[str]:
    def base(m):
        env = m.get("environment") or {}
        label = str(env.get("kernel_release") or "unknown-kernel")
        accel = env.get("accel") or "native"
        tag = clock_mod.of_environment(env).tag()  # icount runs count instructions: never pooled with ns
        accel = ", ".join(x for x in (accel if accel != "native" else "", tag) if x)
        return f"{label} ({accel})" if accel else label

    hosts: dict[str, set] = {}
    for m in manifests:
        hosts.setdefault(base(m), set()).add((m.get("environment") or {}).get("hostname"))
    return [base(m) + (f"@{(m.get('environment') or {}).get('hostname')}" if len(hosts[base(m)]) > 1 else "")
            for m in manifests]


def setting_params(text) -> dict:
    """A row's ``workload_params`` JSON without what follows from other columns or the spec:
    seed, arena pages, page size, and the contents a config file resolved to (a masim config's
    regions and phases, which change with the arena size; the spec names the file)."""
    if not isinstance(text, str):
        return {}
    return {k: v for k, v in json.loads(text).items() if k not in _REPLICATE_PARAMS and not isinstance(v, (dict, list))}


def varying_params(specs, params_json) -> list[str]:
    """Per row, ``key=value`` of the settings that differ between rows of the same spec (an
    --accesses or --threads sweep), joined by spaces; "" where nothing varies."""
    parsed = {text: setting_params(text) for text in set(params_json)}
    rows = list(zip(map(str, specs), params_json))
    varying: dict[str, list[str]] = {}
    for spec in {spec for spec, _ in rows}:
        dicts = [parsed[text] for s, text in rows if s == spec]
        keys = sorted({k for d in dicts for k in d})
        varying[spec] = [k for k in keys if len({json.dumps(d.get(k)) for d in dicts}) > 1]
    return [" ".join(f"{k}={parsed[text].get(k)}" for k in varying[spec]) for spec, text in rows]


def _workload_labels(df):
    """``workload_label``: the spec plus any setting that varies between runs of that spec
    (``varying_params``), so rows with different settings are never pooled."""
    import pandas as pd

    specs = df["workload_spec"].astype(str)
    extra = pd.Series(varying_params(specs, df["workload_params"]), index=df.index)
    labels = specs.where(extra == "", specs + " " + extra)
    accesses = df["workload_params"].map(lambda s: setting_params(s).get("accesses"))
    return labels, pd.to_numeric(accesses, errors="coerce")


def _read_parquet(path: Path):
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises many types for a torn or foreign file
        why = (str(e).splitlines() or [type(e).__name__])[0]
        raise HotbenchError(f"cannot read {path.name} in {path.parent.name}: {why}") from None


def _micro(run_dir: Path, label: str, run_id: str):
    import pandas as pd

    files = sorted(run_dir.glob(MICRO_GLOB))
    if not files:
        return None
    import pyperf

    rows = []
    for path in files:
        try:
            suite = pyperf.BenchmarkSuite.load(str(path))
        except Exception as e:
            why = (str(e).splitlines() or [type(e).__name__])[0]
            raise HotbenchError(f"cannot read pyperf file {path.name} in {run_dir.name}: {why}") from None
        for bench in suite.get_benchmarks():
            unit, arena = bench.get_unit(), bench.get_metadata().get("hotbench_arena_bytes")
            rows += [{"label": label, "run_id": run_id, "file": path.name, "benchmark": bench.get_name(),
                      "unit": unit, "arena_bytes": arena, "value": float(v)} for v in bench.get_values()]
    return pd.DataFrame(rows)


# columns in seconds, and rates per second, that a clock's conversion rescales besides every *_ns column
_SECONDS_COLUMNS = ("value",)  # pyperf values (s per GiB or per page)
_PER_SECOND_COLUMNS = ("throughput_aps", "baseline_aps")


def in_clock_units(frame, clk: Clock):
    """*frame* with its guest-time columns in *clk*'s unit (``bench/clock.py``): on the
    instruction clock, every ``*_ns`` column (and pyperf seconds) divided by 2**shift, rates per
    second multiplied by it, and ``clock``/``icount_shift`` filled in from the manifest for rows
    written before those columns. At shift 0 (the default) nothing is rescaled: 1 ns = 1 instr."""
    import numpy as np

    if frame is None:
        return frame
    frame = frame.copy()
    for key, value in clock_mod.row_fields(clk).items():
        if key not in frame:
            frame[key] = value
    factor = 1 << (clk.shift or 0) if clk.instructions else 1
    if factor == 1:
        return frame
    for col in frame.columns:
        if col.endswith("_ns") or "_ns_" in col or col in _SECONDS_COLUMNS:
            if frame[col].dtype == object:  # latency.parquet: an array of batch durations per row
                frame[col] = frame[col].map(lambda a: None if a is None else np.asarray(a) / factor)
            else:
                frame[col] = frame[col] / factor
        elif col in _PER_SECOND_COLUMNS:
            frame[col] = frame[col] * factor
    return frame


def _concat(frames):
    import pandas as pd

    frames = [f for f in frames if f is not None and len(f)]
    if not frames:
        return None
    columns = list(dict.fromkeys(c for f in frames for c in f.columns))
    return pd.concat([f.reindex(columns=columns) for f in frames], ignore_index=True)


def load(paths: list[Path]) -> Data:
    """Read every run under *paths* (see ``find_run_dirs``) into one ``Data``."""
    import pandas as pd

    from analysis.metrics import add_report_rates

    run_dirs = find_run_dirs(paths)
    manifests = [results.load_manifest(d) for d in run_dirs]
    labels = _labels(manifests)
    runs, sample_frames, latency, micro, eviction, pages, profile = [], [], [], [], [], [], []
    seen: set[str] = set()
    for run_dir, manifest, label in zip(run_dirs, manifests, labels):
        run_id = str(manifest.get("run_id") or run_dir.name)
        if run_id in seen:  # the same run named twice (a copy): count it once
            continue
        seen.add(run_id)
        runs.append(RunInfo(run_id, label, manifest))
        clk = clock_mod.of_manifest(manifest)
        # with the finished intervals of the cell a killed run was in (their rows say partial)
        samples = _concat([_read_parquet(run_dir / results.SAMPLES) if (run_dir / results.SAMPLES).is_file()
                           else None, results.load_partial(run_dir)])
        if samples is not None and len(samples):
            samples = in_clock_units(samples, clk)
            mode = samples["mode"] if "mode" in samples else pd.Series(manifest.get("mode") or LOCKSTEP,
                                                                        index=samples.index)
            sample_frames.append(samples.assign(label=label, mode=mode.fillna(manifest.get("mode") or LOCKSTEP)))
        for name, bucket in ((LATENCY, latency), (EVICTION, eviction), (PAGES, pages), (PROFILE, profile)):
            if (run_dir / name).exists():  # a file, or a directory of part files (one per cell)
                frame = in_clock_units(_read_parquet(run_dir / name), clk)
                bucket.append(frame.assign(label=label, run_id=frame["run_id"] if "run_id" in frame else run_id))
        micro.append(in_clock_units(_micro(run_dir, label, run_id), clk))
    order = list(dict.fromkeys(labels))
    samples = _concat(sample_frames)
    if samples is None:
        samples = pd.DataFrame(columns=["label", "mode", "tracker", "status"])
    samples = samples.assign(label_order=samples["label"].map(order.index))
    sort = [c for c in ("label_order", "run_id", "tracker", "workload_spec", "backing", "size_bytes", "repeat",
                        "interval") if c in samples]
    samples = samples.sort_values(sort, kind="stable").reset_index(drop=True)
    if "status" not in samples:
        samples = samples.assign(status="ok")
    failed = samples["status"].astype(str).str.startswith("error")
    errors, samples = samples[failed].reset_index(drop=True), samples[~failed]
    is_conc = samples["mode"].astype(str) == CONCURRENT
    lock, conc = samples[~is_conc].reset_index(drop=True), samples[is_conc].reset_index(drop=True)
    if len(lock):
        lock = _with_workload_label(add_report_rates(lock))
    if len(conc):
        conc = _with_workload_label(add_report_rates(conc, accuracy=False))
    return Data(runs=runs, labels=order, samples=lock, concurrent=conc, latency=_concat(latency),
                micro=_concat(micro), eviction=_concat(eviction), pages=_concat(pages), profile=_concat(profile),
                errors=errors)


def _with_workload_label(frame):
    if "workload_params" in frame and "workload_spec" in frame:
        wl, accesses = _workload_labels(frame)
        return frame.assign(workload_label=_with_interference(frame, wl), accesses=accesses)
    name = frame["workload_spec"] if "workload_spec" in frame else frame.get("workload", "?")
    return frame.assign(workload_label=_with_interference(frame, name), accesses=float("nan"))


def _with_interference(frame, labels):
    """'hotcold +tlb-flush': rows measured under an interference (hotbench run --interfere) are
    never pooled with rows measured without it."""
    if "interfere" not in frame:
        return labels
    interfere = frame["interfere"].astype("string").fillna("none")
    return labels.where(interfere == "none", labels.astype(str) + " +" + interfere.astype(str))


def unpack_bits(blob, npages: int):
    """A pages.parquet bitmap (bit i = page i, little-endian bytes) as bool[npages]; a missing
    bitmap (a tracker that cannot tell reads from writes) is all False."""
    import numpy as np

    if blob is None or (isinstance(blob, float) and np.isnan(blob)):
        return np.zeros(npages, dtype=bool)
    return np.unpackbits(np.frombuffer(blob, dtype=np.uint8), count=npages, bitorder="little").astype(bool)


def format_size(nbytes: float) -> str:
    """256 MiB, 1 GiB, 512 KiB: binary units, no decimals when exact."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift:
            value = nbytes / (1 << shift)
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{int(nbytes)} B"
