"""``hotbench export RUN_DIR --csv``: a results directory's tables as CSV, for spreadsheets,
R, gnuplot or awk.

    hotbench export results/latest --csv > samples.csv       # the samples table on stdout
    hotbench export results/latest --csv -o out/             # every table, one file each

Tables: ``samples`` (one row per cell and interval, the rates added: precision, recall,
WSS error, ms/GiB), ``summary`` (one row per swept combination, as 'hotbench run' prints
it), ``latency`` (concurrent mode: every timed batch) and ``micro`` (pyperf values, one row
per value). Exit status: 0 written; 1 not a results directory, or no such table in it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.errors import HotbenchError

TABLES = ("samples", "summary", "latency", "micro")


def set_argparser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, metavar="RUN_DIR", help="a results directory, or a directory of them "
                        "(its newest run)")
    parser.add_argument("--csv", action="store_true", required=True, help="as CSV (the one format: parquet is "
                        "already in the run directory)")
    parser.add_argument("-o", "--out", type=Path, metavar="DIR", help="write every table the run has as "
                        "DIR/<table>.csv (default: one table on stdout)")
    parser.add_argument("--table", choices=TABLES, default="samples", help="the table for stdout (default samples)")


def tables(run_dir: Path) -> dict:
    """name -> DataFrame, for each table the run has."""
    import pandas as pd

    from analysis.metrics import add_rates
    from analysis.tables import summary
    from bench import results

    out = {}
    samples = results.load_samples(run_dir)
    if len(samples):
        lockstep = samples[samples["mode"] != "concurrent"] if "mode" in samples else samples
        out["samples"] = add_rates(lockstep) if len(lockstep) and "tp" in lockstep else samples
        if len(lockstep) and "tp" in lockstep:
            out["summary"] = summary(lockstep)
        if "mode" in samples and (samples["mode"] == "concurrent").any():
            out["samples"] = pd.concat([out["samples"], samples[samples["mode"] == "concurrent"]], ignore_index=True)
    if (run_dir / results.LATENCY).is_file():
        out["latency"] = pd.read_parquet(run_dir / results.LATENCY)
    from analysis.compare import run_metrics

    micro = run_metrics(run_dir)
    micro = micro[micro["family"] == "micro"]
    if len(micro):
        out["micro"] = micro.assign(benchmark=micro["metric"].str.removeprefix("micro:"))[["benchmark", "value"]]
    return out


def main(args: argparse.Namespace) -> int:
    from bench import results
    from bench.cli.show import resolve

    run_dir = resolve(args.run)
    found = tables(run_dir)
    if args.out is None:
        if args.table not in found:
            raise HotbenchError(f"{run_dir} has no {args.table} table (it has: {', '.join(found) or 'none'})")
        results.write_csv(sys.stdout, found[args.table])
        return 0
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HotbenchError(f"cannot create {args.out}: {e.strerror}; choose another -o") from None
    for name, frame in found.items():
        path = args.out / f"{name}.csv"
        results.write_csv(path, frame)
        print(f"{path}  {len(frame)} rows")
    return 0
