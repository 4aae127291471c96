"""
What one identity may do under the configuration in force, as one value: the
L{Reader}. Every access question has one implementation here, and only this
module asks the access model's rules (tests/unit/test_layers.py holds that);
the routes and pages ask the reader, never the model.

Credentials never give less than none: what anyone may do, every reader may
(where anyone reads an index whole, the express lane does not even look at
credentials). Beyond that, a token's scope bounds what its person adds: a
project or index outside it reads as missing where anyone may not read it (404,
as a hidden index). A token trusted publishing minted acts by its
C{[publishers]} rules alone: it enters every index and may upload to any, and
reads only what anyone reads (its one action is C{upload}).

L{Rules} are made whole from one model (a reload makes new ones), with what
anonymous clients may do worked out once: when everyone reads everything, a
read asks one boolean.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from pypid.auth.policy import AccessModel
from pypid.auth.publisher_tokens import is_publisher
from pypid.auth.tokens import Token, TokenBook
from pypid.auth.verifier import Identity
from pypid.core.access.access_rules import READ, WRITE
from pypid.core.dists.names import is_valid_name, normalize
from pypid.core.indexes.index_names import DEFAULT as DEFAULT_INDEX
from pypid.core.indexes.namespaces import Grant, refusal

#: The fields of an audit entry a project's owner reads (not an admin):
#: never the addresses and tokens of others, nor the index a promotion
#: came from (one that may be hidden from them).
OWNER_FIELDS = frozenset({"time", "event", "outcome", "user", "index", "project", "version", "id",
                          "filename", "sha256", "detail", "count"})

#: What L{Reader.audit_fields} answers one who may read no audit entry.
NO_FIELDS: frozenset[str] = frozenset()


@attrs.frozen
class Rules:
    """
    The rules of one configuration, with the C{anonymous} reader worked out.

    @ivar hidden_from_anonymous: whether some named index is hidden from
        anonymous clients: then a path naming no index asks for credentials too.
    """

    model: AccessModel
    anonymous: Reader = attrs.field(init=False)
    hidden_from_anonymous: bool = attrs.field(init=False)
    #: whether anonymous clients read every project of each named index
    _open_reads: Mapping[str, bool] = attrs.field(init=False)
    #: whether they read every project of the default index
    _open_default: bool = attrs.field(init=False)
    #: each named index anonymous clients may enter (read at all)
    _open_entries: frozenset[str] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        model = self.model
        entries = frozenset(index for index in model.indexes
                            if model.may_enter(None, READ, index))
        set_ = object.__setattr__
        set_(self, "_open_default", model.reads_everything(None))
        set_(self, "_open_reads", {index: model.reads_everything(None, index=index)
                                   for index in model.indexes})
        set_(self, "_open_entries", entries)
        set_(self, "hidden_from_anonymous",
             any(index not in entries for index in model.indexes if index != DEFAULT_INDEX))
        set_(self, "anonymous", Reader(self, None))

    def reader(self, identity: Identity | None) -> Reader:
        """The reader of C{identity} (L{None}: anonymous)."""
        return self.anonymous if identity is None else Reader(self, identity)

    def open(self, index: str) -> bool:
        """Whether anonymous clients read every project of C{index}."""
        if index == DEFAULT_INDEX:
            return self._open_default
        return self._open_reads.get(index, self._open_default)

    def anyone_enters(self, index: str) -> bool:
        """Whether anonymous clients may enter C{index}."""
        if index in self._open_entries:
            return True
        return index not in self.model.indexes and self.model.may_enter(None, READ, index)

    def is_index(self, index: str) -> bool:
        """Whether C{index} is one of the server's (the default, or a named one with grants)."""
        return index == DEFAULT_INDEX or index in self.model.indexes


