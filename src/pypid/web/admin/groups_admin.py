"""
C{GET /api/groups} (admins): who is in which group, as the
configuration says, and which groups it names that only a directory or a
single sign-on provider fills (their members are known at each login,
not here). What the console's "Groups" page shows.
"""

from __future__ import annotations

import attrs
from klein import Klein
from twisted.web.iweb import IRequest

from pypid.core.formats.admin_answers import GroupsListing
from pypid.web.identity.gates import Gates
from pypid.web.server.routes import answer_errors, send_json

#: What the route answers without credentials.
GROUPS_LOGIN = "authentication is required to read the groups"


@attrs.define(slots=False)
class GroupsAdmin:
    """C{GET /api/groups}."""

    _access: Gates

    app = Klein()
    answer_errors(app)

    @app.route("/api/groups", methods=["GET", "HEAD"])
    async def groups(self, request: IRequest) -> bytes:
        """
        C{[groups]}, C{[auth] admins}, and the groups the rules, grants and
        admins name that C{[groups]} does not define (C{outside_groups}).
        """
        await self._access.admin(request, GROUPS_LOGIN)
        return send_json(request, self.listing())

    def listing(self) -> GroupsListing:
        """The groups as configured now (see L{groups})."""
        model = self._access.model
        principals = [principal for rule in model.rules for principal, _ in rule.grants]
        principals += [principal for grants in model.indexes.values()
                       for principal in grants.read | grants.upload]
        named = {principal.removeprefix("group:") for principal in principals
                 if principal.startswith("group:")} | set(model.admin_groups)
        return {
            "groups": {name: sorted(members) for name, members in sorted(model.groups.items())},
            "admins": sorted(model.admins), "admin_groups": sorted(model.admin_groups),
            "outside_groups": sorted(named - set(model.groups))}
