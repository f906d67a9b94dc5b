"""A one-line progress bar on stderr (only when stderr is a terminal; logs stay clean)."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.done, self.stream = total, 0, stream
        self.enabled = stream.isatty()
        self.started = time.monotonic()
        self._label = ""

    def update(self, label: str, detail: str = "") -> None:
        self._label = label
        if not self.enabled:
            return
        width = 24
        filled = int(width * self.done / max(self.total, 1))
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        line = (f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                f"{label} {detail}  {elapsed:5.0f}s elapsed" + (f", ~{eta:.0f}s left" if self.done else ""))
        self.stream.write(line[:160].ljust(100))
        self.stream.flush()

    def advance(self) -> None:
        self.done += 1
        self.update(self._label)

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 160 + "\r")
            self.stream.flush()
