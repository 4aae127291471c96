"""
The checks every change to one hosted index shares (an upload, a yank, an
unyank, a delete, a restore): its C{upload} grant, the rights on one
project in it, the credentials checked again as the change commits, and
the answers a failed storage call gets, so that uploads and the changes
of stored files say the same words.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from pypid.auth.reader import Reader
from pypid.auth.verifier import Identity
from pypid.core.dists.model import FileRecord
from pypid.core.indexes.index import Index
from pypid.core.indexes.index_names import DEFAULT as DEFAULT_INDEX
from pypid.core.util.http_errors import Conflict, Forbidden, NotFound, Unauthorized
from pypid.storage.base.interface import AlreadyBinned, FilenameDeleted, StorageError
from pypid.web.identity.gates import UPLOAD_LOGIN, Gates
from pypid.web.server.respond import storage_unavailable

#: (the namespace the publish routes always logged under: log filters keep matching)
log = Logger(namespace="pypid.web.changes.publish")

#: What a change to a file or release no one may see or change answers.
NO_SUCH_RELEASE = "no such file or release"


@attrs.frozen
class ChangeChecks:
    """The gate's answers for changes to the index C{name}."""

    _access: Gates
    _name: str

    def reader(self, request: IRequest) -> Reader:
        """What the request's identity may do, as its gate keeps it (L{Gates.reader})."""
        return self._access.reader(request)

    def may_change(self, reader: Reader, project: str) -> bool:
        """Whether C{reader} may upload to, yank or delete in C{project} of this index."""
        return reader.writes(project, self._name)

    def may_upload_here(self, reader: Reader) -> None:
        """
        Refuse an identity without this index's C{upload} grant: a named
        index's with 403 (its gate showed the index to this identity), the
        default index's with 401, as the site's check before the body does.
        """
        if not reader.uploads_to(self._name):
            if self._name == DEFAULT_INDEX:
                raise Unauthorized(UPLOAD_LOGIN)
            raise Forbidden(reader.upload_refusal(self._name, index=self._name))

    def may_upload(self, reader: Reader, project: str) -> None:
        """Refuse (403) C{reader} an upload to C{project} of this index, naming what refuses."""
        if not reader.writes(project, self._name):
            raise Forbidden(reader.upload_refusal(project, project, self._name))

    @staticmethod
    def may_change_files(reader: Reader) -> None:
        """
        Refuse a trusted publisher's token any change but an upload: its
        grant, C{[publishers]}, is to publish (a release stays as CI made it).
        """
        if reader.minted:
            raise Forbidden("a trusted publisher's token may only upload")

    def may_touch(self, reader: Reader, project: str | None) -> None:
        """
        Refuse, as if nothing were there, an identity that may neither see
        nor change C{project} (L{None}: not a project's name): before
        anything is looked up, so that the refusal takes as long whether the
        file or release exists or not.
        """
        if project is None or not (reader.writes(project, self._name)
                                   or reader.reads(project, self._name)):
            raise NotFound(NO_SUCH_RELEASE)

    def may_create(self, reader: Reader, project: str, index: Index) -> None:
        """
        Refuse (409, PEP 752) a new C{project} of C{index} in a namespace
        reserved in it for others than C{reader}; a project it holds
        already (deleted or binned files too) keeps taking them.
        """
        held = index.project(project)
        if held is not None and held.claimed:
            return
        grant = reader.namespace_refusal(project, self._name)
        if grant is not None:
            # (a hidden grant is named to its owners alone: it is not theirs)
            where = "a namespace" if grant.hidden else f"the namespace {grant.name}"
            raise Conflict(f"{project} is in {where}, reserved in "
                           f"{self._name} for its owners: only they may create projects there")

    async def confirmed(self, request: IRequest, identity: Identity, project: str,
                        ) -> Identity:
        """C{identity} checked again as a change to C{project} commits, by the rules now."""
        identity = await self._access.confirm(request, identity)
        if not self.may_change(self.reader(request), project):
            raise Forbidden(f"{identity.name} may not change {project}")
        return identity


async def storage_call(operation: Callable[[FileRecord], Awaitable[Any]],
                       record: FileRecord) -> Any:
    """C{operation(record)}: a file deleted or binned meanwhile answers 404, a failure 503."""
    try:
        return await operation(record)
    except (FilenameDeleted, AlreadyBinned):
        # (deleted, or put in the bin, by another server meanwhile)
        raise NotFound(f"no such file: {record.filename}")
    except StorageError as e:
        log.error("Storage failed on {filename}: {error}", filename=record.filename,
                  error=str(e))
        raise storage_unavailable(e)
