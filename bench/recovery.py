"""Putting back what dead hotbench processes changed, from the state journal (``bench.journal``).

Every command that changes or reads global kernel state first runs ``command_lock``: it
undoes the entries of owners that are gone (``recover``), one line each (what, from what, to
what, whose), reports those of live owners, which it leaves alone, and then takes the run
lock (``bench.runlock``). An undo never clobbers someone else's later change: a knob is
written back only while it still holds what hotbench set; a kdamond is removed only while it
is provably the one hotbench created (the same index, ``nr_kdamonds``, operations, target
and, when on, kthread pid) — any other kdamond, such as a machine's own, is never touched; a
cgroup is removed only when empty. This module imports the modules that made the changes;
they import only the journal, to record them.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import Callable, TextIO

from bench import journal as journal_mod
from bench import settings
from bench.journal import Entry, Journal
from bench.kernel import cgroup, damon_sysfs, sysfs
from bench.runlock import RunLock

__all__ = ["undo", "recover", "command_lock"]


def undo(journal: Journal, entry: Entry) -> str:
    """Undo one entry of a dead owner; returns the line that says what was done. The entry is
    removed when done or moot; it stays (for the next attempt) when undoing failed."""
    journal.check_paths(entry.fields)
    whose = f"left by {entry.owner.describe()}, which is gone"
    try:
        what = _UNDO[entry.kind](journal, entry)
    except KeyError:
        return f"kept journal entry {entry.file.name}: kind {entry.kind!r} is unknown to this hotbench"
    except OSError as e:
        return f"could not restore {entry.describe()} ({whose}): {e}; the entry is kept for the next attempt"
    journal.remove(entry)
    return f"{what} ({whose})"


def _undo_knob(journal: Journal, entry: Entry) -> str:
    path, old, now = entry["path"], entry["old"], entry["now"]
    current = sysfs.read(path)
    if current is None:
        return f"{path} is gone; nothing to restore (was {old})"
    current = sysfs.restorable(current)
    if current == old:
        return f"{path} is {old} already; nothing to restore"
    if now is not None and current != now:
        return f"left {path} at {current}: it was changed again after hotbench set {now} (was {old})"
    sysfs.write(path, old)
    return f"restored {path}: {current} -> {old}"


def _undo_mount(journal: Journal, entry: Entry) -> str:
    target, fstype = entry["target"], entry["fstype"]
    if settings.mounted(target, fstype):
        settings.unmount(target)
        done = f"unmounted {fstype} from {target}: mounted -> not mounted"
    else:
        done = f"{fstype} at {target} is not mounted any more; nothing to unmount"
    if entry["made_dir"] and os.path.isdir(target) and not os.listdir(target):
        os.rmdir(target)
    return done


def _undo_trace_instance(journal: Journal, entry: Entry) -> str:
    path = entry["path"]
    if not os.path.isdir(path):
        return f"tracefs instance {path} is gone; nothing to remove"
    os.rmdir(path)  # the kernel disables the instance's events and frees its buffer as it removes it
    return f"removed tracefs instance {path}: exists -> removed"


def _undo_kdamond(journal: Journal, entry: Entry) -> str:
    return damon_sysfs.OwnedKdamond.adopt(entry.fields).remove_orphan()


def _undo_cgroup(journal: Journal, entry: Entry) -> str:
    return cgroup.remove_scratch(entry["dir"], entry["enabled_in"])


_UNDO: dict[str, Callable[[Journal, Entry], str]] = {
    journal_mod.KNOB: _undo_knob, journal_mod.MOUNT: _undo_mount, journal_mod.KDAMOND: _undo_kdamond,
    journal_mod.CGROUP: _undo_cgroup, journal_mod.TRACE_INSTANCE: _undo_trace_instance}


def recover(journal: Journal | None = None, *, wait: bool = True, log: TextIO | None = None,
            report_live: bool = True) -> list[str]:
    """Undo what dead hotbench processes left behind, and (*report_live*) say what live ones
    hold. Runs under the exclusive run lock (``bench.runlock``), so no run measures while knobs
    move; returns the lines printed."""
    journal, log = journal or journal_mod.default(), log or sys.stderr
    dead, live = journal.pending()
    lines = [f"hotbench: {entry.owner.describe()} (still running) holds {entry.describe()}; left alone"
             for entry in live if report_live]
    if dead:
        with RunLock(journal.dir).held(exclusive=True, wait=wait, what="restore kernel state", log=log):
            dead, _ = journal.pending()  # again, under the lock: another command may have done it
            for entry in reversed(dead):  # newest first: a knob changed twice ends at its first value
                lines.append(f"hotbench: {undo(journal, entry)}")
    for line in lines:
        print(line, file=log, flush=True)
    return lines


def command_lock(*, exclusive: bool, wait: bool = True, what: str = "", log: TextIO | None = None) -> RunLock:
    """What every command that changes or reads kernel state does first: undo what dead
    hotbench processes left (``recover``), then take the run lock, held until the process
    exits (or ``release()``)."""
    recover(wait=wait, log=log, report_live=False)  # a live holder is named if we must wait
    lock = RunLock()
    lock.acquire(exclusive=exclusive, wait=wait, what=what, log=log)
    atexit.register(lock.release)  # the flock goes with the process; its description must go too
    return lock
