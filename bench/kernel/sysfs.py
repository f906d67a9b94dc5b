"""The one door for writing kernel knobs: sysfs, procfs (/proc/sys, /proc/<pid>/clear_refs), debugfs.

Modelled on damo's ``_damo_fs.py``: ``read`` returns content or None, ``write`` does one
``write(2)`` of the whole value and raises ``OSError(errno, "<strerror> (writing <value>)",
<path>)``, so every failure names both path and value. ``HOTBENCH_SYSFS_LOG=1`` in the
environment echoes every write (including restores) to stderr.

``Knobs`` (tools/testing/selftests/mm/thp_settings.c style) snapshots each declared knob
before its first write and writes the snapshot back on exit, on exception, at interpreter
exit and on SIGTERM/SIGHUP (turned into ``SystemExit`` while the block runs in the main
thread). Enum knobs that read as ``always [madvise] never`` are restored by their bracketed
choice. Only knobs hotbench may change belong here: state hotbench did not create (the
host's own kdamond) is read, never written.

Failures: ``write`` raises OSError (EACCES/EPERM: not root; EINVAL/EBUSY: the kernel
refused the value); ``Knobs.write`` raises OSError before changing anything when it cannot
read the knob to snapshot it, and ValueError for a path not declared up front.
"""

from __future__ import annotations

import atexit
import errno
import os
import signal
import sys
import threading
from collections.abc import Iterable
from pathlib import Path

from bench.kernel.procfs import bracketed_choice, read_text

__all__ = ["LOG_ENV", "read", "write", "Knobs"]

LOG_ENV = "HOTBENCH_SYSFS_LOG"


def _logging() -> bool:
    return os.environ.get(LOG_ENV, "") not in ("", "0")


def read(path: str | Path) -> str | None:
    """Content of *path* stripped of surrounding whitespace, or None if it is absent or unreadable."""
    return read_text(path)


def write(path: str | Path, value: str | int | bytes) -> None:
    """Write *value* to the existing file *path* in a single ``write(2)``.

    Never creates files (a mistyped knob must fail, not appear). Raises OSError whose
    message names the value and whose ``filename`` is *path*.
    """
    path = str(path)
    data = value if isinstance(value, bytes) else str(value).encode()
    if _logging():
        print(f"hotbench sysfs: {path} <- {data.decode(errors='replace')!r}", file=sys.stderr, flush=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            n = os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as e:
        raise OSError(e.errno, f"{e.strerror} (writing {data.decode(errors='replace')!r})", path) from None
    if n != len(data):
        raise OSError(0, f"short write {n}/{len(data)} bytes (writing {data.decode(errors='replace')!r})", path)


def _restorable(text: str) -> str:
    """What to write back for a knob that read as *text*: the bracketed choice of an enum knob."""
    return bracketed_choice(text) or text


_TERM_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _raise_exit(signum, frame) -> None:
    raise SystemExit(128 + signum)


class Knobs:
    """Write declared knobs; put every one back as it was.

    >>> with Knobs(["/sys/kernel/mm/lru_gen/enabled"]) as k:
    ...     k.write("/sys/kernel/mm/lru_gen/enabled", "y")

    ``restore()`` writes back, in reverse order of first write, every knob whose current
    value differs from its snapshot; it tries all of them, then raises the first failure.
    It is idempotent: a second call does nothing (the snapshots are consumed).
    """

    def __init__(self, paths: Iterable[str | Path]):
        self.paths = [str(p) for p in paths]
        self._saved: dict[str, str] = {}  # path -> value to write back, in first-write order
        self._lock = threading.Lock()
        self._old_handlers: dict[int, object] = {}
        self._atexit = False

    @property
    def saved(self) -> dict[str, str]:
        """Snapshots taken so far (path -> value restore will write)."""
        return dict(self._saved)

    def write(self, path: str | Path, value: str | int | bytes) -> None:
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
                self._saved[path] = _restorable(current)
                if not self._atexit:
                    atexit.register(self.restore)
                    self._atexit = True
        write(path, value)

    def restore(self) -> None:
        with self._lock:
            saved, self._saved = self._saved, {}
            if self._atexit:
                atexit.unregister(self.restore)
                self._atexit = False
        errors: list[OSError] = []
        for path, value in reversed(saved.items()):
            current = read(path)
            if current is not None and _restorable(current) == value:
                continue
            try:
                write(path, value)
            except OSError as e:
                errors.append(e)
        if errors:
            first = errors[0]
            more = f" (+{len(errors) - 1} more: {', '.join(str(e.filename) for e in errors[1:])})" if len(errors) > 1 else ""
            raise OSError(first.errno, f"restoring knob failed: {first.strerror}{more}", first.filename)

    def __enter__(self) -> Knobs:
        if threading.current_thread() is threading.main_thread():
            for sig in _TERM_SIGNALS:
                if signal.getsignal(sig) is signal.SIG_DFL:
                    self._old_handlers[sig] = signal.signal(sig, _raise_exit)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.restore()
        except OSError as restore_error:
            cleanup_failed(exc, restore_error)
        finally:
            for sig, handler in self._old_handlers.items():
                signal.signal(sig, handler)
            self._old_handlers.clear()


def cleanup_failed(exc: BaseException | None, error: Exception) -> None:
    """A restore in __exit__ failed with *error*: raise it when nothing else is in flight, else
    attach it to the exception that is (*exc*), which must not be hidden by the cleanup's."""
    if exc is None:
        raise error
    if hasattr(exc, "add_note"):
        exc.add_note(f"and then: {error}")
    else:
        print(f"hotbench: {error}", file=sys.stderr)
