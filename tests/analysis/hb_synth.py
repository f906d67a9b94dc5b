"""A small synthetic results tree with the real column set: two kernels (one under tcg),
page, region and aggregate trackers, two workloads at two interval lengths, two sizes,
three repeats, an error row, concurrent rows, latency.parquet, a pyperf micro file,
pages.parquet and eviction.parquet. Deterministic (one seeded generator per run)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bench import results

PAGE = 4096
SIZES = (4 << 20, 16 << 20)
INTERVALS = 4
REPEATS = 3
ACCESSES = (2000, 20000)
WORKLOADS = ("uniform", "phase")
TRACKERS = {  # name: (mechanism, granularity, sees)
    "uffd-wp": ("uffd-wp", "page", "writes"),
    "mprotect": ("mprotect", "page", "reads+writes"),
    "damon-vaddr": ("damon-vaddr", "region", "reads+writes"),
    "referenced": ("referenced", "aggregate", "reads+writes"),
}
KERNELS = [  # (run_id, kernel, accel, host, collect scale for uffd-wp)
    ("20261101T000000Z-alpha-1", "6.18.44-synth", "native", "alpha", 1.0),
    ("20261102T000000Z-beta-2", "7.3.0-synth", "tcg", "beta", 2.0),
]


def _truth(rng, workload, npages, accesses, interval):
    touched = np.zeros(npages, bool)
    if workload == "phase":
        width = max(npages // 8, 1)
        start = (interval // 2) * width % npages
        idx = start + rng.integers(0, width, size=accesses)
        idx = np.concatenate([idx % npages, rng.integers(0, npages, size=accesses // 10)])
    else:
        idx = rng.integers(0, npages, size=accesses)
    touched[idx] = True
    written = touched & (rng.random(npages) < 0.3)
    read = touched & ~written | (touched & (rng.random(npages) < 0.5))
    return read, written


def _confusion(reported, truth):
    tp = int((reported & truth).sum())
    fp = int(reported.sum()) - tp
    fn = int(truth.sum()) - tp
    return tp, fp, fn, truth.size - tp - fp - fn


def _pack(bits):
    return np.packbits(bits, bitorder="little").tobytes()


def _manifest(run_id, kernel, accel, host):
    return {"run_id": run_id, "command": ["hotbench", "run", "--out", "/somewhere/else"], "git_commit": "0" * 40,
            "mode": "lockstep", "settings": {},
            "environment": {"hotbench_version": "0.1.0", "kernel_release": kernel, "hostname": host,
                            "cpu_model": "Synthetic CPU", "cpus": 2, "mem_total_bytes": 8 << 30,
                            "thp_enabled": "madvise", "numa_balancing": "0", "accel": accel, "python": "3.11",
                            "machine": "x86_64", "kernel_facts": {}},
            "cells": [], "skipped": {"rwp": "UFFDIO_API lacks UFFD_FEATURE_RWP (bit 17)",
                                     "idle-page": "no /sys/kernel/mm/page_idle/bitmap: CONFIG_IDLE_PAGE_TRACKING"},
            "status": "complete", "cells_done": 1}


def make_run(root: Path, run_id, kernel, accel, host, scale) -> Path:
    rng = np.random.default_rng(int(run_id[:8]))
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    rows, pages, conc, lat = [], [], [], []
    for tracker, (mechanism, granularity, sees) in TRACKERS.items():
        for size in SIZES:
            npages = size // PAGE
            for workload in WORKLOADS:
                for accesses in ACCESSES:
                    for repeat in range(REPEATS):
                        params = {"accesses": accesses, "npages": npages, "page_size": PAGE, "seed": 1 + repeat,
                                  "threads": 1, "write_ratio": 0.3}
                        base = {"run_id": run_id, "tracker": tracker, "mechanism": mechanism,
                                "granularity": granularity, "sees": sees, "workload": workload,
                                "workload_spec": workload, "workload_params": json.dumps(params, sort_keys=True),
                                "workload_version": "synthetic", "backing": "anon", "size_bytes": size,
                                "page_size": PAGE, "npages": npages, "repeat": repeat, "seed": 1 + repeat,
                                "intervals": INTERVALS}
                        for i in range(INTERVALS):
                            read, written = _truth(rng, workload, npages, accesses, i)
                            anyt = read | written
                            truth = written if sees == "writes" else anyt
                            if granularity == "region":
                                blocks = anyt.reshape(-1, 64).any(axis=1) & (rng.random(npages // 64) < 0.9)
                                reported = np.repeat(blocks, 64)
                            else:
                                reported = truth.copy()
                            row = {**base, "interval": i, "truth_kind": "written" if sees == "writes" else "any",
                                   "truth_any": int(anyt.sum()), "truth_read": int(read.sum()),
                                   "truth_written": int(written.sum()), "wss_true": int(truth.sum())}
                            if granularity == "aggregate":
                                est = int(anyt.sum() * rng.normal(1.1, 0.05))
                                row.update(reported=est, wss_est=est)
                            else:
                                tp, fp, fn, tn = _confusion(reported, truth)
                                tpa, fpa, fna, _ = _confusion(reported, anyt)
                                row.update(reported=int(reported.sum()), wss_est=int(reported.sum()), tp=tp, fp=fp,
                                           fn=fn, tn=tn, tp_any=tpa, fp_any=fpa, fn_any=fna)
                                if tracker == "mprotect":
                                    row.update(reported_read=int(read.sum()), reported_written=int(written.sum()),
                                               tp_written=int(written.sum()))
                                if accesses == ACCESSES[-1]:  # region answers mapped to pages, too
                                    pages.append({**{k: base[k] for k in ("run_id", "tracker", "workload_spec",
                                                                          "backing", "size_bytes", "repeat")},
                                                  "interval": i, "npages": npages, "truth_read": _pack(read),
                                                  "truth_written": _pack(written), "reported": _pack(reported)})
                            cost = {"uffd-wp": 0.4 * scale, "mprotect": 6.0, "damon-vaddr": 0.2,
                                    "referenced": 3.0}[tracker] * (size / (1 << 20))
                            collect = rng.normal(cost, cost * 0.05) * 1e5
                            row.update(arm_ns=int(collect * 0.5), arm_cpu_ns=int(collect * 0.45),
                                       collect_ns=int(collect), collect_cpu_ns=int(collect * 0.9),
                                       workload_ns=int(rng.normal(2e7, 1e6)), minor_faults=int(rng.integers(0, 50)),
                                       status="ok", extra=json.dumps({}))
                            rows.append(row)
                    if accesses != ACCESSES[0] or tracker == "referenced":
                        continue
                    for repeat in range(REPEATS):  # concurrent overhead rows and batch latencies
                        slow = {"uffd-wp": 1.05, "mprotect": 1.6, "damon-vaddr": 1.02}[tracker]
                        base_aps = 5e7
                        conc.append({"run_id": run_id, "mode": "concurrent", "tracker": tracker,
                                     "mechanism": mechanism, "granularity": granularity, "sees": sees,
                                     "workload": workload, "workload_spec": workload,
                                     "workload_params": json.dumps({"accesses": accesses, "seed": 1 + repeat}),
                                     "backing": "anon", "size_bytes": size, "page_size": PAGE, "npages": npages,
                                     "repeat": repeat, "seed": 1 + repeat, "status": "ok",
                                     "throughput_aps": base_aps / slow, "baseline_aps": base_aps,
                                     "slowdown": rng.normal(slow, 0.01), "lat_p50_ns": 2000.0,
                                     "lat_p99_ns": 2000.0 * slow ** 4, "lat_p999_ns": 2000.0 * slow ** 6,
                                     "lat_max_ns": 2000.0 * slow ** 8, "tracker_cpu_ns_per_cycle": cost * 1e5,
                                     "cycles": 20})
                        for name, s in ((tracker, slow), ("baseline", 1.0)):
                            lat.append(pd.DataFrame({"run_id": run_id, "tracker": name, "workload": workload,
                                                     "size_bytes": size, "repeat": repeat,
                                                     "batch_ns": rng.lognormal(np.log(2000 * s), 0.3 * s, 400)}))
    rows.append({**rows[0], "tracker": "uffd-wp", "interval": 0, "status": "error: [Errno 22] Invalid argument",
                 "tp": np.nan, "repeat": 9})
    results.write_manifest(run_dir, _manifest(run_id, kernel, accel, host))
    results.write_samples(run_dir, rows + conc)
    pd.DataFrame(pages).to_parquet(run_dir / "pages.parquet", index=False)
    pd.concat(lat, ignore_index=True).to_parquet(run_dir / "latency.parquet", index=False)
    pd.DataFrame([{"variant": v, "repeat": rep, "round": r, "size_bytes": SIZES[-1], "status": "ok",
                   "evicted_pages": int(k * 100 + rng.integers(0, 20)), "refaults": int(k * 5 + rng.integers(0, 5)),
                   "lat_p99_ns": float(k * 3000 + rng.normal(0, 200)), "blocked_ns_max": int(k * 20000)}
                  for v, k in (("rwp-sync", 3), ("uffd-wp", 2)) for rep in range(2) for r in range(8)]
                 + [{"variant": "racy", "repeat": 0, "round": None, "status": "skipped: not on this kernel"}]
                 ).to_parquet(run_dir / "eviction.parquet", index=False)
    _micro(run_dir / "micro.json", rng, scale)
    return run_dir


def _micro(path: Path, rng, scale: float) -> None:
    import pyperf

    benches = []
    for name, mean in (("fault/uffd-wp-async", 1e-6 * scale), ("fault/mprotect-sigsegv", 6e-6),
                       ("fault/uffd-minor-roundtrip", 9e-6), ("scan/pagemap-scan-1GiB", 4e-4)):
        runs = [pyperf.Run(list(rng.lognormal(np.log(mean), 0.25, 20)), metadata={"name": name, "unit": "second",
                                                                                 "loops": 1},
                           collect_metadata=False) for _ in range(3)]
        benches.append(pyperf.Benchmark(runs))
    pyperf.BenchmarkSuite(benches).dump(str(path))


def make_tree(root: Path) -> list[Path]:
    """Two run directories under *root*, one per kernel; returns them in order."""
    return [make_run(root, *k) for k in KERNELS]


if __name__ == "__main__":
    import sys

    print(*make_tree(Path(sys.argv[1])), sep="\n")
