"""
The one error type of start-up: what the server (or a command-line tool)
was given cannot be used.

Every factory that builds a part from the configuration raises
L{StartupError} with one line for a person, naming the file, the section
and the key where there is one; the entry points (C{twistd pypid}'s
L{pypid.tap}, each tool's C{main}) turn it into that line and an exit
status, in one place each. It lives in C{core} so that every layer may
raise it without importing the configuration's modules
(L{pypid.config.errors.ConfigError}, raised while the file is read, is one).
"""

from __future__ import annotations


class StartupError(Exception):
    """
    The server cannot start with what it was given; the message is one
    line for a person.

    @ivar named: the sections and keys at fault (C{[auth] read}), as they
        may be told beyond the server's log, in a refused reload's entry
        and so its webhook event: never a path, a person's name or a
        value, which the message may hold; L{None} where it names none.
    """

    def __init__(self, message: str, named: str | None = None) -> None:
        super().__init__(message)
        self.named = named
