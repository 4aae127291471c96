"""
Telling that the wall clock stepped back between two moments, so that a
start does not trust a snapshot's time over storage's.

A start trusts a snapshot for every record whose ctime (the kernel's wall
clock) is older than the snapshot's time. When the wall clock steps back
after a save (an NTP correction, a person setting it), a change made since
is stamped older than the snapshot, and a start after a crash took the
snapshot's record for it: an acknowledged yank was reverted in the index
while its record on disk said yanked. So each snapshot keeps a
L{ClockReading}: the wall time and the seconds since boot (Linux's
C{CLOCK_BOOTTIME}: counts a suspend, NTP slews it but never steps it). A
start in the same boot compares how far each moved: the wall clock moving
less by more than L{TOLERANCE} went back by the difference, and the start
reads again what storage stamped in that span (L{pypid.state.loader}).
"""

from __future__ import annotations

import attrs

#: a difference between how far the two clocks moved below which no step
#: is seen (two readings are not taken at one instant; NTP slews both)
TOLERANCE = 0.1

#: how much earlier than the step shows a start reads storage again: a
#: filesystem's times are coarse (ext4's ctime can lag the clock by a
#: tick), and the readings are not taken at one instant
MARGIN = 1.0


@attrs.frozen
class ClockReading:
    """
    The wall clock and a clock that never steps, read together.

    @ivar wall: POSIX time.
    @ivar boot: the boot the reading is of (its id): seconds since boot
        compare within one boot only.
    @ivar since_boot: seconds since that boot.
    """

    wall: float
    boot: str
    since_boot: float

    def to_json(self) -> dict[str, float | str]:
        """The reading as kept in a snapshot."""
        return {"wall": self.wall, "boot": self.boot, "since_boot": self.since_boot}

    @classmethod
    def from_json(cls, data: object) -> ClockReading | None:
        """A reading kept by L{to_json}, or L{None} for anything else (it is only a hint)."""
        if not isinstance(data, dict):
            return None
        wall, boot, since_boot = data.get("wall"), data.get("boot"), data.get("since_boot")
        if not (isinstance(boot, str) and _number(wall) and _number(since_boot)):
            return None
        assert isinstance(wall, (int, float)) and isinstance(since_boot, (int, float))
        return cls(float(wall), boot, float(since_boot))


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def stepped_back(then: ClockReading | None, now: ClockReading | None) -> float | None:
    """
    How many seconds the wall clock went back between C{then} and C{now}
    (0 when it did not, or stepped forward); L{None} when the readings
    cannot tell (one is missing, or they are of two boots).
    """
    if then is None or now is None or then.boot != now.boot:
        return None
    back = (now.since_boot - then.since_boot) - (now.wall - then.wall)
    return back if back > TOLERANCE else 0.0


def trusted_since(as_of: float, then: ClockReading | None,
                  now: ClockReading | None) -> tuple[float, float | None]:
    """
    The time from which a start reads storage again, for a snapshot that
    stands for C{as_of} and was saved at C{then}: C{as_of}, or earlier by
    the step back the readings show (and L{MARGIN}); with the step seen.
    """
    back = stepped_back(then, now)
    return (max(as_of - back - MARGIN, 0.0) if back else as_of), back
