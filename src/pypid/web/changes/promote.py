"""
Promotion: C{POST /api/promote} brings a release from one hosted index to
another without its bytes going through pypid (devpi's C{push}).
docs/http-api.rst gives its checks, whose order fixes the status. A file
the target holds with the same bytes is skipped: it may be run again.

What a promotion cannot walk around (else a plain uploader could promote
a quarantined release into an index anonymous clients read): a project's
status (PEP 792), quarantined in C{from} or any hosted index it reads,
archived in C{from}, quarantined or archived in C{to}, or quarantined in
any hosted index C{to} reads (C{to} would offer the files the moment it
is lifted), admins included; and the advisories: a release
C{from}'s or C{to}'s deny is promoted only by an admin asking with
C{allow_denied}, which each file's audit entry records (hiding decides
pages, not files). Both are read again under the locks, with the rights:
what arrived while the promotion waited counts.

Nothing is half-promoted. Under the source's and the target's locks of
every distribution of the release (taken in one order, by index and key,
as no other change takes two, so none waits on another in a circle), the
release is read again, a journal naming the files is kept in the target's
storage, then each file is adopted
(L{pypid.storage.interface.IAdoptingStorage.adopt}); a failure discards
those adopted so far. Only once the journal is dropped does the target's
index get the records: the source's very objects, so a promoted record
takes its memory once. A crash in between leaves the journal, taken back
at the next start (L{pypid.state.loader.roll_back_promotions}). A delete
of the release in the source takes the lock in turn: first, nothing is
promoted (404); after, it takes the source's copy only. Each promoted
file is one C{promote} audit entry; docs/performance.rst has the timing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

import attrs
from klein import Klein
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from pypid.auth.oidc import is_publisher
from pypid.auth.verifier import Identity
from pypid.core.access.access_rules import READ
from pypid.core.dists.names import (
    WHEEL,
    InvalidName,
    canonical_version,
    filename_key,
    is_valid_name,
    normalize,
    variant_release,
)
from pypid.core.dists.wheel_variants import InvalidVariant, check_joins
from pypid.core.formats.admin_answers import Promoted
from pypid.core.indexes.index import Index
from pypid.core.indexes.index_names import DEFAULT as DEFAULT_INDEX
from pypid.core.indexes.index_names import index_section
from pypid.core.indexes.model import FileRecord
from pypid.core.indexes.promotion import Promotion
from pypid.core.indexes.promotion_journal import PromotionJournal
from pypid.core.security.advisories import DENY
from pypid.core.util.http_errors import (
    BadRequest,
    Conflict,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    TooLarge,
)
from pypid.state.indexes import HostedStack, IndexRegistry
from pypid.storage.interface import (
    FileExists,
    FilenameDeleted,
    IAdoptingStorage,
    IStorage,
    RecordRefused,
    StorageError,
)
from pypid.storage.locks import KeyedLock
from pypid.storage.measured import MeasuredStorage
from pypid.web.admin.audit_trail import AuditTrail, facts_of
from pypid.web.changes.change_checks import ChangeChecks
from pypid.web.identity.access import Access
from pypid.web.server.routes import answer_errors, bounded_body, is_form, send_json
from pypid.web.serving.respond import storage_unavailable

log = Logger()

#: What C{POST /api/promote} answers without credentials.
PROMOTE_LOGIN = "authentication is required to promote"

#: The largest request body: four short names.
MAX_BODY = 16 << 10

#: What C{allow_denied} from someone who is no admin answers (403).
NOT_ADMIN = "allow_denied: only an admin may promote a release the advisories deny"

#: The fields of a promotion's body, the optional one last.
FIELDS = ("from", "to", "project", "version", "allow_denied")

_T = TypeVar("_T")


@attrs.frozen
class PromoteRequest:
    """What a promotion asks: the release C{project} C{version}, from one index to another."""

    source: str
    target: str
    project: str
    version: str
    allow_denied: bool = False


@attrs.define(slots=False)
class Promote:
    """
    C{POST /api/promote}; see the module.

    @ivar _registry: the server's indexes (L{pypid.state.indexes.IndexRegistry}).
    @ivar _access: the L{pypid.web.identity.access.Access} gate.
    @ivar _audit: the L{pypid.web.admin.audit_trail.AuditTrail}.
    @ivar _clock: provides C{seconds()}: when a file was promoted.
    """

    _registry: IndexRegistry
    _access: Access
    _audit: AuditTrail = attrs.field(kw_only=True)
    _clock: IReactorTime = attrs.field(kw_only=True)

    app = Klein()
    answer_errors(app)

    @app.route("/api/promote", methods=["POST"])
    async def promote(self, request: IRequest) -> bytes:
        """
        Promote a release (JSON C{from}, C{to}, C{project}, C{version});
        answers JSON with the filenames C{promoted} and C{skipped}.
        """
        # (the grant that decides is the target index's: _promote)
        identity = await self._access.gate_upload(request, needed=PROMOTE_LOGIN, index=None)
        return send_json(request, await self.promote_as(
            request, identity, lambda: _asked(request), _asked_quietly(request)))

    def promote_as(self, request: IRequest, identity: Identity,
                   asked: Callable[[], PromoteRequest],
                   named: Mapping[str, object]) -> Awaitable[Promoted]:
        """
        Promote the release C{asked()} names, for C{identity} (who logged
        in on C{request}); each refusal audited with what C{named} says,
        that of C{asked()} too.
        """
        known = self._registry.orders
        source = named.get("from")
        return self._audit.recorded(
            request, "promote", self._promote(request, identity, asked), identity=identity,
            index=_entry_index(named.get("to"), known),
            target=source if isinstance(source, str) and source in known else None,
            project=_text(named.get("project")), version=_text(named.get("version")))

    def targets(self, identity: Identity, source: str) -> list[str]:
        """
        The hosted indexes, other than C{source}, that C{identity} sees and
        may upload to: where the console offers to promote a release to
        (the promotion itself checks the project's rights).
        """
        permissions = self._access.permissions
        return [name for name in self._registry.orders
                if name != source and name in self._registry.stacks
                and self._sees(identity, name) and permissions.may_upload_to(identity, name)]

    async def _promote(self, request: IRequest, identity: Identity,
                       ask: Callable[[], PromoteRequest]) -> Promoted:
        asked = ask()
        source_name, target_name = asked.source, asked.target
        for field, name in (("from", source_name), ("to", target_name)):
            if name not in self._registry.orders or not self._sees(identity, name):
                raise NotFound(f"{field}: no such index: {name}")
        target = self._registry.stacks.get(target_name)
        if target is None:
            raise MethodNotAllowed(f"to: {target_name} is a view: it takes no files")
        if source_name == target_name:
            raise BadRequest(f"to: the release is in {source_name} already")
        project = normalize(asked.project)
        if is_publisher(identity.name):
            raise Forbidden("a trusted publisher's token may only upload")
        if not self._access.permissions.may_read(identity, project, source_name):
            raise Forbidden(f"{identity.name} may not read {project} in {source_name}")
        if not (self._access.permissions.may_upload_to(identity, target_name)
                and self._access.may_write(identity, project, target_name)):
            raise Forbidden(f"{identity.name} may not upload {project} to {target_name}")
        if asked.allow_denied and not self._access.is_admin(identity):
            raise Forbidden(NOT_ADMIN)
        version = asked.version
        source = self._registry.stacks.get(source_name)
        records = self._release(source, project, version)
        if not records:
            raise NotFound(self._not_hosted(identity, source_name, project, version))
        assert source is not None  # (a view holds no records)
        keys = sorted({_key(r) for r in records})
        # (the source's locks too, so that a delete, a yank or a purge of
        # the release there and this promotion come one after the other;
        # taken in one order, (index, key), as no other change takes two)
        locks = sorted([(source_name, key, source.locks) for key in keys]
                       + [(target_name, key, target.locks) for key in keys],
                       key=lambda held: held[:2])
        # (and first, as an upload of a variant wheel takes it first, the
        # target's lock of the release's variant wheels: PEP 825's
        # agreement between them is checked under it)
        variants = sorted({key for key in map(variant_release, (r.filename for r in records))
                           if key is not None})
        promoted, skipped = await _under_locks(
            [(target.locks, key) for key in variants]
            + [(lock, key) for _, key, lock in locks], self._promote_locked, request, identity,
            source, target, project, version, frozenset(keys), asked.allow_denied)
        return {"from": source_name, "to": target_name, "project": project, "version": version,
                "promoted": promoted, "skipped": skipped}

    async def _promote_locked(self, request: IRequest, identity: Identity,
                              source: HostedStack, target: HostedStack, project: str,
                              version: str, keys: frozenset[str], allow_denied: bool,
                              ) -> tuple[list[str], list[str]]:
        """
        Check the project's status, the advisories and each file against
        the target, adopt them all or none, then index them: the files of
        the release the source holds now, under the locks (a delete that
        held them first took its files away).
        """
        # (the credentials and the rights as they are now: a reload or a
        # revocation may have come while the lock was awaited)
        identity = await self._access.confirm(request, identity)
        if not self._access.may_write(identity, project, target.name):
            raise Forbidden(f"{identity.name} may not upload {project} to {target.name}")
        source_name = source.name
        records = [r for r in self._release(source, project, version) if _key(r) in keys]
        if not records:
            raise NotFound(f"no such release: {project} {version} in {source_name} "
                           "(deleted meanwhile)")
        self._refuse_closed(source_name, target.name, project)
        _refuse_tags(source, target, project, records)
        # (a new project of the target in a namespace reserved there is its
        # owners' to make, as an upload's would be: PEP 752's 409)
        ChangeChecks(self._access, target.name).may_create(identity, project, target.index)
        override = self._overridden(identity, source_name, target.name, project, version,
                                    allow_denied)
        index = target.index
        # (the target's hash only to whoever may read it there)
        reveal = self._access.permissions.may_read(identity, project, target.name)
        wanted: list[FileRecord] = []
        skipped: list[str] = []
        for record in records:
            filename = record.filename
            there = index.get_file(filename, record.project)
            if there is not None:
                if there.sha256 != record.sha256:
                    raise other_bytes(filename, target.name, there.sha256 if reveal else None)
                skipped.append(filename)
                continue
            if index.is_deleted(filename):
                raise Conflict(f"{filename}: a file of that name was deleted from "
                               f"{target.name}; the name is never used again")
            other = index.same_distribution(filename)
            if other is not None:
                raise Conflict(f"{filename}: {target.name} holds {other}, the same "
                               "distribution under another name")
            wanted.append(record)
        if not wanted:
            return [], skipped
        _refuse_inconsistent(target.name, index, wanted)
        stored = target.stored
        assert IAdoptingStorage.providedBy(stored)  # (every backend adopts)
        backend = _backend(self._source_storage(source_name))
        promotion = Promotion(source_name, identity.name, self._clock.seconds())
        journal = PromotionJournal(uuid.uuid4().hex, source_name,
                                   tuple(r.replace(path=r.filename) for r in wanted))
        await _stored(partial(stored.keep_journal, journal.name, journal.to_bytes()), "")
        adopted: list[FileRecord] = []
        try:
            for record in wanted:
                adopted.append(await _stored(partial(stored.adopt, backend, record, promotion),
                                             record.filename, target.name, reveal))
            await _stored(partial(stored.drop_journal, journal.name), "")
        except BaseException:
            await self._take_back(stored, journal, adopted)
            raise
        for record, kept in zip(wanted, adopted, strict=True):
            # (the source's very record, when storage keeps it as it is)
            index.add_promoted(record if kept == record else kept, promotion)
            self._audit.record(request, identity, "promote",
                               index=_entry_index(target.name, self._registry.orders),
                               target=source_name, detail=override, **facts_of(kept))
            if override is not None:
                log.warn("{user} promoted {filename} from {source} to {target} "
                         "({override})", user=identity.name, filename=kept.filename,
                         source=source_name, target=target.name, override=override)
            else:
                log.info("{user} promoted {filename} from {source} to {target}",
                         user=identity.name, filename=kept.filename, source=source_name,
                         target=target.name)
        return [r.filename for r in adopted], skipped

    async def _take_back(self, stored: IAdoptingStorage, journal: PromotionJournal,
                         adopted: Sequence[FileRecord]) -> None:
        """
        Discard the files a failed promotion adopted, then its journal; a
        storage that fails here keeps the journal, and the next start
        takes the promotion back (L{pypid.state.loader.roll_back_promotions}).
        """
        try:
            for record in reversed(adopted):
                await stored.discard_adopted(record)
            await stored.drop_journal(journal.name)
        except Exception as e:
            log.error("Cannot take back the promotion {name} now (the next start will): "
                      "{error}", name=journal.name, error=str(e))

    def _refuse_closed(self, source: str, target: str, project: str) -> None:
        """
        Refuse the promotion of a project whose status forbids it (see the
        module): quarantined in an index C{source} or C{target} reads, or
        archived (or quarantined) in either itself.

        @raise Conflict: naming the status, the index and the reason.
        """
        for name, own, why in ((source, source, "its files are not promoted"),
                               (target, target, "it takes no promoted files")):
            for held in self._registry.orders.get(name, (name,)):
                stack = self._registry.stacks.get(held)
                status = stack.index.statuses.get(project) if stack is not None else None
                if status is not None and (status.quarantined
                                           or (held == own and status.closed)):
                    because = f" ({status.reason})" if status.reason else ""
                    raise Conflict(f"project {project} is {status.status} in index "
                                   f"{held}{because}: {why}")

    def _overridden(self, identity: Identity, source: str, target: str, project: str,
                    version: str, allow_denied: bool) -> str | None:
        """
        What the audit entries say of an admin's override of the
        advisories that deny the release in C{source} or C{target}
        (L{None}: none deny it).

        @raise Conflict: they deny it, and no override was asked for.
        @raise Forbidden: one was, by someone who is no admin (now).
        @raise AdvisoriesUnread: they are still to be read, and an index denies.
        """
        denied = []
        for name in dict.fromkeys((source, target)):
            policy = self._registry.policies.get(name)
            # (an index that only hides has nothing to say here, read or not)
            verdict = (policy.denied(project, version)
                       if policy is not None and policy.rules.mode == DENY else None)
            if verdict is not None:
                denied.append((name, ", ".join(verdict.ids)))
        if not denied:
            return None
        if not allow_denied:
            name, ids = denied[0]
            raise Conflict(f"{project} {version} is denied by the advisories of index "
                           f"{name} ({ids}): only an admin may promote it, with allow_denied")
        if not self._access.is_admin(identity):
            raise Forbidden(NOT_ADMIN)
        return "allow_denied: " + "; ".join(f"denied by {name} ({ids})" for name, ids in denied)

    def _release(self, source: HostedStack | None, project: str,
                 version: str) -> list[FileRecord]:
        """The files of the release hosted in C{source} itself (none in a view)."""
        entry = source.index.project(project) if source is not None else None
        if entry is None:
            return []
        return sorted((r for r in entry.files.values() if r.version == version),
                      key=lambda r: r.filename)

    def _not_hosted(self, identity: Identity, source_name: str, project: str,
                    version: str) -> str:
        """Why the release cannot be promoted from C{source_name}: the index that holds it."""
        for name in self._registry.orders[source_name]:
            stack = self._registry.stacks.get(name)
            if (name != source_name and stack is not None and self._sees(identity, name)
                    and self._access.permissions.may_read(identity, project, name)
                    and self._release(stack, project, version)):
                return (f"no files of {project} {version} in {source_name}: {name} holds "
                        f"them; promote from {name}")
        return f"no such release: {project} {version} in {source_name}"

    def _source_storage(self, name: str) -> IStorage:
        stack = self._registry.stacks[name]
        return stack.stored

    def _sees(self, identity: Identity, index: str) -> bool:
        """
        Whether C{identity} may see C{index} at all (else it is missing, to
        them): its grants. (A token's index scope is a question of the
        projects: a token kept to other indexes is refused with a 403.)
        """
        return self._access.model.may_enter(identity, READ, index)


def _backend(storage: IStorage) -> IStorage:
    """The storage that does the work behind a timed one: what a backend's adopt compares."""
    return storage.inner if isinstance(storage, MeasuredStorage) else storage


def _key(record: FileRecord) -> str:
    """The key of an index's lock a change to C{record}'s distribution is made under."""
    return filename_key(record.filename) or record.filename


async def _under_locks(locks: Sequence[tuple[KeyedLock, str]],
                       f: Callable[..., Awaitable[_T]], *args: Any) -> _T:
    """Await C{f(*args)} holding every C{(lock, key)} of C{locks}, taken in that order."""
    if not locks:
        return await f(*args)
    (lock, key), rest = locks[0], locks[1:]
    return await lock.run(key, _under_locks, rest, f, *args)


def _refuse_inconsistent(target: str, index: Index, wanted: list[FileRecord]) -> None:
    """
    Refuse (409) a promotion whose variant wheels (PEP 825) disagree with
    those of the release the target holds (live or in its recycle bin), as
    an upload of them would be (L{check_joins}).
    """
    taken: list[str] = []
    for record in wanted:
        if record.variant is None:
            continue
        try:
            # (and with those promoted with it: a folder's may disagree)
            check_joins(record.variant,
                        index.release_variants(record.project, record.version) + taken)
        except InvalidVariant as e:
            raise Conflict(f"{record.filename}: {e}, in {target}") from None
        taken.append(record.variant)


def other_bytes(filename: str, target: str, sha256: str | None) -> Conflict:
    """
    The 409 of a promotion whose file the target holds with other bytes,
    naming their sha256 when the promoter may read the project there
    (C{sha256} L{None}: not).
    """
    shown = f" (sha256 {sha256})" if sha256 is not None else ""
    return Conflict(f"{filename}: {target} holds a file of that name with other bytes{shown}")


async def _stored(call: Callable[[], Deferred[_T]], filename: str, target: str = "",
                  reveal: bool = False) -> _T:
    """
    Await C{call()}, a storage call of a promotion (one that raises at once
    too), its refusals turned into answers:
    a name taken or deleted in the target (409 naming it), a source file
    gone (404), a storage failure (503).
    """
    try:
        return await maybeDeferred(call)
    except FileExists as e:
        raise other_bytes(filename, target, e.sha256 if reveal else None)
    except FilenameDeleted:
        raise Conflict(f"{filename}: a file of that name was deleted from {target}; the "
                       "name is never used again")
    except FileNotFoundError:
        raise NotFound(f"{filename}: no longer stored in the index it is promoted from")
    except RecordRefused as e:
        raise Conflict(f"{filename}: {target} cannot keep it: {e}") from None
    except StorageError as e:
        log.error("Promotion failed on {filename}: {error}", filename=filename or "its journal",
                  error=str(e))
        raise storage_unavailable(e)


def _entry_index(name: object, known: Any) -> str | None:
    """An audit entry's C{index}: a known index's name, L{None} for the default or another."""
    return name if isinstance(name, str) and name in known and name != DEFAULT_INDEX else None


def _refuse_tags(source: HostedStack, target: HostedStack, project: str,
                 records: Sequence[FileRecord]) -> None:
    """
    Refuse the promotion of wheels the target's uploads might refuse for
    their tags: the source takes its project's wheels whatever
    their C{WHEEL} Tag lines (C{allow_tag_mismatch}) and the target does
    not, so a wheel may be one the target refuses; the archive is not read
    again to tell, and the target's key decides.

    @raise Conflict: naming the key that lets them through.
    """
    if not any(record.packagetype == WHEEL for record in records):
        return
    if (source.uploads.current.allows_tag_mismatch(project)
            and not target.uploads.current.allows_tag_mismatch(project)):
        raise Conflict(f"{project}: {source.name} takes its wheels whatever their WHEEL tags "
                       f"(allow_tag_mismatch) and {target.name} does not; name the project in "
                       f"{index_section(target.name)} allow_tag_mismatch to promote them")


def _body(request: IRequest) -> bytes:
    return bounded_body(request, MAX_BODY)


def _form(request: IRequest) -> dict[str, Any]:
    """A form's fields of a promotion, as its JSON would name them (L{form_fields})."""
    return form_fields({field: values[0].decode("utf-8", "replace")
                        for field in FIELDS
                        if (values := request.args.get(field.encode("ascii")))})


def form_fields(data: dict[str, Any]) -> dict[str, Any]:
    """A promotion's form fields, C{allow_denied} made a truth as JSON's would be."""
    if "allow_denied" in data:
        # (as JSON's true or false: anything else is refused by _asked)
        data["allow_denied"] = {"true": True, "false": False}.get(
            data["allow_denied"].lower(), data["allow_denied"])
    return data


def _asked_quietly(request: IRequest) -> dict[str, Any]:
    """What the body names, as far as it is a JSON object (for a refusal's audit entry)."""
    if is_form(request):
        data = _form(request)
    else:
        try:
            data = json.loads(_body(request))
        except (ValueError, RecursionError, TooLarge):
            return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str) and len(v) <= 200}


