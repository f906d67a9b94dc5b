"""``hotbench run``: trackers x workloads in lockstep, scored against exact ground truth.

Exit status: 0 when every planned cell ran, 1 on bad input, when nothing could run or when a
cell ended in an error (the watchdog's included); 130, 143 or 129 when SIGINT, SIGTERM or
SIGHUP stopped it (after the interval in flight; the results written so far stay valid).
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


def _workload_specs(text: str) -> list[str]:
    import workloads  # a spec's own parameters are comma-separated too

    return workloads.split_specs(text)


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _cpus(text: str) -> list[int]:
    """'0', '0,2' or '0-3' -> sorted CPU numbers."""
    cpus = set()
    try:
        for part in _csv(text):
            first, _, last = part.partition("-")
            cpus.update(range(int(first), int(last or first) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CPUs such as 0, 0,2 or 0-3, got {text!r}") from None
    if not cpus:
        raise argparse.ArgumentTypeError(f"expected CPUs such as 0, 0,2 or 0-3, got {text!r}")
    return sorted(cpus)


def _pin(cpus: list[int] | None) -> None:
    """Run every thread of this run (workload and tracker alike) on *cpus*.

    Why: a TLB flush waits for an IPI to every other CPU the process has run on, and a CPU
    idling in HLT (the workload's, between lockstep intervals, in a VM) answers slowly, so an
    unpinned run's arm and collect include that wait; pinned, they compare with pinned micro
    benchmarks. Threads created afterwards inherit the mask.
    """
    if cpus is None:
        return
    allowed = os.sched_getaffinity(0)
    if not set(cpus) <= allowed:
        raise HotbenchError(f"--affinity {','.join(map(str, cpus))}: this process may run only on CPUs "
                            f"{','.join(map(str, sorted(allowed)))}")
    os.sched_setaffinity(0, cpus)


def _seconds(text: str) -> list[float]:
    """'100ms,1s,2' -> seconds."""
    out = []
    for item in _csv(text):
        scale = 1e-3 if item.endswith("ms") else 1.0
        try:
            out.append(float(item.removesuffix("ms").removesuffix("s")) * scale)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected durations like 100ms or 2s, got {item!r}") from None
    return out


def _watchdog(text: str):
    from bench.watchdog import Watchdog

    if text == "off":
        return Watchdog(enabled=False)
    try:
        seconds = float(text.removesuffix("s"))
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds or 'off', got {text!r}")
    return Watchdog(limit=seconds)


def set_argparser(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("Options taking lists (--size, --backing, --threads, --accesses, --cycle, --interfere) sweep: "
                     "every combination becomes a cell, all in one results directory.")
    parser.add_argument("--trackers", type=_csv, help="comma-separated trackers (default: every one available here)")
    parser.add_argument("--workloads", type=_workload_specs, help="comma-separated workload specs, e.g. "
                        "uniform,zipf:s=1.2,scatter=1,hotcold (default: uniform,zipf,hotcold,phase; concurrent "
                        "mode: hotcold)")
    parser.add_argument("--backing", type=_csv, default=["auto"], help="anon|shmem|thp|hugetlb, or auto: anon "
                        "where the tracker supports it, else its own (default auto)")
    parser.add_argument("--size", type=_csv, default=[DEFAULT_SIZE], help=f"arena size(s), e.g. 256M or 256M,1G,4G "
                        f"(default {DEFAULT_SIZE})")
    parser.add_argument("--intervals", type=int, default=DEFAULT_INTERVALS, help=f"lockstep intervals per cell "
                        f"(default {DEFAULT_INTERVALS})")
    parser.add_argument("--repeats", type=int, default=1, help="repeats per cell, each with seed+repeat (default 1)")
    parser.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    parser.add_argument("--accesses", type=_ints, default=[None], help="accesses per lockstep interval, the "
                        "interval's length (default: the workload's)")
    parser.add_argument("--threads", type=_ints, default=[None], help="workload threads (default: the workload's)")
    parser.add_argument("--write-ratio", type=float, help="fraction of accesses that write (default: the workload's)")
    parser.add_argument("--mode", choices=("lockstep", "concurrent"), default="lockstep",
                        help="lockstep: accuracy, tracker and workload alternate per interval; concurrent: overhead, "
                        "a tracker thread cycles while workload threads run, A/B against a no-tracker baseline")
    parser.add_argument("--duration", type=float, default=5.0, help="concurrent: seconds per A or B run (default 5)")
    parser.add_argument("--cycle", type=_seconds, default=[None], help="concurrent: time between arm and collect, "
                        "e.g. 100ms (default 100ms)")
    parser.add_argument("--batch", type=int, default=10_000, help="concurrent: accesses per timed batch (default 10000)")
    parser.add_argument("--pairs", type=int, default=2, help="concurrent: A/B pairs per cell (default 2)")
    parser.add_argument("--interfere", type=_csv, default=["none"], metavar="NAME[,NAME...]",
                        help="lockstep: interference(s) per interval, "
                        "e.g. none,tlb-flush: tlb-flush (after arm, flush the arena's TLB entries by an mprotect "
                        "round trip; accessed-bit trackers only), mglru-age (before collect, age this process's "
                        "memcg once through debugfs lru_gen; needs MGLRU on: --mglru on) (default none)")
    parser.add_argument("--pages", action="store_true", help="lockstep: also keep every interval's page bitmaps "
                        "(truth and observation) in pages.parquet/, for heatmaps")
    parser.add_argument("--kernel-events", action="store_true", help="count each phase's kernel events (page "
                        "faults, TLB flushes, IPIs and the tracker's own: rmap walks, page-table walks, ...) with "
                        "perf_event_open; samples columns kev.<phase>.<event>; needs root and tracefs (counting adds "
                        "a little to the timings)")
    parser.add_argument("--kernel-profile", type=_csv, metavar="PHASES", help="lockstep: profile these phases "
                        "(arm, workload, collect): top kernel functions and their share of the phase (of its "
                        "instructions under 'hotbench vm --icount'), in profile.parquet; the ftrace function profiler "
                        "where the kernel has it, else cpu-clock sampling with callchains through perf_event_open "
                        "(docs/kernel-work.md); profiled timings are not costs")
    parser.add_argument("--mglru", choices=("on", "off"), help="set MGLRU (lru_gen/enabled) for the run, then restore")
    parser.add_argument("--numa-balancing", choices=("on", "off"), help="set kernel.numa_balancing for the run, then restore")
    parser.add_argument("--thp", choices=("always", "madvise", "never"), help="set the THP mode for the run, then restore")
    parser.add_argument("--fault-around", metavar="4K|64K|BYTES", help="set debugfs fault_around_bytes for the run "
                        "(4K: no fault-around; a power of two), then restore; mounts debugfs for the run if needed")
    parser.add_argument("--affinity", type=_cpus, metavar="CPUS", help="run every thread on these CPUs (e.g. 0): "
                        "no TLB-flush IPIs to CPUs the workload left idle; recorded in the manifest")
    parser.add_argument("--placement", choices=("auto", "same-cpu", "other-cpu", "unpinned"), default="auto",
                        help="fault-served trackers (uffd-minor, shmem-zap-minor): where the fault server and the "
                        "workload run. same-cpu: both on one CPU (each wake-up a local switch); other-cpu: on two "
                        "(each wake-up crosses CPUs: on a VM a halted vCPU's VM exit); unpinned: the scheduler "
                        "decides; auto: same-cpu for one workload thread, else unpinned (default). Recorded per row "
                        "and in the manifest")
    parser.add_argument("--watchdog", type=_watchdog, default=None, metavar="SECONDS|off",
                        help="end a cell that makes no progress for SECONDS (recorded as an error; the run goes on); "
                        "default: 20 x the step's expected time, at least 60 s (600 s under emulation)")
    parser.add_argument("--no-wait", action="store_true", help="refuse in one line, instead of waiting, when another "
                        "run holds the run lock this one needs (one that changes kernel knobs, or, for a run that "
                        "changes them, any run)")
    parser.add_argument("--out", type=Path, default=Path("results"), metavar="DIR",
                        help="where results go: a new DIR/<run-id>/ per run, DIR/latest pointing at the newest "
                             "(default ./results)")
    parser.add_argument("--list", action="store_true", help="list trackers and workloads, then exit")


def _list() -> int:
    import workloads
    from bench import trackers

    for name, cls in trackers.registry().items():
        why = cls.unavailable()
        print(f"{name:18} {cls.granularity:9} {cls.sees:12} {'available' if not why else 'unavailable: ' + why}")
    for name, why in trackers.broken().items():  # a module or plug-in that could not be registered
        print(f"{name:18} {'-':9} {'-':12} not registered: {why}")
    print("workloads:", ", ".join(workloads.names()))
    return 0


def _overhead(args: argparse.Namespace):
    if args.mode != "concurrent":
        return None
    from bench.concurrent import Overhead

    if args.duration <= 0 or args.batch < 1 or args.pairs < 1:
        raise HotbenchError("--duration must be positive, --batch and --pairs at least 1")
    return Overhead(duration=args.duration, batch=args.batch, pairs=args.pairs)


def _run(args: argparse.Namespace, sizes: list[int], applied: dict) -> tuple[list[dict], Path]:
    from bench import environment, interference, interrupts, results, runner
    from bench.watchdog import Watchdog

    overhead = _overhead(args)
    plan = runner.make_plan(args.trackers, _workloads(args), args.backing, sizes,
                            args.intervals, args.repeats, args.seed, threads=args.threads, accesses=args.accesses,
                            cycles=args.cycle, write_ratio=args.write_ratio, interferences=args.interfere,
                            placement=args.placement)
    for name, reason in plan.skipped.items():
        print(f"skip {name}: {reason}", file=sys.stderr)
    if not plan.cells:
        if any(key in interference.REGISTRY or " + " in key for key in plan.skipped):
            raise HotbenchError("nothing to run: no requested tracker and interference can run together here "
                                "(see the skip lines above)")
        hint = " (most mechanisms need root: run as root)" if os.geteuid() != 0 else ""
        raise HotbenchError(f"nothing to run: no requested tracker is available here{hint}; see 'hotbench probe'")
    estimate = runner.estimate_seconds(plan, overhead)
    if estimate > 60:
        print(f"{len(plan.cells)} cells, estimated {estimate / 60:.0f} min", file=sys.stderr)
    interrupts.check()  # a signal during planning: stop before anything is written
    run_id = results.new_run_id()
    run_dir = results.create_run_dir(args.out, run_id)
    manifest = {"run_id": run_id, "command": results.command_line(), "git_commit": results.git_commit(),
                "mode": args.mode, "overhead": vars(overhead) if overhead else None, "settings": applied,
                "environment": environment.describe(), **runner.plan_manifest(plan)}
    try:
        with _attribution(args) as events:
            for note in events.notes() if events else ():
                print(note, file=sys.stderr)
            return runner.run_plan(plan, run_dir, manifest, overhead, keep_pages=args.pages,
                                   watchdog=args.watchdog or Watchdog(), events=events), run_dir
    except Interrupted as e:
        raise e.saying(f"interrupted by {e.signame}; the tracker was stopped and partial results kept in "
                       f"{run_dir}") from None


def _workloads(args: argparse.Namespace) -> list[str]:
    from bench import runner

    return args.workloads or (["hotcold"] if args.mode == "concurrent" else list(runner.DEFAULT_WORKLOADS))


def _changes_global_state(args: argparse.Namespace, requested: dict[str, str]) -> bool:
    """Does this run change global kernel state (a setting, or a tracker that does)? Then it holds
    the run lock exclusively."""
    from bench import trackers

    # the function profiler (--kernel-profile) is one switch for the whole machine
    return bool(requested or args.kernel_profile or trackers.changing_global_state(args.trackers))


def check(args: argparse.Namespace, here: bool = True) -> tuple[list[int], dict[str, str]]:
    """Every input of the run, checked before anything exists or changes: (sizes, settings
    requested). With *here* False only what no kernel would accept is refused, not what this
    one lacks (room for the sizes, a knob's file): experiments check their run steps so, and
    drop what this kernel cannot run when the step comes."""
    from bench import arena, interference, runner, settings

    sizes = [arena.parse_size(s) for s in args.size]
    if here:
        runner.check_sizes(sizes)
    elif any(size <= 0 for size in sizes):
        raise HotbenchError(f"--size must be positive, got {','.join(args.size)}")
    if args.mode == "concurrent" and any(name != interference.NONE for name in args.interfere):
        raise HotbenchError("--interfere applies to lockstep runs only; drop it or use --mode lockstep")
    _overhead(args)
    _check_profile(args)
    runner.check_inputs(args.trackers, _workloads(args), args.backing, sizes, args.intervals, args.repeats,
                        threads=args.threads, accesses=args.accesses, write_ratio=args.write_ratio,
                        interferences=args.interfere, seed=args.seed)
    requested = {name: getattr(args, name.replace("-", "_")) for name in settings.SETTINGS}
    requested = {name: choice for name, choice in requested.items() if choice}
    (settings.validate if here else settings.check_choices)(requested)
    return sizes, requested


_PROFILED_PHASES = ("arm", "workload", "collect")


def _check_profile(args: argparse.Namespace) -> None:
    unknown = [p for p in args.kernel_profile or () if p not in _PROFILED_PHASES]
    if unknown:
        raise HotbenchError(f"--kernel-profile {','.join(unknown)}: choose phases from {', '.join(_PROFILED_PHASES)}")
    if args.kernel_profile and args.mode == "concurrent":
        raise HotbenchError("--kernel-profile profiles lockstep phases (the profiler sees every CPU, and a concurrent "
                            "run's workload never stops); drop it or use --mode lockstep")


def _attribution(args: argparse.Namespace):
    """The run's kernel-work session (entered: it may mount tracefs), or a context of None."""
    import contextlib

    from bench import attribution

    if not (args.kernel_events or args.kernel_profile):
        return contextlib.nullcontext()
    return attribution.Session(args.kernel_events, tuple(args.kernel_profile or ()))


def main(args: argparse.Namespace) -> int:
    if args.list:
        return _list()
    from bench import interrupts, recovery, runlock, settings

    sizes, requested = check(args)
    _pin(args.affinity)
    recovery.command_lock(exclusive=_changes_global_state(args, requested), wait=not runlock.no_wait(args.no_wait),
                          what="hotbench run" + "".join(f" --{k} {v}" for k, v in requested.items()))
    # Deferred: a signal never lands between a knob's change and its restore; the run stops
    # at its next safe point and the settings are restored before the command exits.
    with interrupts.deferred("finishing the current interval"), settings.applied(requested) as applied:
        rows, run_dir = _run(args, sizes, applied)  # planned under the settings: THP mode decides whether 'thp' is possible
    import pandas as pd

    from analysis.tables import overhead_text, summary_text

    frame = pd.DataFrame(rows)
    if args.mode == "concurrent":
        print(overhead_text(frame))
    elif "interfere" in frame and set(frame["interfere"]) != {"none"}:
        for name, part in frame.groupby("interfere", sort=False):
            print(f"interference: {name}\n{summary_text(part)}\n")
    else:
        print(summary_text(frame))
    errors = [r for r in rows if str(r.get("status", "")).startswith("error")]
    for r in errors:
        print(f"{r['tracker']} x {r['workload_spec']}: {r['status']}", file=sys.stderr)
    print(f"results: {run_dir}")
    return 1 if errors else 0
