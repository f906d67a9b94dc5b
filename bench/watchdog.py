"""A per-cell watchdog: a cell that makes no progress for a multiple of its expected time is
ended, recorded as an error with the reason, and the run goes on with the next cell.

Progress is a ``beat()`` from the runner after every finished interval (lockstep) or A or B
run (concurrent). The limit is ``factor`` x the expected time of the next step — the
runner's estimate until one step has finished, then the longest step seen so far — and never
less than ``floor`` seconds (default 60 s; 600 s under emulation, where everything is
slower; 3600 guest s under 'hotbench vm --icount', whose clock jumps over every idle wait:
a healthy cell there was seen to make no progress for more than 600 guest s, while a stuck,
idle guest races through an hour of guest time in minutes), so a busy machine does not end a
healthy cell. ``--watchdog SECONDS`` replaces the
limit with a fixed one.

Ending a cell, in two steps:
1. the watchdog thread sends SIGALRM to the main thread, whose handler raises ``CellTimeout``
   there: at the next bytecode, or out of a blocking system call (``read``, a lock, a
   thread join: Python's handlers interrupt them). The runner catches it, stops the tracker,
   and the workload joins its threads before the arena is unmapped.
2. if the cell has not ended within a grace period — the main thread is blocked in compiled
   code (a one-thread workload stuck in a page fault that a userfaultfd tracker never
   resolves), or it raised but waits to join workload threads stuck that way — the watchdog
   thread calls the cell's ``on_stuck`` itself: the tracker's ``stop``, which closes its
   userfaultfd and so lets the faulting accesses through. The main thread then raises
   ``CellTimeout`` as soon as it is back in Python. ``stop`` is idempotent;
   calling it from another thread is the one way out of such a hang.
A thread stuck in the kernel in an uninterruptible sleep cannot be ended by anyone, nor can
a workload thread still running its interval in compiled code (the touch kernels take no
stop request: a check in the measured loop would cost time): the watchdog then says so on
stderr once, and the cell ends, as an error, when the thread returns.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

__all__ = ["CellTimeout", "Watchdog", "DEFAULT_FACTOR", "DEFAULT_FLOOR"]

DEFAULT_FACTOR = 20.0
DEFAULT_FLOOR = 60.0
EMULATED_FLOOR = 600.0
ICOUNT_FLOOR = 3600.0  # guest seconds (bench/clock.py): idle time is skipped, not waited for
_SIGNAL = signal.SIGALRM


class CellTimeout(Exception):
    """Raised in the main thread when the watchdog ends a cell; the message is the reason."""


@dataclass
class Watchdog:
    """Parameters of the per-cell watchdog; ``limit`` (seconds) fixes the limit, ``enabled``
    False turns it off (library callers and tests that time nothing)."""

    factor: float = DEFAULT_FACTOR
    floor: float | None = None  # None: DEFAULT_FLOOR, or EMULATED_FLOOR under emulation
    limit: float | None = None
    grace: float | None = None  # None: a tenth of the limit, between 1 and 30 s
    enabled: bool = True

    def _floor(self) -> float:
        if self.floor is not None:
            return self.floor
        from bench import clock

        if clock.current().instructions:
            return ICOUNT_FLOOR
        return EMULATED_FLOOR if os.environ.get("HOTBENCH_ACCEL", "native") not in ("", "native") else DEFAULT_FLOOR

    def limit_for(self, expected: float) -> float:
        return self.limit if self.limit is not None else max(self._floor(), self.factor * expected)

    @contextmanager
    def cell(self, expected: float, on_stuck: Callable[[], None] | None = None) -> Iterator[_Watch]:
        """Watch one cell whose first step should take about *expected* seconds."""
        watch = _Watch(self, expected, on_stuck)
        if not self.enabled or threading.current_thread() is not threading.main_thread():
            yield watch
            return
        previous = signal.signal(_SIGNAL, watch._on_signal)
        watch.start()
        try:
            yield watch
        finally:
            watch.stop()
            signal.signal(_SIGNAL, previous)  # a signal still on its way is dropped (SIG_DFL/IGN: Python skips it)


class _Watch:
    def __init__(self, dog: Watchdog, expected: float, on_stuck: Callable[[], None] | None):
        self.dog, self.expected, self.on_stuck = dog, max(expected, 0.0), on_stuck
        self.fired: str | None = None  # the reason, once fired
        self.raised = False
        self._last = time.monotonic()
        self._longest = 0.0
        self._wake = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._main = threading.main_thread().ident

    def beat(self) -> None:
        """A step finished: progress."""
        now = time.monotonic()
        with self._wake:
            self._longest = max(self._longest, now - self._last)
            self._last = now
            self._wake.notify()

    def _limit(self) -> tuple[float, float]:
        expected = max(self.expected, self._longest)
        return self.dog.limit_for(expected), expected

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hotbench-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()

    def _on_signal(self, signum, frame) -> None:
        if self.fired and not self.raised and not self._stopped:
            self.raised = True
            raise CellTimeout(self.fired)

    def _run(self) -> None:
        with self._wake:
            while not self._stopped:
                limit, expected = self._limit()
                left = self._last + limit - time.monotonic()
                if left > 0:
                    self._wake.wait(left)
                    continue
                how = "the limit set by --watchdog" if self.dog.limit is not None else (
                    f"{self.dog.factor:g} x the expected {expected:.1f} s, at least {self.dog._floor():g} s")
                self.fired = f"no progress for {limit:.0f} s ({how}); ended by the watchdog"
                break
        if self._stopped:
            return
        self._end_cell()

    def _end_cell(self) -> None:
        """Signal the main thread; if the cell has not ended after the grace period (the main
        thread raised but waits for stuck workload threads, or never got back to Python), stop
        the tracker from here; then keep signalling until the cell ends."""
        signal.pthread_kill(self._main, _SIGNAL)
        limit, _ = self._limit()
        grace = self.dog.grace if self.dog.grace is not None else min(max(limit / 10, 1.0), 30.0)
        with self._wake:
            if self._wake.wait_for(lambda: self._stopped, grace):
                return
        print(f"hotbench: watchdog: the cell is stuck ({self.fired}); stopping its tracker from the watchdog "
              f"thread", file=sys.stderr, flush=True)
        if self.on_stuck is not None:
            try:
                self.on_stuck()
            except Exception as e:  # the main thread's cleanup will meet the same problem and report it
                print(f"hotbench: watchdog: stopping the tracker failed: {e}", file=sys.stderr, flush=True)
        said = False
        while True:
            with self._wake:
                if self._wake.wait_for(lambda: self._stopped, grace):
                    return
            if not self.raised:  # still not back in Python: say it again
                signal.pthread_kill(self._main, _SIGNAL)
            if not said:
                said = True
                print("hotbench: watchdog: the cell's workload has not returned (an interval still running in "
                      "compiled code, or a thread stuck in the kernel); the cell ends, as an error, when it does",
                      file=sys.stderr, flush=True)
