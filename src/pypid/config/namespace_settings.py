"""
The C{[namespaces]} section (PEP 752's grants): a line per namespace, in
the style of C{[acl]} (C{acme = group:platform}, C{release/acme = user:bob
hidden}), each checked on its own and against the others.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from pypid.config.auth_settings import check_principal
from pypid.config.values import Fail, Items
from pypid.core.indexes.index_names import DEFAULT, UPSTREAM_PREFIX, resolve_order
from pypid.core.indexes.namespaces import Grant, InvalidGrant, NamespaceGrants, parse_grant

#: The section's name.
NAMESPACES = "namespaces"


def read_namespaces(items: Items, users: Mapping[str, str],
                    groups: Mapping[str, frozenset[str]], directory: bool,
                    hosted: list[str], fail: Fail) -> NamespaceGrants:
    """The grants of C{[namespaces]}, in the C{hosted} indexes (the default's too)."""
    grants: list[Grant] = []
    for key, value in items(NAMESPACES):
        try:
            grant = parse_grant(key, value)
        except InvalidGrant as e:
            fail(NAMESPACES, key, str(e))
        if grant.index is not None and grant.index not in hosted:
            fail(NAMESPACES, key, f"{grant.index!r} is not a hosted index of this server "
                 f"(they are {', '.join(hosted)})")
        for owner in sorted(grant.owners):
            try:
                check_principal(owner, users, groups, directory)
            except ValueError as e:
                fail(NAMESPACES, key, str(e))
        grants.append(grant)
    try:
        return NamespaceGrants.of(grants)
    except InvalidGrant as e:
        fail(NAMESPACES, None, str(e))


def check_namespaces_through(items: Items, grants: NamespaceGrants,
                             bases: Mapping[str, Sequence[str]], views: Collection[str],
                             fail: Fail) -> None:
    """
    Refuse a grant in force in one of the hosted indexes an index reads
    (through its bases too) that another of them does not hold for the same
    owners: anyone who may upload to that other index could make a project in
    the namespace there, and the index would serve it among the owners' own.
    Shaped as L{pypid.config.index_settings.check_read_through}.

    @param bases: each index's bases, by name.
    """
    lines = {}
    for key, value in items(NAMESPACES):
        try:
            lines[parse_grant(key, value)] = key
        except InvalidGrant:
            continue
    for name in [DEFAULT, *(n for n in bases if n != DEFAULT)]:
        sources = [source for source in resolve_order(name, bases, views)
                   if not source.startswith(UPSTREAM_PREFIX)]
        for holder in sources:
            for grant in grants.in_force(holder):
                for other in sources:
                    theirs = grants.granted(grant.name, other)
                    if other == holder or (theirs is not None
                                           and theirs.owners == grant.owners):
                        continue
                    held = "it is not reserved" if theirs is None else "other owners hold it"
                    if holder == name:
                        reads = f"which reads {other} through its bases, where {held}"
                    elif other == name:
                        reads = f"which {name} reads through its bases, where in {name} {held}"
                    else:
                        reads = f"and {name} reads {other} too, where {held}"
                    base = holder if other == name else other
                    fail(NAMESPACES, lines.get(grant, grant.name),
                         f"{grant.name} is reserved in {holder}, {reads}: anyone who may "
                         f"upload to {other} could make a project in it there, and {name} "
                         "would serve it with the owners' own. Reserve it in "
                         f"{other} for the same owners ({other}/{grant.name}), or take "
                         f"{base} out of {name}'s bases",
                         [(f"index:{name}", "bases")])
