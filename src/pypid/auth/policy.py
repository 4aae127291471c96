"""
Who may read and who may write which project: users, groups and per-project
rules, in the manner of pypicloud's access control. Pure logic, no I/O.

A project's C{[acl]} rule is the one whose pattern names it most exactly: its
exact name first, then the glob with the most literal characters, then the
first in the file. A project that a rule covers is open to the principals the
rule lists (C{user:NAME}, C{group:NAME}, C{everyone}, C{authenticated}) and to
admins, and to no one else; other projects follow the C{[auth]} defaults.

Each C{[index:NAME]} says who may read it and who may upload to it
(L{IndexGrants}), checked before any project's rule; a rule may be for one
index (C{[acl] release/acme-*}), and there it decides before the rules for
every index.

A group is one of C{[groups]}, or one the directory says a user is in: those
change, so they come with each request's L{Identity}, and every check takes
them as C{groups}.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from fnmatch import fnmatchcase

import attrs

from pypid.auth.verifier import Identity
from pypid.core.access.access_rules import AUTHENTICATED, EVERYONE, READ, WRITE, IndexGrants, Rule
from pypid.core.dists.names import normalize
from pypid.core.indexes.index_names import DEFAULT as DEFAULT_INDEX
from pypid.core.indexes.namespaces import NamespaceGrants


@attrs.frozen
class AccessModel:
    """
    The permissions of one configuration: who must log in at all (the C{[auth]}
    defaults), and who may read and write which project. It only answers
    questions; the HTTP layer decides statuses.

    @ivar read: C{"everyone"} or C{"authenticated"}: who reads projects no
        rule covers.
    @ivar upload: C{"authenticated"}: who writes projects no rule covers.
    @ivar admin_groups: groups (of C{[groups]} or the directory) whose users
        may do everything (C{[auth] admins = group:NAME}).
    """

    read: str = attrs.field(default=EVERYONE,
                            validator=attrs.validators.in_((EVERYONE, AUTHENTICATED)))
    upload: str = attrs.field(default=AUTHENTICATED,
                              validator=attrs.validators.in_((AUTHENTICATED,)))
    groups: Mapping[str, frozenset[str]] = attrs.field(factory=dict)
    admins: frozenset[str] = frozenset()
    rules: tuple[Rule, ...] = ()
    admin_groups: frozenset[str] = frozenset()
    #: who may read and upload to each index of an C{[index:NAME]} section;
    #: an index absent follows C{read} and C{upload} above
    indexes: Mapping[str, IndexGrants] = attrs.field(factory=dict)
    #: PEP 752's grants (C{[namespaces]}): who alone may create projects of
    #: each namespace
    namespaces: NamespaceGrants = attrs.field(factory=NamespaceGrants)
    # index -> project -> its rule (most projects are asked of the default)
    _rule_memo: dict[str, dict[str, Rule | None]] = attrs.field(factory=dict, eq=False,
                                                                repr=False)

    def may_enter(self, identity: Identity | None, permission: str,
                  index: str = DEFAULT_INDEX) -> bool:
        """
        Whether C{identity} (L{None}: anonymous) may read (L{READ}) or upload
        (L{WRITE}) to the index at all, before any project is named.
        """
        if index in self.indexes:
            if identity is None:
                return self.index_admits(None, index, permission)
            return self.index_admits(identity.name, index, permission, identity.groups)
        default = self.read if permission == READ else self.upload
        return identity is not None or default == EVERYONE

    def index_admits(self, user: str | None, index: str, permission: str,
                     groups: AbstractSet[str] = frozenset()) -> bool:
        """
        Whether C{user} (in the directory C{groups}) has C{permission} on
        C{index} as a whole (admins always; an index without grants admits
        everyone, its projects deciding).
        """
        grants = self.indexes.get(index)
        if grants is None or self.is_admin(user, groups):
            return True
        return grants.admits(permission, self.principals(user, groups))

    def principals(self, user: str | None,
                   groups: AbstractSet[str] = frozenset()) -> set[str]:
        """Every principal C{user} (L{None}: anonymous), in the directory C{groups}, stands for."""
        found = {EVERYONE}
        if user is not None:
            found |= {AUTHENTICATED, f"user:{user}"}
            found |= {f"group:{group}" for group, members in self.groups.items()
                      if user in members}
            found |= {f"group:{group}" for group in groups}
        return found

    def in_group(self, user: str | None, group: str,
                 groups: AbstractSet[str] = frozenset()) -> bool:
        """Whether C{user} is in C{group}: of C{[groups]}, or of its directory C{groups}."""
        return user is not None and (group in groups or user in self.groups.get(group, ()))

    def is_admin(self, user: str | None, groups: AbstractSet[str] = frozenset()) -> bool:
        """Whether C{user} (in the directory C{groups}) may do everything."""
        if user is None:
            return False
        if user in self.admins:
            return True
        return bool(self.admin_groups) and any(
            self.in_group(user, group, groups) for group in self.admin_groups)

    def rule_for(self, project: str, index: str = DEFAULT_INDEX) -> Rule | None:
        """
        The L{Rule} that governs C{project} (normalized) in C{index}, or
        L{None}: the most specific of that index's rules, else of the rules for
        all.
        """
        memo = self._rule_memo.get(index)
        if memo is None:
            memo = self._rule_memo[index] = {}
        try:
            return memo[project]
        except KeyError:
            pass
        matching = [rule for rule in self.rules if rule.index in (None, index)
                    and fnmatchcase(project, rule.pattern)]
        rule = min(matching, key=_precedence) if matching else None
        if len(memo) < 100_000:
            memo[project] = rule
        return rule

    def allowed(self, user: str | None, project: str, permission: str,
                groups: AbstractSet[str] = frozenset(), index: str = DEFAULT_INDEX) -> bool:
        """
        Whether C{user} (in the directory C{groups}) has C{permission} (C{"r"}
        or C{"w"}) on C{project} in C{index}: the index's grants first, then
        the project's rule; a project no rule covers follows the index's grants
        (or, for an index without any, C{[auth]}).
        """
        if self.is_admin(user, groups):
            return True
        graded = index in self.indexes
        if graded and not self.index_admits(user, index, permission, groups):
            return False
        project = normalize(project)
        rule = self.rule_for(project, index)
        if rule is None:
            if graded:
                return True
            default = self.read if permission == READ else self.upload
            return default == EVERYONE or user is not None
        principals = self.principals(user, groups)
        return any(permission in perms for principal, perms in rule.grants
                   if principal in principals)

    def may_read(self, user: str | None, project: str,
                 groups: AbstractSet[str] = frozenset(), index: str = DEFAULT_INDEX) -> bool:
        """Whether C{user} (in the directory C{groups}) may see C{project} in C{index}."""
        return self.allowed(user, project, READ, groups, index)

    def may_write(self, user: str | None, project: str,
                  groups: AbstractSet[str] = frozenset(), index: str = DEFAULT_INDEX) -> bool:
        """Whether C{user} (in C{groups}) may upload to, yank or delete in C{project}."""
        return self.allowed(user, project, WRITE, groups, index)

    def reads_everything(self, user: str | None,
                         groups: AbstractSet[str] = frozenset(),
                         index: str = DEFAULT_INDEX) -> bool:
        """
        Whether C{user} (in the directory C{groups}) may read every project of
        C{index}: the common case, served from the pre-rendered pages.
        """
        if self.is_admin(user, groups):
            return True
        if index in self.indexes:
            if not self.index_admits(user, index, READ, groups):
                return False
        elif self.read != EVERYONE and user is None:
            return False
        principals = self.principals(user, groups)
        return all(any(READ in perms for principal, perms in rule.grants
                       if principal in principals)
                   for rule in self.rules if rule.index in (None, index))


def _precedence(rule: Rule) -> tuple[bool, tuple[int, int, int]]:
    """Sort key of the rules naming a project: an index's own first, then the most specific."""
    return (rule.index is None, rule.specificity())


def admin_users_and_groups(admins: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
    """C{[auth] admins} split into C{(user names, group names)} (a group is C{group:<name>})."""
    users = frozenset(admin for admin in admins if not admin.startswith("group:"))
    groups = frozenset(admin.removeprefix("group:") for admin in admins
                       if admin.startswith("group:"))
    return users, groups