def _asked(request: IRequest) -> PromoteRequest:
    """
    The promotion the JSON body asks for (or a urlencoded form's fields of
    the same names).

    @raise HTTPError: 413 for a body too large, 400 naming the field that is wrong.
    """
    if is_form(request):
        return promote_request(_form(request))
    try:
        return promote_request(json.loads(_body(request)))
    except (ValueError, RecursionError):
        raise BadRequest(SHAPE)


#: What a body that is not a promotion's object is told.
SHAPE = 'expected a JSON object: {"from": ..., "to": ..., "project": ..., "version": ...}'


def promote_request(data: object) -> PromoteRequest:
    """The promotion C{data}, a JSON value or a form's fields, asks for; 400 naming the field."""
    if not isinstance(data, dict):
        raise BadRequest(SHAPE)
    values = {}
    for field in ("from", "to", "project", "version"):
        value = data.get(field)
        if not isinstance(value, str) or not value.strip():
            raise BadRequest(f"{field}: missing, or not text")
        values[field] = value.strip()
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise BadRequest(f"{unknown[0]}: not a field of a promotion")
    allow_denied = data.get("allow_denied", False)
    if not isinstance(allow_denied, bool):
        raise BadRequest("allow_denied: true or false")
    if not is_valid_name(values["project"]):
        raise BadRequest(f"project: {values['project']!r} is not a valid project name")
    try:
        version = canonical_version(values["version"])
    except InvalidName:
        raise BadRequest(f"version: {values['version']!r} is not a valid version")
    return PromoteRequest(values["from"], values["to"], values["project"], version,
                          allow_denied)


def _text(value: object) -> str | None:
    """A short text of a request, for a refusal's audit entry; L{None} for anything else."""
    return value if isinstance(value, str) and len(value) <= 200 else None
