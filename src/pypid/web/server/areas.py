"""
One resource over several small Klein apps (the I{areas}): each request goes, whole path
untouched, to the area whose routes start with its first segment (under C{/api/} and
C{/console/}, its first two). The site's root uses it for its areas and the default index's,
C{/NAME/} for a named index's.

Each route is written once, with its whole path, as the URL a client sends: which area owns
which segment is read from the routes (L{Areas}), not kept in a table that could disagree with
them. Mounting the areas under prefixes would not answer alike: the mount's own path
(C{/api/tokens}) would reach the area as an empty path, which werkzeug redirects, and
C{/api/tokens/}, now a 404, as that same route.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import werkzeug.exceptions
from klein import Klein
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request
from werkzeug.routing import Rule

from pypid.core.util.http_errors import BadRequest, NotFound
from pypid.web.server.respond import Rendered, send_error, wrong_method_error


class Area(Protocol):
    """An area of the site or of an index: an object with its own Klein app."""

    app: Klein


#: Where an area's routes are found: C{{segment or method of /: Klein resource}}.
_Table = dict[bytes, IResource]

#: The first segments whose areas are told apart by the second.
SPLIT = frozenset({b"api", b"console"})


class Areas(Resource):
    """
    Hands each request to the Klein resource of the area owning its first segment (its first
    two under L{SPLIT}); C{/} itself goes by its method. One dictionary lookup a request.

    @ivar _root: C{{method: resource}} of the routes of C{/}.
    @ivar _first: C{{first segment: resource}} of the other routes.
    @ivar _second: C{{first segment: {second segment: resource}}} under each of L{SPLIT}.
    """

    isLeaf = True

    def __init__(self, areas: Iterable[Area]) -> None:
        """
        @raise ValueError: if two areas claim the same segment (or method of C{/}), or a route
            starts with a variable: either would leave a route no request reaches.
        """
        Resource.__init__(self)
        self._root: _Table = {}
        self._first: _Table = {}
        self._second: dict[bytes, _Table] = {first: {} for first in SPLIT}
        for area in areas:
            resource = area.app.resource()
            for rule in area.app.url_map.iter_rules():
                for table, key in self._places(rule):
                    if b"<" in key or table.setdefault(key, resource) is not resource:
                        raise ValueError(f"route {rule.rule} cannot be dispatched to its area")
        self._root_methods = sorted(method.decode("ascii") for method in self._root)

    def _places(self, rule: Rule) -> list[tuple[_Table, bytes]]:
        """Where the werkzeug C{rule} goes: C{(table, key)} pairs, split as L{render} splits."""
        segments = rule.rule.encode("ascii").split(b"/")[1:]
        if segments == [b""]:
            # (every route of / names its methods)
            methods: set[str] = rule.methods  # type: ignore[assignment]
            return [(self._root, method.encode("ascii")) for method in methods]
        if segments[0] in SPLIT and len(segments) > 1:
            return [(self._second[segments[0]], segments[1])]
        return [(self._first, segments[0])]

    def render(self, request: Request) -> Rendered:
        """Render the request with the area that owns its path."""
        segments: list[bytes] = request.postpath  # type: ignore[assignment]  # (set by process())
        first = segments[0] if segments else b""
        if first == b"" and len(segments) <= 1:
            area = self._root.get(request.method)
            if area is None:
                return send_error(request, wrong_method_error(request, self._root_methods))
        elif first in SPLIT and len(segments) > 1:
            area = self._second[first].get(segments[1])
        else:
            area = self._first.get(first)
        if area is None:
            return send_error(request, NotFound("no such page"))
        try:
            return area.render(request)
        except werkzeug.exceptions.BadHost:
            # (Klein binds werkzeug's routing to the Host header before any error handler
            # of the area: one that is no host name is the client's mistake, never a 500)
            return send_error(request, BadRequest("Host: not a host name"))
