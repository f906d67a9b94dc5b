"""One signal policy for every hotbench command: SIGINT, SIGTERM and SIGHUP.

Outside a critical section, such a signal raises ``Interrupted`` at once (the command
ends as with Ctrl-C). Inside one (``with deferred("finishing the current interval"):``)
it is only recorded, with one line on stderr saying what happens next, and raised at the
next safe point: ``check()``, or the end of the outermost section. Critical sections are
where stopping at an arbitrary bytecode would do harm: a tracker's kernel state half
undone, a knob half restored, or an arena unmapped while workload threads still touch it
(a segfault). Python runs handlers in the main thread only, so workload and tracker
threads are never interrupted; the main thread stops them and joins them first.

Exit status is 128 + the signal: 130 (SIGINT), 143 (SIGTERM), 129 (SIGHUP); results
manifests name the signal. While a child process runs (an experiment step, the micro
phase of a nightly run), ``forwarding(proc)`` passes every such signal on to it, so a
SIGTERM sent to the parent alone still stops the child at its own safe point.

``install()`` (the CLI, once) puts the handler in place for the whole command; a library
caller that never did gets it for the duration of each outermost ``deferred`` section.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

from bench.errors import Interrupted

__all__ = ["SIGNALS", "Interrupted", "install", "deferred", "check", "received", "last_signal", "forwarding"]

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_doing: list[str] = []  # what each open critical section finishes before stopping (innermost last)
_pending: int | None = None
_last: int | None = None  # the last such signal this process received, deferred or not
_children: list[subprocess.Popen] = []
_installed = False


def _handler(signum: int, frame) -> None:
    global _pending, _last
    _last = signum
    for child in list(_children):
        try:
            child.send_signal(signum)
        except OSError:
            pass  # it has just exited
    if not _doing:
        raise Interrupted(signum)
    name = signal.Signals(signum).name
    if _pending is None:
        _pending = signum
        print(f"\nhotbench: {name}: {_doing[-1]}, then restoring kernel state and stopping", file=sys.stderr,
              flush=True)
    else:
        print(f"hotbench: {name}: already stopping (after SIGKILL, the next hotbench command restores kernel "
              f"state)", file=sys.stderr, flush=True)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def install() -> None:
    """Handle SIGINT, SIGTERM and SIGHUP by this policy for the rest of the process (main thread)."""
    global _installed
    if _in_main_thread():
        for sig in SIGNALS:
            signal.signal(sig, _handler)
        _installed = True


@contextmanager
def deferred(doing: str = "finishing the current step") -> Iterator[None]:
    """A critical section: signals are recorded, raised by ``check()`` or at the end of the
    outermost section (unless another exception is already on its way)."""
    global _pending
    previous = {}
    if not _installed and not _doing and _in_main_thread():
        previous = {sig: signal.signal(sig, _handler) for sig in SIGNALS}
    _doing.append(doing)
    try:
        yield
    finally:
        _doing.pop()
        outermost = not _doing
        signum = _pending if outermost else None
        if outermost:
            _pending = None
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if signum is not None:  # reached only when the section ended without an exception
        raise Interrupted(signum)


def check() -> None:
    """A safe point: raise ``Interrupted`` if a signal arrived during the critical section."""
    if _pending is not None:
        raise Interrupted(_pending)


def received() -> int | None:
    """The signal recorded in the current critical section, if any."""
    return _pending


def last_signal() -> int | None:
    """The last SIGINT/SIGTERM/SIGHUP this process received: for code that sees only a library's
    reaction to it (pyperf turns the interruption into exit status 1)."""
    return _last


@contextmanager
def forwarding(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """Pass SIGINT/SIGTERM/SIGHUP on to *proc* while the block runs."""
    _children.append(proc)
    try:
        yield proc
    finally:
        _children.remove(proc)
