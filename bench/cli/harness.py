"""``hotbench harness``: benchmarks of the harness itself — workload loop vs a bare touch loop,
each tracker's arm and collect vs the raw kernel primitive they use, and each fault-served
tracker's cost per fault in a run vs the micro round trip, per thread placement. Prints
numbers (in instructions under ``hotbench vm --icount``); judges nothing."""

from __future__ import annotations

import argparse


def set_argparser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", default="256M", help="arena size for the loop benchmark (default 256M)")
    parser.add_argument("--collect-size", default="1G", help="arena size for the collect benchmark (default 1G)")
    parser.add_argument("--accesses", type=int, default=4_000_000, help="accesses per timed loop (default 4M)")
    parser.add_argument("--fraction", type=float, default=0.01, help="fraction of pages written per interval "
                        "in the collect benchmark (default 0.01)")
    parser.add_argument("--repeats", type=int, default=7, help="A/B pairs per measurement (default 7)")
    parser.add_argument("--fault-size", default="16M", help="arena of the fault round trips and in-run cells "
                        "(default 16M)")
    parser.add_argument("--fault-accesses", type=int, default=20_000, help="accesses per in-run interval of the "
                        "fault-served trackers (default 20000)")
    parser.add_argument("--sections", default="loop,phase,fault", help="which benchmarks: loop (workload vs bare "
                        "loop), phase (arm/collect vs raw primitive), fault (fault-served trackers vs micro) "
                        "(default all three)")
    parser.add_argument("--patterns", default="uniform,hotcold,zipf,phase,masim,scan", help="workloads to time")


def _print(rows: list[dict]) -> None:
    from analysis.tables import format_table

    headers = [k for k in rows[0] if not k.startswith("_")]  # "_ratios": per-pair values, for the nightly
    cells = [[f"{r[k]:.3g}" if isinstance(r[k], float) else str(r[k]) for k in headers] for r in rows]
    print(format_table(headers, cells))


def main(args: argparse.Namespace) -> int:
    from bench import clock, interrupts, recovery, runlock, trackers
    from bench.errors import HotbenchError

    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(_SECTIONS)
    if unknown or not sections:
        raise HotbenchError(f"--sections: unknown {', '.join(sorted(unknown)) or '(none given)'}; choose from "
                            f"{', '.join(_SECTIONS)}")
    recovery.command_lock(exclusive=bool(trackers.changing_global_state()), wait=not runlock.no_wait(),
                          what="hotbench harness")
    print(f"clock: {clock.current().describe()}")
    # Deferred: no signal lands while a touch thread still writes to an arena (bench.interrupts);
    # the sections are the safe points.
    with interrupts.deferred("finishing the current measurement"):
        for name in sections:
            interrupts.check()
            _SECTIONS[name](args)
    return 0


def _loop(args: argparse.Namespace) -> None:
    from bench import clock, harness
    from bench.arena import parse_size

    if clock.current().instructions:
        # An emulated load costs an instruction, not a cache miss: nothing hides the generator's work.
        print("\nworkload loop vs bare numba touch loop, guest instructions (ratio = bare instructions / "
              "workload instructions per access: the generator's extra instructions count in full, where a "
              "native loop waits on memory and hides them; the >= 0.9 goal is for native runs)")
    else:
        print("\nworkload loop vs bare numba touch loop, thread CPU time (ratio = workload speed / bare speed; "
              "goal >= 0.9)")
    _print(harness.loop_speed(parse_size(args.size), args.patterns.split(","), args.accesses, args.repeats))


def _phase(args: argparse.Namespace) -> None:
    from bench import harness
    from bench.arena import parse_size

    print(f"\ntracker arm and collect vs their raw primitive, {args.fraction:.0%} of pages written "
          f"(ratio goal <= 1.3)")
    rows, skipped = harness.phase_cost(parse_size(args.collect_size), args.fraction, args.repeats)
    if rows:
        _print(rows)
    _skips(skipped)


def _fault(args: argparse.Namespace) -> None:
    from bench import clock, harness
    from bench.arena import parse_size

    print("\nfault-served trackers: in-run cost per fault (workload time / faults served, uniform, 3 intervals) "
          "vs the micro round trip, per thread placement (ratio goal <= 1.3)")
    rows, splits, skipped = harness.fault_cost(parse_size(args.fault_size), args.fault_accesses, args.repeats)
    if rows:
        _print(rows)
    if splits:
        unit = clock.current().scaled_unit("µs")
        print(f"\nwhere a round trip's time goes, traced ({unit} per fault, mean; tracing adds its own cost)")
        _print(splits)
    _skips(skipped)


def _skips(skipped: dict[str, str]) -> None:
    for name, reason in skipped.items():
        print(f"skip {name}: {reason}")


_SECTIONS = {"loop": _loop, "phase": _phase, "fault": _fault}
