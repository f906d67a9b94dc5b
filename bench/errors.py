"""The one error type users see: caught once by the CLI and printed as a single line."""


class HotbenchError(Exception):
    """An expected failure (bad input, missing privilege, unusable kernel feature).

    The message is one line that says what is wrong and what to do about it.
    """


class Interrupted(HotbenchError):
    """Ctrl-C or SIGTERM ended the command after cleaning up; exit status 130."""

    exit_status = 130
