"""
The C{[index:NAME]} sections: several indexes on one server.

A hosted index takes uploads and may inherit the projects of its C{bases};
a view (C{view = yes}) takes none and shows its bases through filters.
Everything that can be wrong between the sections is refused at start-up,
never silently ignored: an administrator who wrote C{min_age} on a hosted
index believes it holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence, Set
from datetime import UTC, datetime

import attrs

from pypid.config.advisory_settings import (
    ADVISORY_RULE_KEYS,
    UPLOAD_RULE_KEYS,
    AdvisoryKeys,
    UploadKeys,
)
from pypid.config.auth_settings import check_principal, groups_from_outside, parse_principals
from pypid.config.retention_settings import RETENTION_RULE_KEYS, RetentionKeys
from pypid.config.upstream_settings import UpstreamConfig, parse_min_age
from pypid.config.values import Fail, Keys, Values, choice, parse_boolean, parse_globs
from pypid.core.access.access_rules import Rule
from pypid.core.indexes.index_names import (
    DEFAULT,
    ROUTE_SEGMENTS,
    UPSTREAM_PREFIX,
    BaseRef,
    parse_base,
    resolve_order,
)


@attrs.frozen
class IndexConfig(AdvisoryKeys, RetentionKeys, UploadKeys):
    """One C{[index:NAME]} section, its defaults filled in; admins may always read and upload."""

    name: str
    #: Whether it is a view: read-only, built from its bases through filters.
    view: bool
    #: The indexes and upstreams it inherits, in the order they are asked.
    bases: tuple[BaseRef, ...]
    #: Who may read it (by default, C{[auth] read}).
    read: tuple[str, ...]
    #: Who may upload to it (by default C{authenticated}; none for a view).
    upload: tuple[str, ...]
    #: Seconds an upstream file must have been public to be listed (0.0: off).
    min_age: float = 0.0
    #: Only files uploaded before this moment (UTC) are listed; L{None}: all.
    as_of: datetime | None = None
    #: Globs over normalized project names; empty: every project.
    include: tuple[str, ...] = ()
    #: Globs of projects not shown, even if included.
    exclude: tuple[str, ...] = ()
    #: C{"show"} or C{"hide"} the pre-releases.
    prereleases: str = "show"
    #: C{"show"} or C{"hide"} (not list at all) the yanked files.
    yanked: str = "show"


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?"
                      r"(?:[Zz]|[+-]\d{2}:\d{2})\Z")
_AS_OF_FORMS = ("expected an RFC 3339 date and time with its offset, such as "
                "2026-06-01T00:00:00Z; or empty for none")


def parse_as_of(value: str) -> datetime | None:
    """Parse an RFC 3339 date and time (C{Z} or an offset) into UTC, or L{None} when empty."""
    value = value.strip()
    if not value:
        return None
    if not _RFC3339.match(value):
        raise ValueError(_AS_OF_FORMS)
    try:
        moment = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(_AS_OF_FORMS) from None
    return moment.astimezone(UTC)


def _bases(value: str) -> tuple[BaseRef, ...]:
    """Index names and C{upstream:NAME}, separated by spaces, commas or lines."""
    bases: list[BaseRef] = []
    for entry in value.replace(",", " ").split():
        base = parse_base(entry)
        if base in bases:
            raise ValueError(f"{entry!r} is named twice")
        bases.append(base)
    return tuple(bases)


#: key -> (default, parser). C{read}'s and C{upload}'s defaults depend on
#: C{[auth]} and on C{view} (L{check_indexes} fills them).
INDEX_KEYS: Keys = {
    "view": ("no", parse_boolean),
    "bases": ("", _bases),
    "read": ("", parse_principals),
    "upload": ("", parse_principals),
    "min_age": ("0", parse_min_age),
    "as_of": ("", parse_as_of),
    "include": ("", parse_globs),
    "exclude": ("", parse_globs),
    "prereleases": ("show", choice("show", "hide")),
    "yanked": ("show", choice("show", "hide")),
    **ADVISORY_RULE_KEYS,
    **RETENTION_RULE_KEYS,
    **UPLOAD_RULE_KEYS,
}

#: The keys only a view takes: filters over what its bases list.
VIEW_KEYS = ("min_age", "as_of", "include", "exclude", "prereleases", "yanked")

#: The keys C{[index:default]} takes (its composition stays today's).
DEFAULT_KEYS = ("read", "upload")

#: The keys an index takes, by default, from another section: the default index's.
_INHERITED = ((ADVISORY_RULE_KEYS, "pypid"), (UPLOAD_RULE_KEYS, "pypid"),
              (RETENTION_RULE_KEYS, "retention"))

#: What the sections of indexes and of upstreams start with.
INDEX_SECTION = "index:"
UPSTREAM_SECTION = "upstream:"


def check_indexes(values: Values, given: Set[tuple[str, str]], indexes: Iterable[str],
                  upstreams: Mapping[str, UpstreamConfig], default_upstream: UpstreamConfig,
                  users: Mapping[str, str], groups: Mapping[str, frozenset[str]],
                  fail: Fail) -> dict[str, IndexConfig]:
    """
    Check the C{[index:NAME]} sections against each other and the rest, and
    return their L{IndexConfig}s by name, in file order (C{given}: the keys
    given, as opposed to defaults).
    """
    names = list(indexes)
    directory = groups_from_outside(values)
    found: dict[str, IndexConfig] = {}
    for name in names:
        section = INDEX_SECTION + name
        if name in ROUTE_SEGMENTS:
            fail(section, None, f"{name} is a path of the server (/{name}/); choose another "
                 "name for the index")
        if name == DEFAULT:
            _check_default(section, given, fail)
        view = values[section, "view"]
        bases: tuple[BaseRef, ...] = values[section, "bases"]
        for base in bases:
            _check_base(section, base, names, upstreams, default_upstream, fail)
        _check_kind(section, view, bases, given, fail)
        for key in ("read", "upload"):
            for principal in values[section, key]:
                try:
                    check_principal(principal, users, groups, directory)
                except ValueError as e:
                    fail(section, key, str(e))
        read = (values[section, "read"] if (section, "read") in given
                else (values["auth", "read"],))
        upload = (() if view else values[section, "upload"] if (section, "upload") in given
                  else (values["auth", "upload"],))
        if name == DEFAULT and default_upstream.mode != "none":
            bases = (BaseRef(True, DEFAULT),)
        found[name] = IndexConfig(
            name=name, view=view, bases=bases, read=read, upload=upload,
            **{key: values[section, key] for key in VIEW_KEYS},
            **{key: values[section if (section, key) in given else home, key]
               for keys, home in _INHERITED for key in keys})
    _check_cycles(found, fail)
    return found


def _check_default(section: str, given: Set[tuple[str, str]], fail: Fail) -> None:
    """C{[index:default]} takes only read and upload: its other keys live in their sections."""
    for keys, home in _INHERITED:
        for key in keys:
            if (section, key) in given:
                fail(section, key, f"the default index's {key} is set in [{home}]")
    for key in INDEX_KEYS:
        if key not in DEFAULT_KEYS and (section, key) in given:
            fail(section, key, "the default index takes only read and upload: it "
                 "is the index of today's URLs, with [upstream] as its base")


def _check_base(section: str, base: BaseRef, names: Sequence[str],
                upstreams: Mapping[str, UpstreamConfig], default_upstream: UpstreamConfig,
                fail: Fail) -> None:
    """A base names an index of this server, or an upstream that is configured."""
    if base.upstream:
        if base.name == DEFAULT:
            if default_upstream.mode == "none":
                fail(section, "bases", f"{base}: [upstream] has mode = none; give "
                     "it a mode and url, or name another upstream",
                     [("upstream", "mode")])
        elif base.name not in upstreams:
            on = [f"upstream:{n}" for n in
                  ([DEFAULT] if default_upstream.mode != "none" else [])
                  + list(upstreams)]
            fail(section, "bases", f"{base}: there is no [upstream:{base.name}] "
                 "section; " + (f"the upstreams are {', '.join(on)}" if on
                                else "no upstream is configured"))
    elif base.name != DEFAULT and base.name not in names:
        known = ", ".join(["default", *names])
        fail(section, "bases", f"no index or upstream {str(base)!r}; the indexes are "
             f"{known}, the upstreams upstream:NAME")


def _check_kind(section: str, view: bool, bases: Sequence[BaseRef],
                given: Set[tuple[str, str]], fail: Fail) -> None:
    """A view takes a view's keys and no upload or retention; a hosted index no view's keys."""
    if view:
        if (section, "upload") in given:
            fail(section, "upload", "a view takes no uploads: remove the key, or set "
                 "view = no for a hosted index", [(section, "view")])
        if not bases:
            fail(section, "bases", "a view needs bases: the indexes and upstreams it "
                 "shows", [(section, "view")])
        for key in RETENTION_RULE_KEYS:
            if (section, key) in given:
                fail(section, key, "a view holds no files: retention applies to the "
                     "hosted indexes it shows", [(section, "view")])
        for key in UPLOAD_RULE_KEYS:
            if (section, key) in given:
                fail(section, key, "a view takes no uploads: set the key on the hosted "
                     "indexes it shows", [(section, "view")])
    else:
        for key in VIEW_KEYS:
            if (section, key) in given:
                fail(section, key, "only a view (view = yes) takes this key; make a "
                     "view whose bases name this index", [(section, "view")])


def _check_cycles(indexes: Mapping[str, IndexConfig], fail: Fail) -> None:
    """Refuse bases that lead back to their index, naming the path (C{a -> b -> a})."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = " -> ".join([*path[path.index(name):], name])
            fail(INDEX_SECTION + path[path.index(name)], "bases", f"a cycle: {cycle}")
        if name in done or name not in indexes:
            return
        for base in indexes[name].bases:
            if not base.upstream:
                visit(base.name, [*path, name])
        done.add(name)

    for name in indexes:
        visit(name, [])


