"""``hotbench evict``: the VMM eviction workflow under concurrent vCPU writes, integrity-checked.

Runs each variant (default: all) ``--repeats`` times and prints one summary line per variant;
``--out FILE`` writes every (variant, round) row (``.json`` or ``.parquet``, versioned, or
``.csv``: ``results.write_eviction``), rewritten after each variant, so an interrupted or
killed run keeps every finished variant. A variant this kernel cannot run is listed as
skipped with the probe's reason. Every argument is checked before anything runs.

Exit status: 0 when every variant that ran kept every page intact (``racy`` is expected to
lose data and never counts); 3 when a variant other than ``racy`` lost, tore or misplaced a
page; 1 on bad input or errors; 130, 143 or 129 when SIGINT, SIGTERM or SIGHUP stopped it
(after the round in flight; the variant in progress is cleaned up and not written).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench import clock
from bench.errors import HotbenchError

EXPECTED_TO_LOSE = ("racy",)  # the file format's history is in bench/results.py


def _seconds(text: str) -> float:
    scale = 1e-3 if text.endswith("ms") else 1.0
    try:
        return float(text.removesuffix("ms").removesuffix("s")) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration like 100ms or 0.5s, got {text!r}") from None


def set_argparser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--list", action="store_true", help="list the variants with their ioctl sequences and "
                        "whether this kernel runs them, then exit")
    parser.add_argument("--variant", action="append", metavar="NAME",
                        help="a variant to run (repeatable or comma-separated; default: all)")
    parser.add_argument("--backing", default="shmem", choices=("shmem", "anon"), help="guest memory (default shmem)")
    parser.add_argument("--size", default="32M", help="guest memory size (default 32M)")
    parser.add_argument("--threads", type=int, default=2, help="vCPU threads (default 2)")
    parser.add_argument("--rounds", type=int, default=4, help="eviction rounds per run (default 4)")
    parser.add_argument("--interval", type=_seconds, default=0.1, help="observation window (default 100ms)")
    parser.add_argument("--hold", type=_seconds, default=0.0, help="extra time between write-out and drop "
                        "(widens the eviction window; default 0)")
    parser.add_argument("--rescue", action="store_true", help="keep pages the vCPUs faulted on during the window "
                        "instead of evicting them")
    parser.add_argument("--detector", default="auto", help="tracker for uffd-wp/racy/none (default: shmem-zap on "
                        "shmem, mprotect on anon)")
    parser.add_argument("--hot-frac", type=float, default=0.25, help="fraction of pages that are hot (default 0.25)")
    parser.add_argument("--hot-weight", type=float, default=0.99, help="share of accesses to hot pages (default 0.99)")
    parser.add_argument("--write-ratio", type=float, default=0.5, help="share of accesses that write (default 0.5)")
    parser.add_argument("--batch", type=int, default=256, help="accesses per timed vCPU batch (default 256)")
    parser.add_argument("--store", metavar="DIR", help="write evicted pages to an unlinked file in DIR "
                        "(default: a second memfd)")
    parser.add_argument("--placement", choices=("auto", "same-cpu", "other-cpu", "unpinned"), default="auto",
                        help="where the vCPU threads and the fault handler run: same-cpu (all on one CPU: each "
                        "wake-up a local switch), other-cpu (handler on a second CPU: each wake-up crosses CPUs), "
                        "unpinned (the scheduler decides); auto: same-cpu for one vCPU thread, else unpinned "
                        "(default). Every row records it and the CPUs the threads were allowed")
    parser.add_argument("--repeats", type=int, default=1, help="runs per variant, seed+repeat (default 1)")
    parser.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    parser.add_argument("--out", type=Path, help="write every row to FILE (.json, .csv or .parquet)")
    parser.add_argument("--replace", action="store_true", help="overwrite --out if it exists")
    parser.add_argument("--no-wait", action="store_true", help="refuse in one line, instead of waiting, while a run "
                        "that changes kernel knobs holds the run lock")


def _variants(args) -> list[str]:
    from bench.evict import variant_names

    if not args.variant:
        return variant_names()
    names = [v.strip() for item in args.variant for v in item.split(",") if v.strip()]
    unknown = [v for v in names if v not in variant_names()]
    if unknown:
        raise HotbenchError(f"unknown variant {', '.join(unknown)}; choose from {', '.join(variant_names())}")
    return names


def _list(params) -> int:
    from bench.evict import VARIANTS, detector_for, unavailable

    for name, cls in VARIANTS.items():
        reason = unavailable(name, params)
        print(f"{name:12} blocks {cls.blocks:13} detector {detector_for(name, params):16} "
              f"{'available' if reason is None else 'unavailable: ' + reason}")
        print(f"{'':12} {cls.summary}")
    return 0


def _fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def check(args: argparse.Namespace):
    """Every argument, checked before anything runs: (EvictParams, variant names)."""
    import workloads
    from bench import arena, results, trackers
    from bench.evict import EvictParams, placement_of

    if args.repeats < 1 or args.threads < 1 or args.rounds < 1 or args.batch < 1:
        raise HotbenchError("--repeats, --threads, --rounds and --batch must be at least 1")
    if args.interval <= 0 or args.hold < 0:
        raise HotbenchError("--interval must be positive and --hold at least 0")
    try:
        workloads.check_seeds(args.seed, args.repeats)
    except workloads.WorkloadError as e:
        raise HotbenchError(str(e)) from None
    for name in ("hot_frac", "hot_weight", "write_ratio"):
        if not 0 <= getattr(args, name) <= 1:
            raise HotbenchError(f"--{name.replace('_', '-')} must be in [0, 1], got {getattr(args, name)}")
    problem = arena.size_problem(arena.parse_size(args.size), args.backing)
    if problem:
        raise HotbenchError(f"--size {args.size}: {problem}")
    if args.detector != "auto":
        trackers.get(args.detector)
    if args.store and not os.path.isdir(args.store):
        raise HotbenchError(f"--store {args.store}: not a directory")
    if args.out and args.out.suffix not in (".json", ".csv", ".parquet"):
        raise HotbenchError(f"--out {args.out}: use a .json, .csv or .parquet name")
    if args.out and args.out.exists() and not args.replace:
        raise HotbenchError(f"{args.out} exists; pass --replace to overwrite it")
    if args.out:
        results.check_out_file(args.out)
    params = EvictParams(size=args.size, backing=args.backing, threads=args.threads, rounds=args.rounds,
                         interval=args.interval, hold=args.hold, rescue=args.rescue, detector=args.detector,
                         hot_frac=args.hot_frac, hot_weight=args.hot_weight, write_ratio=args.write_ratio,
                         batch=args.batch, seed=args.seed, store=args.store, placement=args.placement)
    placement_of(params)  # other-cpu needs two CPUs this process may use
    return params, _variants(args)


def main(args: argparse.Namespace) -> int:
    from bench import interrupts, recovery, results, runlock, trackers
    from bench.evict import placement_of, run_matrix, summarize

    params, variants = check(args)
    if args.list:
        return _list(params)
    detector = trackers.get(args.detector) if args.detector != "auto" else None
    recovery.command_lock(exclusive=bool(detector and detector.global_state), wait=not runlock.no_wait(args.no_wait),
                          what="hotbench evict")
    rows: list[dict] = []
    placed = placement_of(params)
    where = {role: "any CPU" if cpus is None else "CPU " + ",".join(map(str, sorted(cpus)))
             for role, cpus in (("vcpu", placed.toucher), ("handler", placed.server))}
    print(f"placement {placed.name}: vCPU threads on {where['vcpu']}, fault handler on {where['handler']}",
          file=sys.stderr, flush=True)

    def progress(result) -> None:
        print(f"  {result.variant}: {result.status}", file=sys.stderr, flush=True)
        rows.extend(result.rows)
        if args.out:  # every finished variant on disk at once: an interrupted run keeps them
            results.write_eviction(args.out, rows)

    with interrupts.deferred("finishing the current eviction round"):
        try:
            run_matrix(variants, params, args.repeats, progress=progress)
        except interrupts.Interrupted as e:
            kept = f"; the {len(rows)} rows of the variants that finished are in {args.out}" if args.out else ""
            raise e.saying(f"interrupted by {e.signame}{kept}") from None
    # under 'hotbench vm --icount' windows and stalls are guest instructions (bench/clock.py)
    clk = clock.current()
    ms, us = clk.scaled_unit("ms"), clk.scaled_unit("us")
    print(f"{'variant':12} {'evicted/s':>10} {'evicted':>8} {'window':>{6 + len(ms)}} {'refaults':>9} "
          f"{'touched':>8} {'seen':>5} {'p99 stall':>{8 + len(us)}} {'max stall':>{8 + len(ms)}} {'lost':>5} "
          f"{'torn':>5} {'misp':>5}  verdict")
    failed = False
    for s in summarize(rows):
        if s["status"] != "ok":
            print(f"{s['variant']:12} {s['status']}")
            continue
        window = None if s["window_ms"] is None else clk.to_units(s["window_ms"])
        print(f"{s['variant']:12} {_fmt(s['evicted_per_s'], '10.0f')} {s['evicted_total']:8d} "
              f"{_fmt(window, '6.1f')}{ms} {s['refaults']:9d} {s['window_touched']:8d} {s['window_seen']:5d} "
              f"{clk.to_units(s['stall_p99_us']):8.0f}{us} {clk.to_units(s['stall_max_ms']):8.1f}{ms} "
              f"{s['lost_pages']:5d} {s['torn_pages']:5d} {s['misplaced_pages']:5d}  {s['verdict']}")
        if s["verdict"] != "clean" and s["variant"] not in EXPECTED_TO_LOSE:
            failed = True
    if failed:
        print("error: a variant that intercepts accesses lost data (see the rows above)", file=sys.stderr)
        return 3
    return 0
