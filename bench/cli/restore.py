"""``hotbench restore``: undo what killed hotbench processes left in the kernel, now.

Every command that changes or reads kernel state does this first by itself; this command
does only that. It reads the state journal (``bench.journal``: ``/run/hotbench/journal``),
undoes each entry whose process is gone — a knob written back, debugfs unmounted, a
kdamond removed when it is provably the one that process created, a scratch cgroup
removed — printing one line per entry (what, from what, to what, whose), and reports
entries of processes that still run, which it leaves alone. ``--list`` only shows them.

Exit status: 0 nothing left to undo (live runs' entries do not count), 1 an undo failed
(its entry is kept for the next attempt) or bad input.
"""

from __future__ import annotations

import argparse


def set_argparser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--list", action="store_true", help="show the journal's entries and change nothing")
    parser.add_argument("--no-wait", action="store_true", help="refuse in one line, instead of waiting, while "
                        "another hotbench command holds the run lock")


def _show(journal) -> int:
    dead, live = journal.pending()
    for entry in dead:
        print(f"to restore: {entry.describe()}, left by {entry.owner.describe()} (gone)")
    for entry in live:
        print(f"held: {entry.describe()}, by {entry.owner.describe()} (running)")
    if not dead and not live:
        print(f"nothing pending in {journal.entries_dir}")
    return 0


def main(args: argparse.Namespace) -> int:
    from bench import journal, recovery, runlock

    state = journal.default()
    if args.list:
        return _show(state)
    lines = recovery.recover(state, wait=not runlock.no_wait(args.no_wait))
    dead, _ = state.pending()
    if not lines:
        print(f"nothing to restore ({state.entries_dir} has no entry of a finished process)")
    return 1 if dead else 0
