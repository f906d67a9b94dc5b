"""The run lock: no run measures under a kernel regime it did not record.

``flock(2)`` on ``/run/hotbench/lock`` (beside the state journal, ``bench.journal``): a
command that changes global kernel state — a ``--thp``/``--numa-balancing``/``--mglru``/
``--fault-around`` setting, a tracker that flips a knob or creates a kdamond or a cgroup,
``hotbench restore`` — holds it exclusively for its duration; a command that only reads such
state (any other run, micro, evict) holds it shared. A second knob-changing run therefore
waits, saying for whom, until the first has restored everything (or refuses in one line
with ``--no-wait``, or ``$HOTBENCH_NO_WAIT=1``); readers run side by side. The kernel drops
a flock when its holder dies, even by SIGKILL, so the lock never outlives a run; what the
dead run changed is then undone from the journal by the next command (``bench.recovery``).

Holders describe themselves in ``/run/hotbench/holders/<pid>-<start>.json`` (command, mode),
so that a waiting command can say who it waits for.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Iterator, TextIO

from bench import results
from bench._owner import Owner
from bench.errors import HotbenchError

__all__ = ["RunLock", "NO_WAIT_ENV", "no_wait"]

NO_WAIT_ENV = "HOTBENCH_NO_WAIT"


def no_wait(flag: bool = False) -> bool:
    """--no-wait, or $HOTBENCH_NO_WAIT set to anything but 0."""
    return flag or os.environ.get(NO_WAIT_ENV, "") not in ("", "0")


class RunLock:
    def __init__(self, directory: str | Path | None = None):
        from bench.journal import default_dir

        self.dir = Path(directory) if directory is not None else default_dir()
        self._fd: int | None = None
        self._holder: Path | None = None
        self.mode: str | None = None

    def holders(self) -> list[dict]:
        """Live holders as they described themselves; dead ones' files (a holder killed by
        SIGKILL never removes its own) are removed."""
        found = []
        try:
            names = os.listdir(self.dir / "holders")
        except OSError:
            return found
        for name in names:
            path = self.dir / "holders" / name
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            owner = Owner.from_dict(data.get("owner"))
            if owner is not None and owner.alive() is False:
                with suppress(OSError):  # another user's directory: only the wait message is longer
                    path.unlink()
            elif owner is not None and not owner.is_me():
                found.append({**data, "who": owner.describe()})
        return found

    def _describe_holders(self, exclusive_only: bool) -> str:
        holders = [h for h in self.holders() if h.get("mode") == "exclusive" or not exclusive_only]
        if not holders:
            return "another hotbench command"
        return "; ".join(f"{h['who']} ({' '.join(h.get('command', []))[:160] or h.get('what', '?')})"
                         for h in holders)

    def acquire(self, *, exclusive: bool, wait: bool = True, what: str = "", log: TextIO | None = None) -> bool:
        """Take the lock; False (and nothing held) when this user cannot use the lock directory
        (not root: such a command cannot change global state either)."""
        log = log or sys.stderr
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o755)
            fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            try:
                fd = os.open(self.dir / "lock", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return False
        op = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
        except BlockingIOError:
            whom = self._describe_holders(exclusive_only=not exclusive)
            if not wait:
                os.close(fd)
                mode = "changes" if exclusive else "reads"
                raise HotbenchError(f"the run lock is held by {whom}; this command {mode} kernel knobs, so it would "
                                    f"wait: retry later, or drop --no-wait to wait") from None
            print(f"hotbench: waiting for {whom} to finish (it holds the run lock, and this command "
                  f"{'changes' if exclusive else 'reads'} kernel knobs)…", file=log, flush=True)
            try:
                fcntl.flock(fd, op)  # interruptible: a signal ends the wait (bench.interrupts)
            except BaseException:
                os.close(fd)
                raise
        self._fd, self.mode = fd, "exclusive" if exclusive else "shared"
        self.holders()  # sweeps the descriptions of holders that died
        self._describe_self(what)
        return True

    def _describe_self(self, what: str) -> None:
        owner = Owner.current()
        holder = self.dir / "holders" / f"{owner.pid}-{owner.start}.json"
        try:
            holder.parent.mkdir(exist_ok=True, mode=0o755)
            holder.write_text(json.dumps({"owner": owner.as_dict(), "mode": self.mode, "what": what,
                                          "command": results.command_line()}))
            self._holder = holder
        except OSError:
            self._holder = None  # only the wait message of another command loses a name

    def release(self) -> None:
        if self._holder is not None:
            self._holder.unlink(missing_ok=True)
            self._holder = None
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd, self.mode = None, None

    @contextmanager
    def held(self, *, exclusive: bool, wait: bool = True, what: str = "",
             log: TextIO | None = None) -> Iterator[RunLock]:
        self.acquire(exclusive=exclusive, wait=wait, what=what, log=log)
        try:
            yield self
        finally:
            self.release()