@attrs.frozen
class Reader:
    """What one identity (L{None}: anonymous) may do under L{Rules}, made once per request."""

    _rules: Rules
    identity: Identity | None

    @property
    def minted(self) -> bool:
        """Whether this is a trusted publisher's, by a token trusted publishing minted."""
        identity = self.identity
        return identity is not None and identity.token is not None \
            and is_publisher(identity.name)

    @property
    def is_person(self) -> bool:
        """
        Whether the identity is a person logged in (a password, a browser
        session): a token never manages tokens nor acts as an admin.
        """
        return self._person is not None

    @property
    def _person(self) -> Identity | None:
        """The identity when it is a person logged in (L{is_person}), else L{None}."""
        identity = self.identity
        return identity if identity is not None and identity.token is None else None

    @property
    def is_admin(self) -> bool:
        """Whether the identity is an admin (with a password: tokens never are)."""
        person = self._person
        return person is not None and self._rules.model.is_admin(person.name, person.groups)

    @property
    def uploads(self) -> bool:
        """Whether the identity's credentials upload: a person's, a token's with C{upload}."""
        identity = self.identity
        return identity is not None and (identity.token is None
                                         or "upload" in identity.token.actions)

    def member_of(self, group: str) -> bool:
        """Whether the identity is in C{group} (of C{[groups]}, its directory's, its provider's)."""
        identity = self.identity
        return identity is not None and self._rules.model.in_group(identity.name, group,
                                                                   identity.groups)

    def enters(self, index: str) -> bool:
        """
        Whether the identity may enter C{index} at all (read its pages, however
        filtered): by its C{read} grant, where a token kept to other indexes
        may not and a minted token may.
        """
        identity = self.identity
        if self._rules.anyone_enters(index):
            return True
        if identity is None:
            return False
        token = identity.token
        if token is not None:
            if self.minted:
                return True
            if token.indexes and index not in token.indexes:
                return False
        return self._rules.model.may_enter(identity, READ, index)

    def reads_all(self, index: str = DEFAULT_INDEX) -> bool:
        """Whether the identity may see every project of C{index} (pages need no filtering)."""
        rules = self._rules
        if rules.open(index):
            return True
        identity = self.identity
        if identity is None:
            return False
        token = identity.token
        if token is not None and (token.projects or not token.covers("read", index=index)):
            return False
        return rules.model.reads_everything(identity.name, identity.groups, index)

    def reads(self, project: str, index: str = DEFAULT_INDEX) -> bool:
        """Whether the identity may see C{project} of C{index} (others answer 404)."""
        rules = self._rules
        if rules.open(index):
            return True
        identity = self.identity
        if identity is None:
            return rules.model.may_read(None, project, index=index)
        token = identity.token
        if token is not None and not token.covers("read", project, index):
            return False
        return rules.model.may_read(identity.name, project, identity.groups, index)

    def uploads_to(self, index: str) -> bool:
        """
        Whether the identity may upload to C{index} at all, before a project
        is named (its C{upload} grant; a trusted publisher, to any index).
        """
        return self.minted or self._rules.model.may_enter(self.identity, WRITE, index)

    def writes(self, project: str, index: str = DEFAULT_INDEX) -> bool:
        """Whether the identity may upload to, yank or delete in C{project} of C{index}."""
        identity = self.identity
        model = self._rules.model
        if identity is None:
            return model.may_write(None, project, index=index)
        token = identity.token
        if token is not None:
            if not token.covers("upload", project, index):
                return False
            if self.minted:
                return True  # (its [publishers] rules are its grant, whatever [acl] says)
        return model.may_write(identity.name, project, identity.groups, index)

    def upload_refusal(self, where: str, project: str | None = None,
                       index: str | None = None) -> str:
        """
        Why the identity may not upload to C{where} (a project or an index):
        blaming the token when its scope is what refuses, else the user.
        """
        identity = self.identity
        token: Token | None = identity.token if identity is not None else None
        if token is not None and not token.covers("upload", project, index):
            scope = (" ".join(token.projects) if token.projects and project is not None
                     else " ".join(token.indexes) if token.indexes else "")
            kept = f" (it is kept to {scope})" if scope else ""
            return f"token {token.id} may not upload to {where}{kept}"
        return f"{identity.name if identity is not None else 'anonymous'} may not upload to {where}"

    def owns(self, project: str, index: str) -> bool:
        """
        Whether the identity has an owner's rights on C{project} of C{index}
        (as reading a project's audit trail or downloads asks): the index is
        one of the server's that it may enter, and it may both see and change
        the project there; a missing and a hidden index answer alike.
        """
        return (self._rules.is_index(index) and self.enters(index)
                and self.reads(project, index) and self.writes(project, index))

    def audit_fields(self, project: str, index: str) -> frozenset[str] | None:
        """
        The fields of the audit entries the identity reads, for a query
        naming C{project} of C{index} (as sent: either may be empty): every
        one (L{None}) for an admin; L{OWNER_FIELDS} for a person who owns the
        project there; L{NO_FIELDS} (refused) for anyone else, and a token.
        """
        if self.is_admin:
            return None
        if self.is_person and project and is_valid_name(project) \
                and self.owns(normalize(project), index):
            return OWNER_FIELDS
        return NO_FIELDS

    def may_revoke(self, token: Token, book: TokenBook) -> bool:
        """Whether the identity may revoke C{token}: an admin any, a person their own."""
        person = self._person
        if person is None:
            return False
        return self.is_admin or book.belongs(token, person.name, person.login)

    def sees_grant(self, grant: Grant) -> bool:
        """Whether the identity sees a hidden namespace grant and its owners (owners, admins do)."""
        identity = self.identity
        if identity is None:
            return False
        if self.is_admin:
            return True
        return bool(grant.owners & self._rules.model.principals(identity.name,
                                                                identity.groups))

    def namespace_refusal(self, project: str, index: str = DEFAULT_INDEX) -> Grant | None:
        """
        The grant (PEP 752) whose namespace the normalized C{project} falls in
        and of which the identity owns no part (it may not create the project
        in C{index}), or L{None}.
        """
        identity = self.identity
        model = self._rules.model
        grants = model.namespaces.matching(project, index)
        if not grants:
            return None
        principals = (model.principals(None) if identity is None
                      else model.principals(identity.name, identity.groups))
        return refusal(grants, principals, self.is_admin)
