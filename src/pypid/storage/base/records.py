"""
Small records kept with the packages, by name, in a few folders (a bucket's
journal entries, the webhooks' cursors, failures and lease), so they
outlive a crash and a shared bucket's servers see the same: files under
C{<storage path>/.pypid/<folder>/}
(L{pypid.storage.folder.folder_records.FolderRecords}), objects under
C{<prefix>.pypid/<folder>/}
(L{pypid.storage.bucket.bucket_records.BucketRecords}), or memory (tests).

A record is written whole and durably before its write is answered: a
reader sees the old record or the new, never part of one. L{IRecords.put_new}
writes only a record not there yet, so of several servers writing one name
exactly one succeeds: a journal's serial and a lease are claimed so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

#: A record's name: folders and a file name of safe characters.
_NAME = re.compile(r"\A(?:[A-Za-z0-9][A-Za-z0-9._-]*/)*[A-Za-z0-9][A-Za-z0-9._-]*\Z")

#: Where the records' folders are, under the storage's root (or the bucket's prefix).
FOLDER = ".pypid/"


def is_record_name(name: str) -> bool:
    """Whether C{name} (one segment, listed in a folder) is one a record may have."""
    return "/" not in name and bool(_NAME.match(name))


def checked(name: str) -> str:
    """C{name}, refused when it is not a record's (a path that could leave the folder)."""
    if not _NAME.match(name) or ".." in name:
        raise ValueError(f"{name!r} is not the name of a record")
    return name


def cut_names(names: list[str], after: str | None, limit: int | None) -> list[str]:
    """The sorted C{names} after C{after}, C{limit} at most."""
    if after is not None:
        names = [name for name in names if name > after]
    return names if limit is None else names[:limit]


class IRecords(Interface):
    """The records of one folder of the store's; see the module."""

    shared = Attribute("Whether other servers may use the same records (a bucket): "
                       "then one of them delivers the webhooks, by a lease.")

    def put(items: Mapping[str, bytes]) -> Deferred[None]:
        """
        Write the records C{items}, each whole, replacing any of the same
        name, in order (one is never seen before those before it); fires
        once all are durable.
        """

    def put_new(name: str, data: bytes) -> Deferred[bool]:
        """Write the record C{name} only if there is none: whether it was written."""

    def get(name: str) -> Deferred[bytes | None]:
        """The record C{name}'s bytes, or L{None} when there is none."""

    def delete(names: Sequence[str]) -> Deferred[None]:
        """Remove the records C{names} (one not there is no error)."""

    def shown(name: str) -> str:
        """How the record C{name} is named to a person: its path, or its key."""

    def names(folder: str, after: str | None = None,
              limit: int | None = None) -> Deferred[list[str]]:
        """
        The names of the records directly in C{folder}, sorted (other names,
        copied there by hand, left out), after C{after}, C{limit} at most.
        """
