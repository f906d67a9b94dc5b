"""The error types users see: caught once by the CLI and printed as a single line."""

from __future__ import annotations

import signal


class HotbenchError(Exception):
    """An expected failure (bad input, missing privilege, unusable kernel feature).

    The message is one line that says what is wrong and what to do about it.
    """


class Interrupted(KeyboardInterrupt):
    """A signal (SIGINT, SIGTERM or SIGHUP) ended the command at a safe point, after cleanup
    (``bench.interrupts``); exit status 128 + the signal's number: 130, 143, 129.

    A KeyboardInterrupt, so no ``except Exception`` on the way swallows it.
    """

    def __init__(self, signum: int = signal.SIGINT, message: str = ""):
        super().__init__(message)
        self.signum = int(signum)
        self.message = message

    @property
    def signame(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        return 128 + self.signum

    def saying(self, message: str) -> Interrupted:
        """The same interruption with a message for the user (what was kept, where)."""
        return Interrupted(self.signum, message)

    def __str__(self) -> str:
        return self.message or f"interrupted by {self.signame}"
