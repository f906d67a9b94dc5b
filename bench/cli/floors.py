"""``hotbench floors``: learn the noise floors 'hotbench compare' judges by, from A/A runs, and
check them on others (``analysis/floors.py``, ``analysis/aa.py``; the file: ``bench/nightly/floors.py``).

    hotbench nightly --quick --history ~/aa        # ten times, one build, nothing else changed
    hotbench floors --history ~/aa                 # learn: every metric's floor, per family the largest
    hotbench floors --history ~/aa --write         # ... into the suite's floors file (bench/suites/default.floors.toml)
    hotbench floors --check RUN1 RUN2 RUN3 RUN4    # A/A check: compare 1 with 2, 3 with 4; nothing may change

RUNs are results directories or history references (run ids, latest~N); without any, every
complete run of the history store. The clock is the runs' own (``environment.clock``, "wall"
unless a run says otherwise): each clock has its own floors.

Exit status: 0 learnt (or, with --check, no pair changed); 1 with --check, some pair called
noise a change or a regression; 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.errors import HotbenchError


def set_argparser(parser: argparse.ArgumentParser) -> None:
    from analysis.floors import MARGIN
    from bench.nightly.store import default_history_dir
    from bench.nightly.suite import DEFAULT_SUITE

    parser.add_argument("runs", nargs="*", metavar="RUN", help="A/A runs of one build (default: every complete run "
                        "of the history store)")
    parser.add_argument("--history", type=Path, metavar="DIR",
                        help=f"history store (default $HOTBENCH_HISTORY, else {default_history_dir()})")
    parser.add_argument("--suite", default=DEFAULT_SUITE, metavar="NAME|FILE",
                        help=f"the suite whose floors file --write updates and --check reads (default {DEFAULT_SUITE})")
    parser.add_argument("--margin", type=float, default=MARGIN,
                        help=f"floor = MARGIN x the largest change between two A/A runs (default {MARGIN})")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--write", action="store_true", help="write the learnt floors into the suite's floors file")
    where.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the learnt floors into FILE")
    where.add_argument("--check", action="store_true", help="do not learn: compare the runs two by two (1-2, 3-4, "
                       "...) with the suite's floors (or --floors) and count what changed")
    parser.add_argument("--floors", type=Path, metavar="FILE", help="--check: judge by this floors file")
    parser.epilog = "exit status: 0 learnt, or --check found no change; 1 --check found one; 2 bad input"


class FloorsError(HotbenchError):
    exit_status = 2


def _run_dirs(args: argparse.Namespace) -> list[Path]:
    from bench.nightly import store as nightly_store

    store = args.history or nightly_store.default_history_dir()
    if args.runs:
        from analysis.compare import load_run

        return [load_run(ref, store).path for ref in args.runs]
    if not Path(store).is_dir():
        raise FloorsError(f"no runs given and no history store at {store} (give RUN... or --history DIR)")
    entries = [e for e in nightly_store.rebuild_index(store) if e["status"] == "complete"]
    return [Path(store) / e["dir"] for e in entries]


def _learn(args: argparse.Namespace, run_dirs: list[Path]) -> int:
    from analysis.compare import load_run
    from analysis.floors import learn
    from analysis.tables import format_table
    from bench.nightly import floors
    from bench.nightly.suite import load_suite

    if args.margin < 1:
        raise FloorsError(f"--margin {args.margin:g}: a floor below the largest A/A change would call noise a change")
    runs = [load_run(d) for d in run_dirs]
    clock, table = learn(runs, args.margin)
    learnt = table["floors"]
    families = [k for k in learnt if ":" not in k]
    rows = [[f, f"{learnt[f]:.3g}", str(sum(k.startswith(f + ":") for k in learnt))] for f in families]
    print(format_table(["family", "floor", "metrics"], rows, right=[False, True, True]))
    print(f"clock {clock}: {table['runs']} run(s), {table['pairs']} pair(s), margin {table['margin']:g}, "
          f"build {table['commit'][:12]}, {', '.join(table['suites'])}")
    target = args.output or (floors.floors_path(load_suite(args.suite).path) if args.write else None)
    if target is None:
        print("(not written: --write puts them into the suite's floors file, -o FILE elsewhere)")
        return 0
    header = (f"Noise floors for 'hotbench compare', per clock (analysis/floors.py). Written by 'hotbench floors';\n"
              f"[<clock>.floors] is learnt from A/A runs and rewritten when learnt again; [<clock>.priors] is set by\n"
              f"hand (metrics no A/A run here can measure) and kept.")
    floors.write(target, clock, table, header)
    print(f"written: {target} [{clock}]")
    return 0


def _check(args: argparse.Namespace, run_dirs: list[Path]) -> int:
    from analysis import aa
    from analysis.tables import format_table
    from bench.nightly import floors
    from bench.nightly.suite import load_suite

    if len(run_dirs) < 2:
        raise FloorsError("--check needs at least two runs (pairs: 1-2, 3-4, ...)")
    judged_by = floors.load(args.floors) if args.floors else load_suite(args.suite).floors
    pairs = aa.check_pairs(run_dirs, judged_by)
    rows = [[p["a"], p["b"], str(p["metrics"]), *(str(p["counts"][v]) for v in ("regression", "changed",
                                                                              "improvement", "inconclusive"))]
            for p in pairs]
    print(format_table(["A", "B", "metrics", "regressions", "changed", "improved", "inconclusive"], rows,
                       right=[False, False, True, True, True, True, True]))
    flagged = [(p, f) for p in pairs for f in p["flagged"] if f["verdict"] != "inconclusive"]
    for pair, f in flagged:
        print(f"{f['verdict']}: {f['metric']} ({pair['a']} -> {pair['b']}; effect {max(f['worse'], f['better']):.3g}, "
              f"floor {f['floor']})", file=sys.stderr)
    print(f"{len(pairs)} A/A pair(s): {len(flagged)} metric(s) called changed; floors: {judged_by.source}")
    return 1 if flagged else 0


def main(args: argparse.Namespace) -> int:
    run_dirs = _run_dirs(args)
    return _check(args, run_dirs) if args.check else _learn(args, run_dirs)
