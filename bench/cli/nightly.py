"""``hotbench nightly``: run a fixed, versioned suite and append it to a history store.

    hotbench nightly                      # suite "default", full (under 30 min), default store
    hotbench nightly --quick              # the suite's quick variant: about a minute, for CI
    hotbench nightly --history /srv/hotbench/history --suite ./my-suite.toml

A suite with a [vm] table (``--suite icount``) runs inside 'hotbench vm --icount' guests of
the cached kernels it names, one boot each, all appending to the same history store.

Exit status: 0 when every phase ran (trackers and benchmarks this kernel lacks are skipped,
not failures); 1 when a phase or a cell failed (the run is kept, status "partial"), or on
bad input or when nothing can run here; 130, 143 or 129 when SIGINT, SIGTERM or SIGHUP
stopped it (what was measured is kept, the signal named in the manifest).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def set_argparser(parser: argparse.ArgumentParser) -> None:
    from bench.nightly.store import default_history_dir
    from bench.nightly.suite import DEFAULT_SUITE

    parser.add_argument("--suite", default=DEFAULT_SUITE, metavar="NAME|FILE",
                        help=f"a suite shipped in bench/suites/ or a path to a .toml file (default {DEFAULT_SUITE})")
    parser.add_argument("--quick", action="store_true", help="the suite's quick variant: a minute or two, for CI "
                        "and smoke tests (a series of its own in the history)")
    parser.add_argument("--history", type=Path, metavar="DIR",
                        help=f"history store to append to (default $HOTBENCH_HISTORY, else {default_history_dir()})")
    parser.add_argument("--bench", metavar="REGEX", help="micro-benchmarks: replace the suite's regex (recorded in "
                        "the manifest as an override)")
    parser.add_argument("--trackers", type=lambda s: [t.strip() for t in s.split(",") if t.strip()],
                        metavar="LIST", help="accuracy and overhead: replace the suite's trackers (recorded as an "
                        "override)")
    parser.add_argument("--estimate", action="store_true", help="print the plan's estimated duration and exit")
    parser.add_argument("--no-wait", action="store_true", help="refuse in one line, instead of waiting, when another "
                        "run holds the run lock this one needs")


def _seconds(value: float) -> str:
    """A phase's duration; under --icount the guest's clock, which runs one ns per instruction
    and jumps over idle waits (9p replies): neither the host's time nor a cost."""
    from bench import clock

    return f"{value:.0f} {'guest s' if clock.current().instructions else 's'}"


def _phase_line(name: str, phase: dict) -> list[str]:
    status = phase.get("status", "?")
    if name == "micro":
        what = f"{len(phase.get('benchmarks', []))} benchmark(s)"
    else:
        what = f"{phase.get('cells_done', 0)}/{phase.get('cells', 0)} cell(s)"
        if phase.get("trackers"):
            what += ": " + ", ".join(phase["trackers"])
    unavailable = len(phase.get("skipped") or {})
    if unavailable:
        what += f"; {unavailable} unavailable here"
    return [name, status if len(status) < 60 else status[:57] + "...", what, _seconds(phase.get("seconds", 0))]


def _in_guests(suite, history: Path, args: argparse.Namespace) -> int:
    from analysis.tables import format_table
    from bench.nightly import guests

    if args.estimate:
        kernels = ", ".join(suite.vm["kernels"])
        print(f"suite {suite.name} v{suite.version} ({suite.variant}) runs in guests of {kernels}, one boot each; "
              "not estimated: under emulation its duration follows the host's load (each guest's exit line "
              "says how long it took and how much CPU QEMU used)")
        return 0
    outcomes = guests.run_in_guests(suite, history, args.quick, args.bench, args.trackers)
    rows = [[o["kernel"], o["key"] or "-", "ok" if o["status"] == 0 else f"exit {o['status']}", o["reason"] or ""]
            for o in outcomes]
    print(format_table(["kernel", "cache key", "status", "why"], rows, right=[False] * 4))
    return next((o["status"] for o in outcomes if o["status"] != 0), 0)


def main(args: argparse.Namespace) -> int:
    from analysis.tables import format_table
    from bench import clock
    from bench.nightly import run as nightly
    from bench.nightly import store as nightly_store
    from bench.nightly.suite import load_suite

    suite = load_suite(args.suite, quick=args.quick)
    history = args.history or nightly_store.default_history_dir()
    if suite.vm and not os.environ.get("HOTBENCH_IN_VM"):  # the suite runs inside guests of its kernels
        return _in_guests(suite, history, args)
    if args.estimate:
        seconds = nightly.estimate_seconds(suite, args.bench, args.trackers)
        print(f"suite {suite.name} v{suite.version} ({suite.variant}): about {seconds / 60:.1f} min here when the "
              f"machine is idle (a busy one takes up to three times as long)")
        return 0
    from bench import recovery, runlock

    recovery.command_lock(exclusive=nightly.changes_global_state(suite, args.trackers),
                          wait=not runlock.no_wait(args.no_wait), what=f"hotbench nightly {suite.name}")
    run = nightly.run_nightly(suite, history, bench=args.bench, trackers=args.trackers)
    manifest = run.manifest
    env = manifest["environment"]
    machine = nightly_store.machine_label(env, manifest["nightly"].get("machine"))
    print(f"nightly: suite {suite.name} v{suite.version} ({suite.variant}), kernel {env['kernel_release']} on "
          f"{machine}: {run.status} in {_seconds(manifest['nightly']['seconds'])}"
          + (" (the host's time: the 'hotbench vm' exit line)" if clock.current().instructions else ""))
    rows = [_phase_line(name, run.phases[name]) for name in nightly.PHASES if name in run.phases]
    print(format_table(["phase", "status", "what", "time"], rows, right=[False, False, False, True]))
    for name, phase in run.phases.items():
        for line in phase.get("errors", []):
            print(f"{name}: {line}", file=sys.stderr)
    entries = nightly_store.entries(history)
    this = next(e for e in entries if e["run_id"] == manifest["run_id"])
    before = [e for e in entries if e["status"] in nightly_store.USABLE and e["run_id"] != this["run_id"]
              and nightly_store.series_key(e) == nightly_store.series_key(this) and e["date"] <= this["date"]]
    print(f"run:     {run.run_dir}")
    print(f"history: {history} ({len(entries)} run(s); {nightly_store.INDEX})")
    if before:
        print(f"compare: hotbench compare --history {history} {before[-1]['run_id']} {this['run_id']}")
    return 0 if run.status == "complete" else 1
