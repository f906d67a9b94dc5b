"""A run's progress on stderr: one live line on a terminal, one line per finished cell elsewhere.

On a terminal (rich): ``[3/12] uffd-wp · hotcold · anon · 256M · rep 1  interval 4/5  ━━━━━━╺━━━━  0:12 eta 0:31``,
sized to the terminal's width (the bar only where there is room for it beside the cell's name,
whose middle gives way to an ellipsis, never wrapped),
redrawn only when the runner says where it is — between intervals, never from a thread of its
own, so drawing costs nothing inside a timed region — and erased when the run ends. Without
a terminal (CI, ``| tee``, a log file), no control codes: one line per finished cell, with the
elapsed time and the time left.

The time left is estimated from each cell's expected share of the run (*weights*, e.g. the
runner's estimated seconds per cell) and the speed so far.
"""

from __future__ import annotations

import sys
import time
from typing import Sequence, TextIO

__all__ = ["Progress", "clock_text"]


def clock_text(seconds: float) -> str:
    """0:07, 1:02:03."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    def __init__(self, total: int, stream: TextIO | None = None, weights: Sequence[float] | None = None):
        self.total, self.done = total, 0
        self.stream = stream or sys.stderr
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self._weights = [max(float(w), 1e-9) for w in weights] if weights and len(weights) == total else [1.0] * total
        self._label, self._detail = "", ""
        self.started = self._cell_started = time.monotonic()
        self._live = self._task = None
        if self.terminal and total:
            self._start_live()

    # ---------------------------------------------------------------- where the run is

    def update(self, label: str, detail: str = "", within: float = 0.0) -> None:
        """The cell in flight is *label*, *within* (0..1) of the way through, at *detail*."""
        self._label, self._detail = label, detail
        self._draw(within)

    def advance(self, summary: str = "done") -> None:
        """The cell in flight finished (*summary*: what became of it); its time counts from the
        previous cell's end, so a cell's setup (arena, compiling its workload) is its own."""
        self.done += 1
        if self._live is not None:
            self._draw(0.0)
        else:
            self._line(summary)
        self._cell_started = time.monotonic()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    # ---------------------------------------------------------------- drawing

    def _completed(self, within: float) -> float:
        current = self._weights[self.done] * min(max(within, 0.0), 1.0) if self.done < self.total else 0.0
        return sum(self._weights[:self.done]) + current

    def _left(self) -> float | None:
        """Seconds left at the speed so far, or None before anything finished."""
        done, elapsed = self._completed(0.0), time.monotonic() - self.started
        if not done or elapsed <= 0:
            return None
        return elapsed / done * (sum(self._weights) - done)

    def _line(self, summary: str) -> None:
        left = self._left()
        tail = f"; {clock_text(time.monotonic() - self.started)} elapsed" + (
            f", ~{clock_text(left)} left" if left is not None and self.done < self.total else "")
        print(f"[{self.done}/{self.total}] {self._label}: {summary} in "
              f"{time.monotonic() - self._cell_started:.1f} s{tail}", file=self.stream, flush=True)

    def _times(self) -> str:
        left = self._left()
        return f"{clock_text(time.monotonic() - self.started)}" + (f" eta {clock_text(left)}" if left is not None
                                                                   else "")

    def _start_live(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress as Bar, TextColumn

        self._console = Console(file=self.stream, highlight=False)
        self._bar = BarColumn(bar_width=20)
        self._text = [TextColumn("{task.fields[%s]}" % name, markup=False) for name in ("line", "times")]
        self._live = Bar(*self._text, console=self._console, transient=True, auto_refresh=False)
        self._task = self._live.add_task("", total=sum(self._weights), line="starting", times="")
        self._live.start()

    def _fit(self, times: str) -> str:
        """"[3/12] cell  detail" cut to the terminal's width as it is now (it may have been
        resized): the cell's name gives way first, its middle replaced by an ellipsis; the bar
        is drawn only where it leaves the name room."""
        width = self._console.size.width - 1
        prefix, tail = f"[{self.done}/{self.total}] ", f"  {self._detail}"
        bar = 0
        if width >= 110:
            self._bar.bar_width = max(10, min(30, width - 110))
            bar = self._bar.bar_width + 1
        self._live.columns = (self._text[0], self._bar, self._text[1]) if bar else tuple(self._text)
        room = width - len(prefix) - len(tail) - len(times) - 1 - bar
        label = self._label
        if len(label) > room:  # cut the middle: the end (size, repeat) changes from cell to cell
            head = max(room // 2, 0)
            label = label[:head] + "…" + label[len(label) - max(room - head - 1, 0):] if room > 1 else ""
        return (prefix + label + tail)[:max(width - len(times) - 1 - bar, 0)]

    def _draw(self, within: float) -> None:
        if self._live is None:
            return
        times = self._times()
        self._live.update(self._task, completed=self._completed(within), line=self._fit(times), times=times)
        self._live.refresh()
