"""
Changes to files already stored in one hosted index: yank and unyank
(PEP 592), delete (into the recycle bin when the index has one),
restore out of the bin, and the removal of a whole release (pypiserver's
C{remove_pkg}). The routes that authenticate and audit them are
L{pypid.web.changes.publish.Publish}'s.

Every change to one distribution holds that distribution's lock from its
checks to its last write, and looks its file up again once it holds it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from pypid.auth.verifier import Identity
from pypid.core.dists.model import FileRecord
from pypid.core.dists.names import distribution_key, is_valid_name, normalize, project_of_filename
from pypid.core.dists.upload import check_form
from pypid.core.indexes.index import Index
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.util.http_errors import BadRequest, Conflict, Forbidden, NotFound
from pypid.core.util.units import counted, format_duration
from pypid.state.recycle_bin import NotInBin, RecycleBin, RestoreConflict
from pypid.storage.base.interface import FilenameDeleted, IStorage, StorageError
from pypid.storage.base.locks import KeyedLock
from pypid.web.changes.change_checks import NO_SUCH_RELEASE, ChangeChecks, storage_call
from pypid.web.server.audit_trail import AuditTrail, facts_of
from pypid.web.server.respond import send_text, storage_unavailable
from pypid.web.server.routes import requested_version
from pypid.web.server.upload_form import Form

#: (the namespace the publish routes always logged under: log filters keep matching)
log = Logger(namespace="pypid.web.changes.publish")

#: A change to one file: C{change(request, record, argument, identity)}.
FileChange = Callable[[IRequest, FileRecord, str | None, Identity], Awaitable[None]]


@attrs.define
class FileChanges:
    """
    Yanks, unyanks, deletes and restores in one hosted index.

    @ivar _bin: where a deleted file waits before it is purged (L{None}:
        none, a deletion deletes at once).
    @ivar _audit_index: what its audit entries say of the index (L{None}
        for the default's).
    """

    _index: Index
    _storage: IStorage
    _checks: ChangeChecks
    _audit: AuditTrail
    _locks: KeyedLock
    _bin: RecycleBin | None
    _audit_index: str | None

    def release(self, project: str, version: str) -> list[str]:
        """The files of C{project}'s C{version} (as a URL spells them), or L{NotFound}."""
        version = requested_version(version)
        entry = self._index.project(normalize(project)) if is_valid_name(project) else None
        files = [r.filename for r in (entry.files.values() if entry else ())
                 if r.version == version]
        if not files:
            raise NotFound(NO_SUCH_RELEASE)
        return files

    async def remove_release(self, request: IRequest, form: Form, identity: Identity,
                             ) -> bytes:
        """Delete every file of the release a C{remove_pkg} form names."""
        # (the form rules first, as for uploads: which copy of a repeated
        # :action, name or version is read must not matter)
        check_form(form)
        name, version = form.get("name") or "", form.get("version") or ""
        if not is_valid_name(name):
            raise BadRequest("name: a valid project name is required")
        project = normalize(name)
        self._checks.may_touch(self._checks.reader(request), project)
        filenames = self.release(name, version)
        await self.apply(request, project, filenames, self.delete, None, identity)
        removed = counted(len(filenames), "file")
        return send_text(request, 200, f"Removed {removed} of {name} {version}")

    async def apply(self, request: IRequest, project: str | None, filenames: list[str],
                    change: FileChange, argument: str | None, identity: Identity) -> None:
        """
        Apply C{change} with C{argument} to each of C{filenames} (of the
        normalized C{project}), each under its distribution's lock.
        """
        checks = self._checks
        checks.may_change_files(checks.reader(request))
        for filename in filenames:
            # (in the project the URL names, as uploads look: a miss while
            # the projects a start loaded later wait makes none of theirs)
            record = self._index.get_file(filename, project)
            # (a write grant without read learns whether what it names
            # exists; whoever may do neither gets one answer either way)
            if record is None:
                raise NotFound(NO_SUCH_RELEASE)
            reader = checks.reader(request)
            if not checks.may_change(reader, record.project):
                checks.may_touch(reader, record.project)
                raise Forbidden(f"{identity.name} may not change {record.project}")
            key = distribution_key(record.project, record.version, record.packagetype,
                                   record.filename)
            await self._locks.run(key, self._apply_locked, request, filename, change, argument,
                                  identity)

    async def _apply_locked(self, request: IRequest, filename: str, change: FileChange,
                            argument: str | None, identity: Identity) -> None:
        # (looked up again: a change that held the lock first may have deleted it)
        record = self._index.get_file(filename)
        if record is None:
            raise NotFound(f"no such file: {filename}")
        identity = await self._checks.confirmed(request, identity, record.project)
        await change(request, record, argument, identity)

    async def yank(self, request: IRequest, record: FileRecord, reason: str | None,
                   identity: Identity) -> None:
        """Yank C{record}'s file with C{reason}, or unyank it (C{reason} L{None})."""
        changed = record.replace(yanked=reason)
        if changed == record:
            return
        await storage_call(self._storage.update, changed)
        self._index.add(changed)
        self._audit.record(request, identity,
                           ChangeKind.YANK if reason is not None else ChangeKind.UNYANK,
                           detail=reason or None, index=self._audit_index, **facts_of(record))
        log.info("{user} {action} {filename}", user=identity.name,
                 action="yanked" if reason is not None else "unyanked", filename=record.filename)

    async def delete(self, request: IRequest, record: FileRecord, _argument: str | None,
                     identity: Identity) -> None:
        """Delete C{record}'s file: into the recycle bin when it is on, else for good."""
        bin = self._bin
        if bin is None or not bin.enabled:
            await storage_call(self._storage.delete, record)
            self._index.remove(record.filename)
            detail = None
        else:
            await storage_call(bin.put, record)
            detail = f"to the recycle bin, kept {format_duration(bin.keep_for)}"
        self._audit.record(request, identity, ChangeKind.DELETE, index=self._audit_index,
                           detail=detail, **facts_of(record))
        log.info("{user} deleted {filename}{where}", user=identity.name,
                 filename=record.filename, where=" (to the recycle bin)" if detail else "")

    async def restore(self, request: IRequest, filename: str, identity: Identity) -> bytes:
        """Take C{filename} out of the recycle bin, as whoever may delete it."""
        project = project_of_filename(filename)
        reader = self._checks.reader(request)
        self._checks.may_touch(reader, project)
        self._checks.may_change_files(reader)
        record = self._index.binned_file(filename) if self._bin is not None else None
        if record is None or record.project != project:
            raise NotFound(f"no such file in the recycle bin: {filename}")
        identity_now = await self._checks.confirmed(request, identity, record.project)
        restored = await self._restore(record)
        self._audit.record(request, identity_now, ChangeKind.RESTORE, index=self._audit_index,
                           **facts_of(restored))
        log.info("{user} restored {filename} from the recycle bin",
                 user=identity_now.name, filename=filename)
        return send_text(request, 200, f"Restored {filename}")

    async def _restore(self, record: FileRecord) -> FileRecord:
        """C{record}'s file out of the bin, with the answers a failure gets."""
        assert self._bin is not None
        try:
            return await self._bin.restore(record.filename)
        except (NotInBin, FilenameDeleted):
            raise NotFound(f"no such file in the recycle bin: {record.filename}")
        except RestoreConflict as e:
            raise Conflict(f"{record.filename} cannot be restored: {e.args[0]} is the same "
                           "distribution, uploaded since; delete it first")
        except StorageError as e:
            log.error("Storage failed on {filename}: {error}", filename=record.filename,
                      error=str(e))
            raise storage_unavailable(e)
