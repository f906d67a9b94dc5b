"""The one error type users see: caught once by the CLI and printed as a single line."""


class HotbenchError(Exception):
    """An expected failure (bad input, missing privilege, unusable kernel feature).

    The message is one line that says what is wrong and what to do about it.
    """
