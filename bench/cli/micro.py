"""``hotbench micro``: pyperf benchmarks of every primitive this kernel has (``bench/micro/``).

Everything after ``micro`` goes to pyperf's Runner unchanged — ``--fast``, ``-o FILE.json``,
``-p/--processes``, ``-n/--values``, ``-l/--loops``, ``--affinity``… plus ours (``--bench REGEX``,
``--size``, ``--fault-size``, ``--list``); ``hotbench micro --help`` prints them all. The Runner
parses them itself (and exits 1 with pyperf's ``ERROR:`` line on bad ones), so this
subcommand's parser only keeps the raw arguments: its ``parse_known_args`` is replaced by one
that stores them in ``args.micro_argv`` (argparse's REMAINDER cannot start with an option).
Workers are ``python -m bench.micro --worker …``: the same Runner, the same options.
Exit status: pyperf's (0 done, 1 error), or 130/143/129 after SIGINT/SIGTERM/SIGHUP.
"""

from __future__ import annotations

import argparse


def set_argparser(parser: argparse.ArgumentParser) -> None:
    parser.usage = "hotbench micro [--fast] [-o FILE.json] [--bench REGEX] [pyperf Runner options]"
    original = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        arguments = list(args or [])
        namespace, _ = original([], namespace)  # the subcommand's defaults (which module runs)
        namespace.micro_argv = arguments
        return namespace, []

    parser.parse_known_args = parse_known_args


def main(args: argparse.Namespace) -> int:
    from bench import micro, recovery, runlock

    if not {"--list", "-h", "--help"} & set(args.micro_argv):
        # reads THP mode and arms trackers that change nothing global: a shared lock
        # ($HOTBENCH_NO_WAIT=1 refuses instead of waiting: pyperf owns the options)
        recovery.command_lock(exclusive=False, wait=not runlock.no_wait(), what="hotbench micro")
    return micro.main(args.micro_argv, prog="hotbench micro")
