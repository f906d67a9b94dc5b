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
import importlib
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
    if not args.sources:
        for step in spec.steps:
            check_step(step, args.quick)
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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise HotbenchError(message)


def _parsed(command: str, argv: list[str]) -> argparse.Namespace:
    module = importlib.import_module(f"bench.cli.{command}")
    parser = _Parser(prog=f"hotbench {command}")
    module.set_argparser(parser)
    return parser.parse_args(argv)


def check_step(step, quick: bool) -> None:
    """Every argument of *step* (a ``bench.experiments.Step``) as its command would check it,
    before anything exists; a HotbenchError names the step. (Trackers and variants the kernel
    lacks are not errors: they are dropped when the step runs.)"""
    from bench import experiment, micro
    from bench.cli import evict as evict_cli
    from bench.cli import run as run_cli

    argv = experiment.step_argv(step.options(quick))
    try:
        if step.command == "run":
            run_cli.check(_parsed("run", argv + ["--out", "unused"]), here=False)
        elif step.command == "evict":
            evict_cli.check(_parsed("evict", argv))
        else:
            micro.check_options(argv)
    except HotbenchError as e:
        raise HotbenchError(f"step {step.name} ({step.command}): {e}") from None


def _report(spec, sources: list[Path], out: Path, quick: bool) -> int:
    from analysis import experiment_report

    experiment_report.build(spec, sources, out, quick)
    _print_summary(out)
    print(f"results: {out}", file=sys.stderr)
    return 0
