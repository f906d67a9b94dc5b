"""The one door for writing kernel knobs: sysfs, procfs (/proc/sys, /proc/<pid>/clear_refs), debugfs.

``read`` returns content or None, ``write`` does one ``write(2)`` of the whole value and
raises ``OSError(errno, "<strerror> (writing <value>)", <path>)``, so every failure names both
path and value (``bench.kernel._files``, the low-level door procfs shares).
``HOTBENCH_SYSFS_LOG=1`` in the environment echoes every write (including restores) to stderr.

``Knobs`` (tools/testing/selftests/mm/thp_settings.c style) snapshots each declared knob
before its first write and writes the snapshot back on exit, on exception and at interpreter
exit; signals are the caller's (``bench.interrupts`` defers them around the block, so an
exit path always passes through the restore), and after a SIGKILL the state journal
(``bench.journal``) has the snapshot for the next command. Enum knobs that read as
``always [madvise] never`` are restored by their bracketed choice. Only knobs hotbench may change belong here: state hotbench did not create (the
host's own kdamond) is read, never written.

Failures: ``write`` raises OSError (EACCES/EPERM: not root; EINVAL/EBUSY: the kernel
refused the value); ``Knobs.write`` raises OSError before changing anything when it cannot
read the knob to snapshot it, and ValueError for a path not declared up front.
"""

from __future__ import annotations

import atexit
import errno
import os
import sys
import threading
from collections.abc import Iterable
from pathlib import Path

from bench.kernel._files import (CPU0_CACHE, CPU0_GOVERNOR, LOG_ENV, NODE_ONLINE, THP_DEFRAG, THP_ENABLED,
                                 bracketed_choice, read_text, write)

__all__ = ["LOG_ENV", "read", "write", "restorable", "Knobs", "THP_ENABLED", "THP_DEFRAG", "CPU0_CACHE",
           "CPU0_GOVERNOR", "NODE_ONLINE"]


def read(path: str | Path) -> str | None:
    """Content of *path* stripped of surrounding whitespace, or None if it is absent or unreadable."""
    return read_text(path)


def restorable(text: str) -> str:
    """What to write back for a knob that read as *text*: the bracketed choice of an enum knob."""
    return bracketed_choice(text) or text


class Knobs:
    """Write declared knobs; put every one back as it was.

    >>> with Knobs(["/sys/kernel/mm/lru_gen/enabled"]) as k:
    ...     k.write("/sys/kernel/mm/lru_gen/enabled", "y")

    Before a knob's first write its snapshot goes into the state journal (*journal*, by
    default ``bench.journal.default()``), so that the next hotbench command restores it if
    this process is killed; the entry is removed once the knob is back.

    ``restore()`` writes back, in reverse order of first write, every knob whose current
    value differs from its snapshot; it tries all of them, then raises the first failure.
    It is idempotent: a second call does nothing (the snapshots are consumed).
    """

    def __init__(self, paths: Iterable[str | Path], journal=None):
        self.paths = [str(p) for p in paths]
        self._saved: dict[str, str] = {}  # path -> value to write back, in first-write order
        self._entries: dict = {}  # path -> its bench.journal.Entry
        self._journal = journal
        self._lock = threading.Lock()
        self._atexit = False

    @property
    def saved(self) -> dict[str, str]:
        """Snapshots taken so far (path -> value restore will write)."""
        return dict(self._saved)

    def _journal_for_writes(self):
        if self._journal is None:
            from bench import journal

            self._journal = journal.default()
        return self._journal

    def write(self, path: str | Path, value: str | int | bytes) -> None:
        from bench.journal import KNOB

        path = str(path)
        if path not in self.paths:
            raise ValueError(f"{path} is not one of the knobs declared to Knobs(...): {', '.join(self.paths)}")
        with self._lock:
            if path not in self._saved:
                current = read(path)
                if current is None:
                    raise OSError(errno.EACCES if os.path.exists(path) else errno.ENOENT,
                                  f"cannot read the knob to snapshot it, so it could not be restored "
                                  f"(refusing to write {value!r})", path)
                old = restorable(current)
                self._entries[path] = self._journal_for_writes().record(KNOB, path=path, old=old, now=None)
                self._saved[path] = old
                if not self._atexit:
                    atexit.register(self.restore)
                    self._atexit = True
        try:
            write(path, value)
        finally:  # what the knob holds now, as far as the journal knows: a later undo checks it first
            now = read(path)
            self._journal.update(self._entries[path], now=restorable(now) if now is not None else None)

    def restore(self) -> None:
        with self._lock:
            saved, self._saved = self._saved, {}
            entries, self._entries = self._entries, {}
            if self._atexit:
                atexit.unregister(self.restore)
                self._atexit = False
        errors: list[OSError] = []
        for path, value in reversed(saved.items()):
            current = read(path)
            try:
                if current is None or restorable(current) != value:
                    write(path, value)
            except OSError as e:
                errors.append(e)
                continue  # the journal keeps the entry: the next hotbench command tries again
            self._journal.remove(entries[path])
        if errors:
            first = errors[0]
            more = f" (+{len(errors) - 1} more: {', '.join(str(e.filename) for e in errors[1:])})" if len(errors) > 1 else ""
            raise OSError(first.errno, f"restoring knob failed: {first.strerror}{more}", first.filename)

    def __enter__(self) -> Knobs:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.restore()
        except OSError as restore_error:
            cleanup_failed(exc, restore_error)


def cleanup_failed(exc: BaseException | None, error: Exception) -> None:
    """A restore in __exit__ failed with *error*: raise it when nothing else is in flight, else
    attach it to the exception that is (*exc*), which must not be hidden by the cleanup's."""
    if exc is None:
        raise error
    if hasattr(exc, "add_note"):
        exc.add_note(f"and then: {error}")
    else:
        print(f"hotbench: {error}", file=sys.stderr)