def check_read_through(indexes: Mapping[str, IndexConfig], rules: Sequence[Rule],
                       acl_keys: Sequence[str], groups: Mapping[str, frozenset[str]],
                       default_read: str, fail: Fail) -> None:
    """
    Refuse an index that reads a hosted index whose readers it does not
    cover: a base's files are served through every index whose bases lead to
    it, under that index's grant, so its C{read} grant must cover the index's,
    and no C{[acl]} rule kept to the base may restrict a project the index
    does not restrict alike. Admins read everything.
    """
    def reads(name: str) -> tuple[str, ...]:
        index = indexes.get(name)
        return index.read if index is not None else (default_read,)

    bases = {name: [str(base) for base in index.bases] for name, index in indexes.items()}

    def through(name: str) -> list[str]:
        """The hosted and view indexes C{name} reads, through its bases, in order met."""
        return [source for source in resolve_order(name, bases)
                if source != name and not source.startswith(UPSTREAM_PREFIX)]

    scoped: dict[str, set[tuple[str, tuple[tuple[str, frozenset[str]], ...]]]] = {}
    for rule in rules:
        if rule.index is not None:
            scoped.setdefault(rule.index, set()).add((rule.pattern, rule.grants))
    for name in indexes:
        section = INDEX_SECTION + name
        mine = reads(name)
        for base in through(name):
            theirs = reads(base)
            uncovered = [p for p in mine if not _covers(theirs, p, groups)]
            if uncovered:
                fail(section, "bases",
                     f"{base} may be read by {', '.join(theirs)} alone, and {name} would "
                     f"show its files to {uncovered[0]}, who may read {name}: give {name} a "
                     f"read grant that {base}'s covers, or take {base} out of its bases",
                     [(INDEX_SECTION + base, "read")])
            for rule in rules:
                if rule.index == base and (rule.pattern, rule.grants) not in scoped.get(
                        name, set()):
                    fail("acl", acl_keys[rule.order],
                         f"this rule restricts {rule.pattern} in {base}, which {name} reads "
                         f"through its bases: add the same rule for {name}/{rule.pattern}, "
                         f"or take {base} out of {name}'s bases",
                         [(section, "bases")])


def _covers(grant: Iterable[str], principal: str, groups: Mapping[str, frozenset[str]]) -> bool:
    """
    Whether every client C{principal} stands for is among those C{grant}
    admits (a directory's group, unknown before a login, is covered by its
    own name alone).
    """
    granted = set(grant)
    if "everyone" in granted or principal in granted:
        return True
    if principal == "everyone":
        return False
    if "authenticated" in granted:
        return True
    if principal.startswith("user:"):
        user = principal[len("user:"):]
        return any(f"group:{group}" in granted for group, members in groups.items()
                   if user in members)
    return False
