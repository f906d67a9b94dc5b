"""``hotbench compare A B``: every metric of two runs, LKP-style ``%change ± %stddev`` with
significance, judged against per-metric regression thresholds (``analysis/compare.py``).

    hotbench compare results/RUN-A results/RUN-B
    hotbench compare latest~1 latest                  # history entries (default store)
    hotbench compare --history DIR 20261126T0348 latest --threshold micro=30% --json

A and B are results directories (a nightly run or any 'hotbench run'), or references into the
history store: a run id, a unique prefix of one, ``latest`` (the newest run of this host) or
``latest~N`` (N runs before it in the same series).

Each metric is judged regression, improvement, changed, inconclusive or unchanged: changed
only when the difference is statistically supported and beyond the metric's noise floor
(learnt from A/A runs: 'hotbench floors'), a regression when it is also beyond the
regression threshold; too few samples to decide is inconclusive (``analysis/compare.py``).

Exit status: 0 no metric regressed beyond its threshold; 1 at least one did (each named on
stderr as "regression: METRIC ..."); 2 the runs could not be compared (bad input).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.errors import HotbenchError


class CompareError(HotbenchError):
    exit_status = 2


def _threshold(text: str) -> tuple[str, float]:
    from bench.nightly.suite import parse_threshold

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected METRIC=VALUE (e.g. micro=30% or recall:uffd-wp/*=0.02), "
                                         f"got {text!r}")
    try:
        return key.strip(), parse_threshold(value, key.strip())
    except HotbenchError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def set_argparser(parser: argparse.ArgumentParser) -> None:
    from bench.nightly.store import default_history_dir

    parser.add_argument("a", metavar="A", help="reference run: a results directory or a history entry")
    parser.add_argument("b", metavar="B", help="run under test: a results directory or a history entry")
    parser.add_argument("--history", type=Path, metavar="DIR",
                        help=f"history store for run ids and latest[~N] (default $HOTBENCH_HISTORY, else "
                             f"{default_history_dir()})")
    parser.add_argument("--threshold", type=_threshold, action="append", default=[], metavar="METRIC=VALUE",
                        help="override a regression threshold: METRIC is a family (micro, collect_ns, recall…), a "
                             "glob over metric names or one name; VALUE a fraction or a percentage (repeatable)")
    parser.add_argument("--floors", type=Path, metavar="FILE", help="judge by the noise floors in FILE (default: "
                        "those B's suite embedded, else A's, else the packaged suite's; see 'hotbench floors')")
    parser.add_argument("--all", action="store_true", help="list every metric, not only the changed ones")
    parser.add_argument("--json", action="store_true", help="the whole comparison as JSON on stdout")
    parser.epilog = "exit status: 0 no regression; 1 regression(s), named on stderr; 2 cannot compare"


def _amount(r: dict) -> str:
    fmt = (lambda v: f"{v:+.3f}") if r["kind"] == "absolute" else (lambda v: f"{v:+.1%}")
    if r["test"] == "mann-whitney":
        return f"{fmt(r['change_median'])} median, {fmt(r['change_best'])} best"
    return f"{fmt(r['change'])} mean"


def main(args: argparse.Namespace) -> int:
    from analysis import compare

    try:
        a = compare.load_run(args.a, args.history)
        b = compare.load_run(args.b, args.history)
    except HotbenchError as e:
        raise CompareError(str(e)) from None
    if a.path.resolve() == b.path.resolve():
        print(f"warning: A and B are the same run ({a.run_id})", file=sys.stderr)
    floors = None
    if args.floors:
        from bench.nightly import floors as floors_mod

        if not args.floors.is_file():
            raise CompareError(f"--floors {args.floors}: no such file")
        floors = floors_mod.load(args.floors)
    result = compare.compare(a, b, dict(args.threshold), floors=floors)
    if not result.rows and not result.not_comparable:
        why = "; ".join(result.missing[:3]) + ("; ..." if len(result.missing) > 3 else "")
        raise CompareError(f"{a.run_id} and {b.run_id} have no metric in common" + (f" ({why})" if why else ""))
    if args.json:
        print(json.dumps(compare.as_json(result), indent=2))
    else:
        print(compare.text(result, show_all=args.all))
    for r in result.regressions:
        print(f"regression: {r['metric']} {_amount(r)} (threshold {r['threshold']:g} from "
              f"'{r['threshold_key']}', noise floor {r['floor']:g} from '{r['floor_key']}')", file=sys.stderr)
    return 1 if result.regressions else 0
