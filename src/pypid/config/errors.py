"""
The configuration's error type: a L{StartupError} raised while the file
and the command line are read and checked.
"""

from __future__ import annotations

from pypid.core.util.startup import StartupError

__all__ = ["ConfigError", "StartupError"]


class ConfigError(StartupError):
    """The configuration cannot be used; the message is one line for a person."""
