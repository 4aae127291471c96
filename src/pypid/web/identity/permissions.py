"""
What an identity may do: the rules and grants of an
L{pypid.auth.policy.AccessModel} with a token's scope and a trusted
publisher's own grant applied, for one identity at a time. Who the
identity is, is L{pypid.web.identity.identification}'s to find out; the gates that
join the two, and answer requests, are L{pypid.web.identity.access}'s.

A L{Permissions} is frozen and built whole from one model
(L{Permissions.of}): a reload makes a new one, so a check never sees half
of the old rules and half of the new. What anonymous clients may read is
worked out once there, since reads are the hot path: when everyone reads
everything, a read asks one boolean (L{Permissions.open_reads}).
"""

from __future__ import annotations

import attrs

from pypid.auth.policy import AccessModel
from pypid.auth.publisher_tokens import is_publisher
from pypid.auth.tokens import Token
from pypid.auth.verifier import Identity
from pypid.core.access.access_rules import READ, WRITE
from pypid.core.indexes.index_names import DEFAULT as DEFAULT_INDEX


@attrs.frozen
class Permissions:
    """
    The rules of one configuration, asked for one identity (L{None}:
    anonymous) at a time.
    """

    #: the L{pypid.auth.policy.AccessModel}
    model: AccessModel
    #: whether anonymous clients read every project of the default index
    open_reads: bool
    #: the same, for each named index
    _open_index_reads: dict[str, bool]
    #: each named index anonymous clients may enter (read at all)
    _open_entries: frozenset[str]
    #: whether some named index is hidden from anonymous clients: then a
    #: path that names no index asks them for credentials too
    hidden_from_anonymous: bool

    @classmethod
    def of(cls, model: AccessModel) -> Permissions:
        """The permissions of C{model}, with what anonymous clients read worked out."""
        entries = frozenset(index for index in model.indexes
                            if model.may_enter(None, READ, index))
        return cls(model, model.reads_everything(None),
                   {index: model.reads_everything(None, index=index) for index in model.indexes},
                   entries,
                   any(index not in entries for index in model.indexes if index != DEFAULT_INDEX))

    def open(self, index: str) -> bool:
        """Whether anonymous clients read every project of C{index}."""
        if index == DEFAULT_INDEX:
            return self.open_reads
        return self._open_index_reads.get(index, self.open_reads)

    def may_read(self, identity: Identity | None, project: str,
                 index: str = DEFAULT_INDEX) -> bool:
        """
        Whether C{identity} (L{None}: anonymous) may see C{project} of
        C{index}, token scope included.
        """
        if identity is None:
            return self.model.may_read(None, project, index=index)
        token: Token | None = identity.token
        if token is not None and not token.covers("read", project, index):
            return False
        return self.model.may_read(identity.name, project, identity.groups, index)

    def may_write(self, identity: Identity | None, project: str,
                  index: str = DEFAULT_INDEX) -> bool:
        """Whether C{identity} may upload to, yank or delete in C{project} of C{index}."""
        if identity is None:
            return self.model.may_write(None, project, index=index)
        token: Token | None = identity.token
        if token is not None:
            if not token.covers("upload", project, index):
                return False
            if is_publisher(identity.name):
                return True  # (its [publishers] rules are its grant, whatever [acl] says)
        return self.model.may_write(identity.name, project, identity.groups, index)

    def reads_everything(self, identity: Identity | None, index: str = DEFAULT_INDEX) -> bool:
        """Whether C{identity} may see every project of C{index} (pages need no filtering)."""
        if self.open(index):
            return True
        if identity is None:
            return self.model.reads_everything(None, index=index)
        token: Token | None = identity.token
        if token is not None and (token.projects or "read" not in token.actions
                                  or (token.indexes and index not in token.indexes)):
            return False
        return self.model.reads_everything(identity.name, identity.groups, index)

    def is_admin(self, identity: Identity | None) -> bool:
        """Whether C{identity} is an admin (with a password: tokens never are)."""
        return (identity is not None and identity.token is None
                and self.model.is_admin(identity.name, identity.groups))

    def may_read_index(self, identity: Identity | None, index: str) -> bool:
        """
        Whether C{identity} may read C{index} at all: its C{read} grant, and
        a token kept to other indexes may not (but a minted one: a trusted
        publisher's grant is its C{[publishers]} rules).
        """
        if identity is None:
            return self.model.may_enter(None, READ, index)
        token: Token | None = identity.token
        return (self.model.may_enter(identity, READ, index)
                and not (token is not None and token.indexes and index not in token.indexes
                         and not minted(identity)))

    def anyone_enters(self, index: str) -> bool:
        """Whether anonymous clients may enter the named C{index} (without grants: C{[auth]})."""
        if index in self._open_entries:
            return True
        return index not in self.model.indexes and self.model.may_enter(None, READ, index)

    def index_shown(self, identity: Identity | None, index: str) -> bool:
        """
        Whether C{identity} may enter the named C{index} at all: its
        C{[index:NAME] read} grant, and a token's indexes (one kept to other
        indexes sees this one as missing, unless anyone may enter it).
        """
        if self.anyone_enters(index):
            return True
        if identity is not None and minted(identity):
            # (a trusted publisher's grant is its [publishers] rules, in every
            # index: its minted token uploads and reads nothing else)
            return True
        if not self.model.may_enter(identity, READ, index):
            return False
        token: Token | None = identity.token if identity is not None else None
        return token is None or not token.indexes or index in token.indexes

    def may_upload_to(self, identity: Identity, index: str) -> bool:
        """
        Whether C{identity} may upload to the named C{index} at all (its
        C{upload} grant; a trusted publisher's is its C{[publishers]} rules,
        whichever index the upload goes to).
        """
        return minted(identity) or self.model.may_enter(identity, WRITE, index)


def minted(identity: Identity) -> bool:
    """Whether C{identity} is a trusted publisher's, by a token trusted publishing minted."""
    return identity.token is not None and is_publisher(identity.name)
