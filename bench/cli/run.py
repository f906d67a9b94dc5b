"""``hotbench run``: trackers x workloads in lockstep, scored against exact ground truth.

Exit status: 0 when every planned cell ran, 1 on bad input or when nothing could run,
130 when interrupted (the partial results written so far stay valid).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.errors import HotbenchError, Interrupted

DEFAULT_SIZE = "256M"
DEFAULT_INTERVALS = 5


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def set_argparser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trackers", type=_csv, help="comma-separated trackers (default: every one available here)")
    parser.add_argument("--workloads", type=_csv, help="comma-separated workload specs, e.g. uniform,zipf:s=1.2 "
                        "(default: uniform,zipf,hotcold,phase)")
    parser.add_argument("--backing", default="auto", help="anon|shmem|thp|hugetlb, or auto: anon where the "
                        "tracker supports it, else its own (default auto)")
    parser.add_argument("--size", type=_csv, default=[DEFAULT_SIZE], help=f"arena size(s), e.g. 256M or 64M,1G "
                        f"(default {DEFAULT_SIZE})")
    parser.add_argument("--intervals", type=int, default=DEFAULT_INTERVALS, help=f"intervals per cell (default {DEFAULT_INTERVALS})")
    parser.add_argument("--repeats", type=int, default=1, help="repeats per cell, each with seed+repeat (default 1)")
    parser.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    parser.add_argument("--accesses", type=int, help="accesses per interval (default: the workload's)")
    parser.add_argument("--threads", type=int, help="workload threads (default: the workload's)")
    parser.add_argument("--write-ratio", type=float, help="fraction of accesses that write (default: the workload's)")
    parser.add_argument("--mglru", choices=("on", "off"), help="set MGLRU (lru_gen/enabled) for the run, then restore")
    parser.add_argument("--numa-balancing", choices=("on", "off"), help="set kernel.numa_balancing for the run, then restore")
    parser.add_argument("--thp", choices=("always", "madvise", "never"), help="set the THP mode for the run, then restore")
    parser.add_argument("--out", type=Path, default=Path("results"), help="results directory (default ./results)")
    parser.add_argument("--list", action="store_true", help="list trackers and workloads, then exit")


def _list() -> int:
    import workloads
    from bench import trackers

    for name, cls in trackers.registry().items():
        why = cls.unavailable()
        print(f"{name:18} {cls.granularity:9} {cls.sees:12} {'available' if not why else 'unavailable: ' + why}")
    print("workloads:", ", ".join(workloads.names()))
    return 0


def _run(args: argparse.Namespace, sizes: list[int], applied: dict) -> tuple[list[dict], Path]:
    from bench import environment, results, runner

    overrides = {"accesses": args.accesses, "threads": args.threads, "write_ratio": args.write_ratio}
    plan = runner.make_plan(args.trackers, args.workloads or list(runner.DEFAULT_WORKLOADS), args.backing, sizes,
                            args.intervals, args.repeats, args.seed, **overrides)
    for name, reason in plan.skipped.items():
        print(f"skip {name}: {reason}", file=sys.stderr)
    if not plan.cells:
        hint = " (most mechanisms need root: run as root)" if os.geteuid() != 0 else ""
        raise HotbenchError(f"nothing to run: no requested tracker is available here{hint}; see 'hotbench probe'")
    run_id = results.new_run_id()
    run_dir = results.create_run_dir(args.out, run_id)
    manifest = {"run_id": run_id, "command": results.command_line(), "git_commit": results.git_commit(),
                "mode": "lockstep", "settings": applied, "environment": environment.describe(),
                **runner.plan_manifest(plan)}
    try:
        return runner.run_plan(plan, run_dir, manifest), run_dir
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; the tracker was stopped and partial results kept in {run_dir}") from None


def main(args: argparse.Namespace) -> int:
    if args.list:
        return _list()
    from bench import arena, runner, settings

    sizes = [arena.parse_size(s) for s in args.size]
    runner.check_sizes(sizes)
    requested = {name: getattr(args, name.replace("-", "_")) for name in settings.SETTINGS}
    requested = {name: choice for name, choice in requested.items() if choice}
    settings.validate(requested)
    with settings.applied(requested) as applied:  # before planning: THP mode decides whether 'thp' is possible
        rows, run_dir = _run(args, sizes, applied)
    import pandas as pd

    from analysis.tables import summary_text

    print(summary_text(pd.DataFrame(rows)))
    errors = [r for r in rows if str(r.get("status", "")).startswith("error")]
    for r in errors:
        print(f"{r['tracker']} x {r['workload_spec']}: {r['status']}", file=sys.stderr)
    print(f"results: {run_dir}")
    return 1 if errors else 0
