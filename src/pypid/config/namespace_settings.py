"""
The C{[namespaces]} section (issue 46: PEP 752's grants): a line per
namespace, in the style of C{[acl]} (C{acme = group:platform},
C{release/acme = user:bob hidden}), each checked on its own (the owners
exist, the index is one of the server's hosted indexes) and against the
others (L{pypid.core.namespaces.NamespaceGrants.of}).
"""

from __future__ import annotations

from collections.abc import Mapping

from pypid.config.auth_settings import check_principal
from pypid.config.values import Fail, Items
from pypid.core.namespaces import Grant, InvalidGrant, NamespaceGrants, parse_grant

#: The section's name.
NAMESPACES = "namespaces"


def read_namespaces(items: Items, users: Mapping[str, str],
                    groups: Mapping[str, frozenset[str]], directory: bool,
                    hosted: list[str], fail: Fail) -> NamespaceGrants:
    """
    The grants of C{[namespaces]}.

    @param hosted: the names of the hosted indexes (the default's too).
    @raise pypid.config.errors.ConfigError: through C{fail}, naming the line.
    """
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
    raise AssertionError("unreachable")  # (fail raises)
