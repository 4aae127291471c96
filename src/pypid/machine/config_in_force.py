"""
The configuration a machine runs on (L{ConfigInForce}): the configuration
file's text as the supervisor last took it (at its start and each
C{SIGHUP} it accepted), with the other files it read then
(L{pypid.config.Config.held}, the C{[tls]} files), in a memory file every
worker is given. A worker that starts again reads these texts, not the
files on disk by then: an edit not yet reloaded would make it the one
worker that answers differently, an edited C{listen} one that cannot
start at all, a users' file half edited would end for good, on the whole
machine, the tokens of the users it lacks, and a certificate renewed on
disk would be served by the one worker.

The supervisor writes under an exclusive C{flock}, a worker reads under a
shared one, each through a file of its own (C{/proc/self/fd}), as the
ring does (L{pypid.machine.ring}).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Mapping

import attrs

from pypid.machine.ring import flocked


@attrs.frozen
class HeldTexts:
    """
    What a machine runs on.

    @ivar held: the other files it read, their texts by path.
    @ivar refused: after the last C{SIGHUP} refused, the sections and keys
        at fault (C{""} where the check names none), for the first worker's
        journal entry; L{None} after one taken.
    @ivar refusals: how many C{SIGHUP}s the machine refused, so that a
        worker tells each once (a C{SIGHUP} sent to a worker itself, as
        C{systemctl kill} does, finds one it already told).
    """

    text: str
    held: Mapping[str, str]
    refused: str | None = None
    refusals: int = 0


@attrs.define(eq=False)
class ConfigInForce:
    """The machine's configuration text, in a memory file (see the module)."""

    _fd: int = attrs.field(repr=False)

    @classmethod
    def create(cls, text: str, held: Mapping[str, str] | None = None) -> ConfigInForce:
        """A new memory file holding C{text} and C{held}, for the supervisor."""
        made = cls(os.memfd_create("pypid-config", os.MFD_CLOEXEC))
        made.write(text, held)
        return made

    @classmethod
    def attach(cls, fd: int, writable: bool = False) -> ConfigInForce:
        """
        The memory file of C{fd} (given by the supervisor), opened anew for
        this process: to read, or C{writable} (L{pypid.daemon.reload_check}).
        """
        return cls(os.open(f"/proc/self/fd/{fd}",
                           (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC))

    def fileno(self) -> int:
        """This process's descriptor of the memory file, which a worker is given."""
        return self._fd

    def write(self, text: str, held: Mapping[str, str] | None = None,
              refused: str | None = None, refusals: int = 0) -> None:
        """
        Hold these texts from now on (L{HeldTexts}); a worker reading
        meanwhile reads the old or the new.
        """
        data = json.dumps({"text": text, "held": dict(held or {}), "refused": refused,
                           "refusals": refusals}).encode("utf-8")
        with flocked(self._fd, fcntl.LOCK_EX):
            os.ftruncate(self._fd, 0)
            written = 0
            while written < len(data):
                written += os.pwrite(self._fd, data[written:], written)

    def read(self) -> HeldTexts:
        """The texts held now."""
        with flocked(self._fd, fcntl.LOCK_SH):
            size = os.fstat(self._fd).st_size
            chunks, taken = [], 0
            while taken < size:
                chunk = os.pread(self._fd, size - taken, taken)
                if not chunk:
                    break
                chunks.append(chunk)
                taken += len(chunk)
        value = json.loads(b"".join(chunks))
        return HeldTexts(value["text"], value["held"], value.get("refused"),
                         value.get("refusals", 0))

    def close(self) -> None:
        """Let go of the memory file (it lives while any process holds it)."""
        os.close(self._fd)
