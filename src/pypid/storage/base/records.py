"""
Small records kept with the packages, by name, in a few folders: the
journal's entries on a bucket (L{pypid.storage.base.journal_records}), the
webhooks' cursors, failures and lease (L{pypid.webhooks}). On local disk
as files under C{<storage path>/.pypid/<folder>/}
(L{pypid.storage.folder.folder_records.FolderRecords}), in a bucket as objects
under C{<prefix>.pypid/<folder>/}
(L{pypid.storage.bucket.bucket_records.BucketRecords}), and in memory for
the tests (C{tests.harness.memory_records}), so that what they hold outlives
a crash and every server on a shared bucket sees the same. Here is what all
three share.

A record is written whole and durably before its write is answered (a
file fsynced, renamed, and its folder fsynced; an object's PUT answered):
a reader sees the old record or the new, never part of one. L{put_new}
writes only a record that is not there yet (a file linked into place, an
object written with C{If-None-Match: *}): of several servers writing the
same name at once, exactly one succeeds, which is what a journal's serial
and a lease are claimed with.
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
        Write the records C{items} (name -> bytes), each whole, replacing
        any of the same name, in the order given (one is never seen before
        those before it); fires once all are durable.

        @rtype: L{Deferred} firing with L{None}, or failing with
            L{StorageError}
        """

    def put_new(name: str, data: bytes) -> Deferred[bool]:
        """
        Write the record C{name} only if there is none: whether it was
        written (L{False}: one was there, and stays as it was).
        """

    def get(name: str) -> Deferred[bytes | None]:
        """The record C{name}'s bytes, or L{None} when there is none."""

    def delete(names: Sequence[str]) -> Deferred[None]:
        """Remove the records C{names} (one not there is no error)."""

    def shown(name: str) -> str:
        """How the record C{name} is named to a person: its path, or its key."""

    def names(folder: str, after: str | None = None,
              limit: int | None = None) -> Deferred[list[str]]:
        """
        The names of the records directly in C{folder} (C{failed}), sorted,
        without it; a file or object of another name (one copied there by
        hand) is left out. With C{after}, only the names sorting after it;
        with C{limit}, that many at most (the first).
        """
