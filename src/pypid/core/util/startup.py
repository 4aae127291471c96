"""
The one error type of start-up: what the server (or a command-line tool)
was given cannot be used. The entry points (L{pypid.tap}, each tool's
C{main}) turn it into one line and an exit status; it lives in C{core} so
that every layer may raise it (L{pypid.config.errors.ConfigError} is one).
"""

from __future__ import annotations


class StartupError(Exception):
    """
    The server cannot start with what it was given; the message is one
    line for a person, naming the file, section and key where there is one.

    @ivar named: the sections and keys at fault (C{[auth] read}), as they
        may be told beyond the server's log, in a refused reload's entry
        and so its webhook event: never a path, a person's name or a
        value, which the message may hold; L{None} where it names none.
    """

    def __init__(self, message: str, named: str | None = None) -> None:
        super().__init__(message)
        self.named = named
