"""
Sizes and durations as people write them: C{100M}, C{512KiB}, C{30s}, C{1.5h};
and counts as people say them: C{1 project}, C{2 projects}.
"""

from __future__ import annotations

import math
import re

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(value: str) -> int:
    """Parse a size such as C{100M}, C{512KiB} or C{1048576}; L{ValueError} names the forms."""
    match = _SIZE.match(value)
    if not match:
        raise ValueError("expected a size such as 100M, 1G or 524288 (bytes)")
    number, unit, _ = match.groups()
    size = int(number) * _SIZE_FACTORS[unit.lower()]
    if size <= 0:
        raise ValueError("expected a size greater than 0")
    return size


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([smhd]?)\s*$", re.IGNORECASE)
_DURATION_FACTORS = {"": 1, "s": 1, "m": 60, "h": 60 * 60, "d": 24 * 60 * 60}

#: The message of a text that is not a duration: the forms allowed.
DURATION_FORMS = "expected a duration such as 30 (seconds), 30s, 5m, 12h, 7d or 1.5h"


def parse_duration(value: str) -> float:
    """
    Parse a duration such as C{30}, C{30s}, C{5m}, C{12h}, C{7d} or C{1.5h}
    into a number of seconds.

    @raise ValueError: with the allowed forms.
    """
    match = _DURATION.match(value)
    if not match:
        raise ValueError(DURATION_FORMS)
    number, unit = match.groups()
    seconds = float(number) * _DURATION_FACTORS[unit.lower()]
    if not seconds < math.inf:
        raise ValueError(DURATION_FORMS)
    if not seconds > 0:
        raise ValueError("expected a duration greater than 0")
    return seconds


def is_zero_duration(value: str) -> bool:
    """Tell whether C{value} is a duration of nothing, such as C{0}, C{0s} or C{0.0d}."""
    match = _DURATION.match(value)
    return match is not None and float(match.group(1)) == 0


def counted(count: float, noun: str, plural: str | None = None) -> str:
    """
    A count with its noun as people say it: C{1 project}, C{2 projects},
    C{1.5 hours}; C{plural} for a noun whose plural is not C{noun + "s"}.
    """
    number = f"{count:g}" if isinstance(count, float) else str(count)
    return f"{number} {noun if count == 1 else plural or noun + 's'}"


def format_duration(seconds: float) -> str:
    """A duration in its largest whole-ish unit: C{7 days}, C{1.5 hours}, C{2 seconds}."""
    unit, count = "second", round(seconds, 2)
    for name, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            unit, count = name, round(seconds / size, 2)
            break
    return counted(float(count), unit)
