"""``hotbench experiment``: run a named experiment (a question from the RWP review thread) and
write its report, which opens with the question and the answer generated from the data.

  hotbench experiment --list
  hotbench experiment NAME [--quick] [--out DIR]
  hotbench experiment NAME --from DIR [DIR ...] [--out DIR]   # report again, merging outputs
                                                              # (e.g. the host's and a VM's)

Exit status: 0 when the steps ran (mechanisms this kernel lacks are skipped with their reason
and the report says which ``hotbench vm`` kernel runs them); 1 on bad input or when a step
failed; 2 when nothing at all could run on this kernel; 130 when interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.errors import HotbenchError

DEFAULT_ROOT = Path("results") / "experiments"


def set_argparser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", metavar="NAME", help="the experiment ('--list' shows them)")
    parser.add_argument("--list", action="store_true", help="list the experiments, one line each, then exit")
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats: a couple of minutes here")
    parser.add_argument("--out", type=Path, help="output directory (default results/experiments/NAME-RUNID; "
                        "with --from, the first DIR)")
    parser.add_argument("--from", dest="sources", nargs="+", type=Path, metavar="DIR",
                        help="do not run: build the report from these experiment outputs (merged)")


def _list() -> int:
    from bench import experiments

    for name in experiments.names():
        print(f"{name:24} {experiments.load(name).title}")
    return 0


def _print_summary(out: Path) -> None:
    text = (out / "report.md").read_text()
    answer = next((line for line in text.splitlines() if line.startswith("Answer. ")), "")
    print(answer)
    print(f"report: {out / 'report.md'} ({out / 'report.html'})")


def main(args: argparse.Namespace) -> int:
    if args.list:
        return _list()
    if not args.name:
        raise HotbenchError("name an experiment, or pass --list to see them")
    from bench import experiment, experiments, results

    spec = experiments.load(args.name)
    if args.sources:
        quick = any(experiment.load_record(src).get("quick") for src in args.sources)
        out = args.out or args.sources[0]
        return _report(spec, args.sources, out, quick)
    out = args.out or DEFAULT_ROOT / f"{spec.name}-{results.new_run_id()}"
    record = experiment.run(spec, out, args.quick)
    status = _report(spec, [out], out, args.quick)
    statuses = [s["status"] for s in record["steps"]]
    if all(s.startswith("skipped") for s in statuses):
        return 2
    return 1 if any(s.startswith("failed") for s in statuses) else status


def _report(spec, sources: list[Path], out: Path, quick: bool) -> int:
    from analysis import experiment_report

    experiment_report.build(spec, sources, out, quick)
    _print_summary(out)
    print(f"results: {out}", file=sys.stderr)
    return 0
