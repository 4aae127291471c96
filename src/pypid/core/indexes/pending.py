"""
Files found in storage that are not described yet: a bare folder (a
pypiserver folder, files copied in by hand) is served from its filenames at
once and described (hashed, its metadata read) in the background, a project
at a time, the project a client asks for first. Here are the queue and the
cheap reading of a filename; the work is L{pypid.state.backfill.Backfill}'s.

Why not parse each filename fully (L{pypid.core.dists.names.parse_filename}):
22 us a file, 2.2 s for 100,000 files, where start-up must answer in 1 s.
L{project_of} reads the part before the version in 1 us; a name it cannot
read is described like the others, and listed once it has been.
"""

from __future__ import annotations

import functools
import re
from collections import OrderedDict
from collections.abc import Collection
from typing import NamedTuple

import attrs

from pypid.core.dists.names import SDIST_EXTENSIONS, is_valid_name, normalize

# A version starts with a digit (or "v" and a digit, as PEP 440 allows); ASCII
# only, else "ſ" and "K" match [A-Z] case-insensitively and "\d" any script's digits.
_SDIST_SPLIT = re.compile(r"-(?=v?\d)", re.ASCII)


class PendingFile(NamedTuple):
    """
    A stored file that has no record yet. (A named tuple: a scan makes one
    a file of a folder it lists, 0.48 rather than 0.81 us as an attrs class.)

    @ivar size: its size in bytes, or L{None} until the describing looks;
        C{mtime} (its upload time to be) likewise.
    @ivar recorded: whether a record was seen beside it (read in the
        background too; the file is described only when it is not usable).
    """

    filename: str
    key: str
    size: int | None = None
    mtime: float | None = None
    recorded: bool = False


#: what describing a file whose record says it was deleted gives (a stop
#: between the record's tombstone and the file's removal left it there)
DELETED = "deleted (its record is a tombstone)"


def project_of(filename: str) -> tuple[str, str] | None:
    """
    C{(normalized project, name as spelt)} of a wheel's or sdist's filename,
    read from the part before the version, or L{None}: only to list the
    project while describing the file (which checks it) is under way.
    """
    if filename.endswith(".whl"):
        name = filename.split("-", 1)[0]
    else:
        for suffix in SDIST_EXTENSIONS:
            if filename.endswith(suffix):
                parts = _SDIST_SPLIT.split(filename[: -len(suffix)], 1)
                if len(parts) != 2:
                    return None
                name = parts[0]
                break
        else:
            return None
    return _project_name(name)


@functools.lru_cache(maxsize=4096)
def _project_name(name: str) -> tuple[str, str] | None:
    # (a project's files come together in most folders: 0.3 rather than
    # 2.6 us a file for the bench corpus)
    if not is_valid_name(name):
        return None
    return normalize(name), name


@attrs.define
class DescribeQueue:
    """
    The projects whose files are still to be described, in the order found,
    except that a project a client asked for goes first.
    """

    _projects: OrderedDict[str, list[PendingFile]] = attrs.field(factory=OrderedDict)
    #: files still to describe, in all
    files: int = 0

    def add(self, project: str, pending: Collection[PendingFile]) -> None:
        """Queue C{pending} (L{PendingFile}s) of C{project} (behind what is queued)."""
        self._projects.setdefault(project, []).extend(pending)
        self.files += len(pending)

    def __contains__(self, project: object) -> bool:
        return project in self._projects

    def __len__(self) -> int:
        return len(self._projects)

    def first(self, project: str) -> None:
        """Describe C{project} next, if it is queued."""
        if project in self._projects:
            self._projects.move_to_end(project, last=False)

    def take(self) -> tuple[str, list[PendingFile]] | None:
        """C{(project, [PendingFile])} to describe next, or L{None}."""
        if not self._projects:
            return None
        project, pending = self._projects.popitem(last=False)
        self.files -= len(pending)
        return project, pending

    def of(self, project: str) -> int:
        """How many files of C{project} are queued."""
        return len(self._projects.get(project, ()))
