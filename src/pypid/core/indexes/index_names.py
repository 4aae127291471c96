"""
The names of indexes and upstreams, and the references an index's
C{bases} make to them.

A named index is served under C{/NAME/}, so its name is one lower-case URL
segment that is its own normalization (no C{.} or C{_}: never a dot-file,
never two spellings of one index), and not the first segment of a route:
C{[index:simple]} would shadow C{/simple/}. C{tests/unit/core/indexes/test_index_names}
fails when a route of the built resource tree is missing from L{ROUTE_SEGMENTS}.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Collection, Mapping, Sequence

import attrs

#: The index of today's URLs (C{/simple/}, uploads at C{/}), and the name
#: by which an index's C{bases} reach C{[upstream]} (C{upstream:default}).
DEFAULT = "default"

#: The first path segments of the server's own routes
#: (L{pypid.web.serving.site_root.RootResource}, L{pypid.web.app.PypidApp},
#: trusted publishing's C{/_/oidc/} and C{/.well-known/pytp/}): no index's name.
ROUTE_SEGMENTS = frozenset({
    "simple", "files", "packages", "integrity", "project", "static",
    "health", "legacy", "login", "logout", "metrics", "pypi", "requirements.txt", "search",
    "console",
    "api", "_", ".well-known",
})

#: An index's or upstream's name.
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\Z")

NAME_FORMS = ("a name is 1 to 63 lower-case letters, digits and '-', starting with a "
              "letter or a digit (one URL segment)")

#: What a base naming an upstream starts with (C{upstream:public}).
UPSTREAM_PREFIX = "upstream:"


@attrs.frozen
class BaseRef:
    """
    One entry of an index's C{bases}: another index, or an upstream
    (C{upstream:NAME}; C{upstream:default} is C{[upstream]}).
    """

    upstream: bool
    name: str

    def __str__(self) -> str:
        """The reference as the configuration spells it."""
        return f"{UPSTREAM_PREFIX}{self.name}" if self.upstream else self.name


def index_section(name: str | None) -> str:
    """The section whose keys index C{name} reads (L{None}: the default index's)."""
    return "[pypid]" if name is None or name == DEFAULT else f"[index:{name}]"


def index_in_log(name: str | None) -> str:
    """
    What a log line adds to name its index (C{" of index staging"}); nothing
    for L{None}, the one index of a server without named ones.
    """
    return "" if name is None else f" of index {name}"


def parse_base(text: str) -> BaseRef:
    """Read one base, an index name or C{upstream:NAME}; L{ValueError} says what is allowed."""
    upstream = text.startswith(UPSTREAM_PREFIX)
    name = text.removeprefix(UPSTREAM_PREFIX)
    if not NAME.match(name):
        raise ValueError(f"{text!r}: expected an index name or upstream:NAME; {NAME_FORMS}")
    return BaseRef(upstream, name)


def resolve_order(name: str, bases: Mapping[str, Sequence[str]],
                  views: Collection[str] = ()) -> tuple[str, ...]:
    """
    The sources an index reads, in order, as devpi resolves an index's
    bases (its C{sro}), so that indexes brought over from devpi list what
    they listed there: itself (unless it is a view), then its bases
    breadth first, left to right, each kept where it first occurs, and the
    upstreams last, in the order met (for C{a} based on C{b, c}, both based
    on C{d}: C{a, b, c, d}), so a hosted file comes first whatever its depth.

    @param bases: each index's bases; a name absent (an upstream) has none.
    @param views: the names that are views: read through, never a source.
    """
    order: list[str] = []
    upstreams: list[str] = []
    seen = {name}
    todo = deque([name])
    while todo:
        current = todo.popleft()
        if current.startswith(UPSTREAM_PREFIX):
            upstreams.append(current)
            continue
        if current not in views:
            order.append(current)
        for base in bases.get(current, ()):
            if base not in seen:
                seen.add(base)
                todo.append(base)
    return (*order, *upstreams)


#: The paths that take uploads (twine's and C{uv publish}'s legacy API) by
#: C{POST}: one list for the upload route, the site that streams their
#: bodies to disk and the C{upload} route family of the metrics.
UPLOAD_PATHS = frozenset([b"/", b"/legacy", b"/legacy/"])


def is_index_segment(segment: bytes) -> bool:
    """
    Whether a path's first segment could name an index (only such paths can
    leak whether a hidden index exists, so only they meet the index gate).
    """
    try:
        text = segment.decode("ascii")
    except UnicodeDecodeError:
        return False
    return bool(NAME.match(text)) and text not in ROUTE_SEGMENTS and text != DEFAULT


def index_upload_path(path: bytes) -> bool:
    """Whether C{path} is where an index's uploads go: C{/NAME/}, C{/NAME/legacy[/]}."""
    if not path.startswith(b"/"):
        return False
    segment, slash, rest = path[1:].partition(b"/")
    return bool(slash) and b"/" + rest in UPLOAD_PATHS and is_index_segment(segment)


def asks_for_index(method: bytes, rest: Sequence[bytes]) -> bool:
    """
    Whether a request under C{/NAME/} (C{rest}: its path after C{NAME}, as
    segments) is one only an index answers: an upload or a read of its
    simple pages. Where C{NAME} names no index the caller may see, it is
    told L{NO_SUCH_INDEX} rather than that no page is there.
    """
    if method == b"POST":
        return b"/" + b"/".join(rest) in UPLOAD_PATHS
    return method in (b"GET", b"HEAD") and rest[:1] == [b"simple"]


#: What L{asks_for_index}'s requests are told of a C{/NAME/} that names no
#: index: the same for a missing and a hidden one (so without the name).
NO_SUCH_INDEX = "no such index"


def simple_of(path: bytes, named: bool) -> str | None:
    """
    The index whose simple pages C{path} reads: L{DEFAULT} for
    C{/simple[/...]}, C{NAME} for C{/NAME/simple[/...]} when C{named}
    indexes are served; else L{None}.
    """
    segments = path.split(b"/", 3)
    if segments[1:2] == [b"simple"]:
        return DEFAULT
    if named and segments[2:3] == [b"simple"] and is_index_segment(segments[1]):
        return segments[1].decode("ascii")
    return None
