"""``hotbench`` command line: one table of subcommands, each a module with
``set_argparser(parser)`` and ``main(args) -> int`` (damo style).

Heavy modules (numba, pandas, matplotlib) are imported inside each ``main`` so
``--help`` and ``probe`` start fast. Expected failures raise ``HotbenchError``;
they are caught here once and printed as a single ``error:`` line. SIGINT, SIGTERM and
SIGHUP follow one policy (``bench.interrupts``): commands exit 130, 143 or 129 after
cleaning up, saying which signal ended them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

from bench import __version__, interrupts, numba_cache
from bench.errors import HotbenchError, Interrupted

# (name, module under bench.cli, one-line help), grouped by purpose.
COMMANDS = [
    # what this kernel can do
    ("probe", "probe", "which hotness-tracking mechanisms this kernel has, and exactly why not otherwise"),
    ("restore", "restore", "undo the kernel state killed hotbench processes left behind (knobs, mounts, kdamonds, cgroups)"),
    # measuring
    ("run", "run", "run trackers against seeded workloads and score them against exact ground truth"),
    ("harness", "harness", "benchmark the harness: workload loop vs bare loop, tracker collect vs raw primitive"),
    ("micro", "micro", "pyperf micro-benchmarks of every primitive on this kernel: arm/scan per GiB, faults per page"),
    ("evict", "evict", "the VMM eviction workflow under concurrent vCPU writes: stalls, refaults, integrity-checked"),
    ("experiment", "experiment", "named experiments for the list's open questions: run, then a report opening with the answer"),
    # other kernels
    ("vm", "vm", "boot a kernel under QEMU with this checkout visible and run one command inside"),
    ("kernel", "kernel", "fetch, build and list test kernels for 'hotbench vm'"),
    # reading results
    ("show", "show", "what a results directory holds: command, kernel, clock, status, cells, skips, where the files are"),
    ("export", "export", "a results directory's tables (samples, summary, latency, micro) as CSV"),
    ("report", "report", "report.md, report.html and CSV tables from results directories, merged and compared by kernel"),
    ("plot", "plot", "slide-ready figures from results directories: accuracy, cost, Pareto, heatmaps, CDFs"),
    # tracking over time
    ("nightly", "nightly", "run the fixed, versioned nightly suite and append it to a history store"),
    ("compare", "compare", "compare two runs metric by metric with significance; non-zero exit on a regression"),
    ("floors", "floors", "learn the noise floors compare judges by from A/A runs of one build, or check them"),
    ("history", "history", "figures of every metric over time with step changes marked, and an HTML index page"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotbench", description="Benchmark Linux page hotness-tracking mechanisms: accuracy and cost.")
    parser.add_argument("--version", action="version", version=f"hotbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_text in COMMANDS:
        mod = importlib.import_module(f"bench.cli.{module}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.set_argparser(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: list[str] | None = None) -> int:
    interrupts.install()
    numba_cache.ensure_writable()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    try:
        return int(args._module.main(args) or 0)
    except HotbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return getattr(e, "exit_status", 1)
    except KeyboardInterrupt as e:  # bench.errors.Interrupted, or a Ctrl-C before the policy was in place
        if not isinstance(e, Interrupted):
            e = Interrupted(signal.SIGINT)
        print(f"error: {e}", file=sys.stderr)
        return e.exit_status
    except BrokenPipeError:  # 'hotbench ... | head': the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
