"""
What the server counts for C{/metrics}: plain counters and histograms that
cost a dictionary update on the hot path, turned into the Prometheus text
format only when scraped (L{pypid.web.admin.exposition}).

Not C{prometheus_client}'s metric objects on the hot path: each of their
updates takes a lock and, with labels, looks up a child; ours run on the
reactor thread only, so a dict update is enough (a fifth of the library's
cost a request). The library still writes the exposition format.

No label ever holds a project, a user or a filename: those are unbounded.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from itertools import accumulate
from typing import TypeVar

import attrs

from pypid.core.indexes.index_names import DEFAULT as DEFAULT_INDEX
from pypid.core.indexes.index_names import UPLOAD_PATHS
from pypid.core.util.bounded import remember

_V = TypeVar("_V")

#: Latency buckets, in seconds: from a cached page to a large upload on a slow link.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


#: Route families, by the first segment of the path; C{/} itself is split
#: by method in L{route_of}.
_FIRST_SEGMENT = {
    **{name.encode(): name for name in ("simple", "files", "project", "static", "search",
                                        "login", "health", "metrics")},
    **dict.fromkeys({path.strip(b"/") for path in UPLOAD_PATHS} - {b""}, "upload"),
    b"pypi": "json",
    b"requirements.txt": "requirements",
}

#: Families under C{/api/}, by the second segment: C{api_} and its name.
_API_SEGMENT = {name.encode(): "api_" + name for name in (
    "files", "projects", "search", "tokens", "upstream", "audit", "oidc")}

#: Every route label there is, for the documentation and the tests.
ROUTES = frozenset(_FIRST_SEGMENT.values()) | frozenset(_API_SEGMENT.values()) | {
    "root", "other"}

_METHODS: dict[bytes | None, str] = {
    m: m.decode("ascii")
    for m in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH")}

#: A change's outcome, by the answer's status (C{None}: the client left).
_OUTCOMES: dict[int | None, str] = {
    200: "ok", 201: "ok", 204: "ok", 401: "denied", 403: "denied", 404: "not_found",
    409: "conflict", 413: "too_large", 429: "throttled"}


#: The reasons of L{RequestStats.refused}.
_REFUSALS = {400: "bad_request", 408: "headers_timeout", 414: "uri_too_long",
             431: "headers_too_large", "slow_body": "slow_body", "send_timeout": "send_timeout"}


def route_of(method: bytes | None, path: bytes) -> str:
    """The route family of a request (C{path} in origin form, no query), for the C{route} label."""
    first, _, rest = path[1:].partition(b"/")
    if first == b"api":
        return _API_SEGMENT.get(rest.partition(b"/")[0], "other")
    if not first:
        return "upload" if method == b"POST" else "root"
    return _FIRST_SEGMENT.get(first, "other")


def index_and_route(method: bytes | None, path: bytes,
                    indexes: frozenset[bytes]) -> tuple[str, str]:
    """
    The index and route family of a request: a path under C{/NAME/} of a
    configured index is that index's, its route read from the rest; any
    other is the default index's (a name no index has is never a label).
    """
    first, slash, rest = path[1:].partition(b"/")
    if slash and first in indexes:
        return first.decode("ascii"), route_of(method, b"/" + rest)
    return DEFAULT_INDEX, route_of(method, path)


def outcome_of(status: int | None) -> str:
    """The outcome of an upload or a change, by its answer's status."""
    found = _OUTCOMES.get(status)
    if found is not None:
        return found
    if status is None:
        return "aborted"
    if status >= 500:
        return "error"
    return "invalid" if status >= 400 else "ok"


def change_of(route: str, method: bytes | None, path: bytes) -> str | None:
    """The change (C{yank}, C{unyank}, C{delete}) a publishing API request asks, or L{None}."""
    if route not in ("api_files", "api_projects"):
        return None
    if method == b"DELETE":
        return "delete"
    if method == b"POST":
        last = path.rstrip(b"/").rpartition(b"/")[2]
        if last in (b"yank", b"unyank"):
            return last.decode("ascii")
    return None


@attrs.define
class Histogram:
    """
    A histogram with fixed buckets: C{counts[i]} observations were at most
    C{bounds[i]} and more than the bound before (not cumulative), the last
    slot for those above every bound.
    """

    bounds: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = attrs.field(default=attrs.Factory(
        lambda self: [0] * (len(self.bounds) + 1), takes_self=True))
    total: float = 0.0

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[float, int]]:
        """C{[(upper bound, count so far)]}, ending with C{+Inf} and the count."""
        return list(zip(self.bounds + (float("inf"),), accumulate(self.counts), strict=False))

    @property
    def count(self) -> int:
        """How many observations there were."""
        return sum(self.counts)


@attrs.define
class Timings:
    """How often something was done or failed, and how long it took, by a closed set of keys."""

    calls: dict[str, int] = attrs.Factory(dict)
    errors: dict[str, int] = attrs.Factory(dict)
    latency: dict[str, Histogram] = attrs.Factory(dict)

    def record(self, key: str, seconds: float, failed: bool = False) -> None:
        """Count one call of C{key} that took C{seconds} (a wall clock stepping back counts 0)."""
        seconds = max(seconds, 0.0)
        self.calls[key] = self.calls.get(key, 0) + 1
        if failed:
            self.errors[key] = self.errors.get(key, 0) + 1
        histogram = self.latency.get(key)
        if histogram is None:
            histogram = self.latency[key] = Histogram()
        histogram.observe(seconds)


class _Route:
    """What one route family answered: counts by method and status, latency, bytes."""

    __slots__ = ("codes", "latency", "sent", "received")

    def __init__(self) -> None:
        #: C{{(method, status): count}}; a method not in L{_METHODS} is C{b""}
        self.codes: dict[tuple[bytes | None, int | None], int] = {}
        self.latency = Histogram()
        self.sent = 0
        self.received = 0


#: One answered request in L{RequestStats.batch}: C{(method, path, status,
#: seconds, sent, received)}.
Answered = tuple[bytes | None, bytes, int | None, float, int, int]

#: How many answered requests wait in L{RequestStats.batch} before they
#: are counted (or until a scrape): a few hundred kilobytes at most.
BATCH = 4096

#: How many C{(method, path)} pairs keep their route family remembered.
_ROUTE_MEMO = 4096


@attrs.define
class RequestStats:
    """
    What the HTTP site answered: requests by route, method and status,
    latency and bytes by route, and the changes and logins derived from them.

    The site appends a tuple per request to L{batch} and nothing more;
    L{settle} counts a whole batch in one tight loop, when L{BATCH} are
    waiting or when scraped: counting each request as it was answered ran
    with cold caches, and cost a few times what the append and the warm
    batch do.

    @ivar batch: the L{Answered} requests since the last L{settle}: the
        status L{None} when the client left first, the seconds from the end
        of the headers to the end of the answer, the body bytes.
    @ivar changes: C{{(action, outcome): count}}; the actions are
        C{upload}, C{yank}, C{unyank} and C{delete}.
    @ivar login_failures: answers of 401 to requests that carried
        credentials (only the site sees the headers).
    @ivar throttled: answers of 429.
    @ivar refusals: C{{reason: count}} of connections refused outside any
        request (L{refused}).
    """

    batch: list[Answered] = attrs.Factory(list)
    #: the named indexes' names, by which requests are counted too (L{index_and_route})
    indexes: frozenset[bytes] = frozenset()
    #: C{(index, route)} -> its counts
    _routes: dict[tuple[str, str], _Route] = attrs.Factory(dict)
    changes: dict[tuple[str, str], int] = attrs.Factory(dict)
    login_failures: int = 0
    throttled: int = 0
    refusals: dict[str, int] = attrs.Factory(dict)
    _memo: dict[tuple[bytes | None, bytes], tuple[str, str]] = attrs.Factory(dict)

    def take_indexes(self, indexes: frozenset[bytes]) -> None:
        """Count by the named C{indexes} from now on (a reload); past counts keep their labels."""
        self.settle()
        self.indexes = indexes
        self._memo.clear()

    def refused(self, why: int | str) -> None:
        """
        Count a connection answered and closed outside any request: C{why}
        is the status (400, 408, 414, 431), C{slow_body} (an upload under the
        minimum rate) or C{send_timeout} (an answer the client took none of).
        """
        reason = _REFUSALS.get(why, "other")
        self.refusals[reason] = self.refusals.get(reason, 0) + 1

    def record(self, method: bytes | None, path: bytes, status: int | None, seconds: float,
               sent: int, received: int, credentials: Callable[[], bool]) -> None:
        """Count one answered (or abandoned) request; C{credentials()} is asked only of a 401."""
        batch = self.batch
        batch.append((method, path, status, seconds, sent, received))
        if status == 401 and credentials():
            self.login_failures += 1
        if len(batch) >= BATCH:
            self.settle()

    def settle(self) -> None:
        """Count the requests of L{batch} (which stays the same list, emptied)."""
        batch = self.batch[:]
        self.batch.clear()
        routes, memo, methods, indexes = self._routes, self._memo, _METHODS, self.indexes
        for method, path, status, seconds, sent, received in batch:
            key = memo.get((method, path))
            if key is None:
                key = remember(memo, (method, path), index_and_route(method, path, indexes)
                               if indexes else (DEFAULT_INDEX, route_of(method, path)), _ROUTE_MEMO)
            route = key[1]
            stats = routes.get(key)
            if stats is None:
                stats = routes[key] = _Route()
            code = (method if method in methods else b"", status)
            codes = stats.codes
            codes[code] = codes.get(code, 0) + 1
            latency = stats.latency
            latency.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
            latency.total += seconds
            stats.sent += sent
            stats.received += received
            if status == 429:
                self.throttled += 1
            if route == "upload":
                if method == b"POST":
                    self._change("upload", status)
            elif route[0] == "a":  # (the API: most requests are not)
                action = change_of(route, method, path)
                if action is not None:
                    self._change(action, status)

    def _change(self, action: str, status: int | None) -> None:
        key = (action, outcome_of(status))
        self.changes[key] = self.changes.get(key, 0) + 1

    @property
    def requests(self) -> dict[tuple[str, str, str], int]:
        """
        C{{(route, method, status): count}} of the default index's requests;
        C{status} is the code as text, or C{aborted}.
        """
        return {key[1:]: count for key, count in self.requests_by_index.items()
                if key[0] == DEFAULT_INDEX}

    @property
    def requests_by_index(self) -> dict[tuple[str, str, str, str], int]:
        """C{{(index, route, method, status): count}}."""
        self.settle()
        return {(index, route, _METHODS.get(method, "other"),
                 "aborted" if status is None else str(status)): count
                for (index, route), stats in self._routes.items()
                for (method, status), count in stats.codes.items()}

    @property
    def latency(self) -> dict[str, Histogram]:
        """C{{route: Histogram}} of the default index's requests."""
        return _of_default(self.latency_by_index)

    @property
    def latency_by_index(self) -> dict[tuple[str, str], Histogram]:
        """C{{(index, route): Histogram}}."""
        self.settle()
        return {key: stats.latency for key, stats in self._routes.items()}

    @property
    def sent(self) -> dict[str, int]:
        """C{{route: bytes}} of the default index's response bodies."""
        return _of_default(self.sent_by_index)

    @property
    def sent_by_index(self) -> dict[tuple[str, str], int]:
        """C{{(index, route): bytes}} of response bodies."""
        self.settle()
        return {key: stats.sent for key, stats in self._routes.items() if stats.sent}

    @property
    def received(self) -> dict[str, int]:
        """C{{route: bytes}} of the default index's request bodies."""
        return _of_default(self.received_by_index)

    @property
    def received_by_index(self) -> dict[tuple[str, str], int]:
        """C{{(index, route): bytes}} of request bodies."""
        self.settle()
        return {key: stats.received for key, stats in self._routes.items() if stats.received}


def _of_default(by_index: Mapping[tuple[str, str], _V]) -> dict[str, _V]:
    """C{{route: value}} of the default index's part of C{{(index, route): value}}."""
    return {route: value for (index, route), value in by_index.items() if index == DEFAULT_INDEX}


# -- families: what a part offers /metrics ----------------------------------------

#: A sample's value: a number (L{None} for a counter given none), or a
#: histogram family's L{Histogram}.
Sample = float | Histogram | None

GAUGE = "gauge"
COUNTER = "counter"
HISTOGRAM = "histogram"


@attrs.frozen
class Family:
    """
    One metric family as a part offers it (L{pypid.core.parts.IMetricsSource}),
    as plain values, so that no part imports C{prometheus_client}. Families
    of one name from several parts are one family there (their samples
    together), as the packages' and the upstream cache's storage operations.

    @ivar kind: L{GAUGE}, L{COUNTER} or L{HISTOGRAM}.
    @ivar samples: C{((label values, value), ...)}.
    """

    kind: str
    name: str
    help: str
    labels: tuple[str, ...] = ()
    samples: tuple[tuple[tuple[str, ...], Sample], ...] = ()


def gauge(name: str, help: str, value: float) -> Family:
    """A gauge of one value."""
    return Family(GAUGE, name, help, (), (((), value),))


def counter(name: str, help: str, value: float | None = None, labels: tuple[str, ...] = (),
            samples: Iterable[tuple[Iterable[str], Sample]] | None = None) -> Family:
    """A counter: one C{value}, or C{samples} of C{(label values, value)}."""
    if samples is None:
        return Family(COUNTER, name, help, (), (((), value),))
    return Family(COUNTER, name, help, tuple(labels),
                  tuple((tuple(values), sample) for values, sample in samples))


def by_label(name: str, help: str, label: str, counts: Mapping[str, float]) -> Family:
    """A counter of C{counts} (a dict) by one label's values, sorted."""
    return counter(name, help, None, (label,), [((k,), v) for k, v in sorted(counts.items())])


def histograms(name: str, help: str, label: str, by_value: Mapping[str, Histogram]) -> Family:
    """A histogram family of L{Histogram}s by one label's values, sorted."""
    return Family(HISTOGRAM, name, help, (label,),
                  tuple(((value,), histogram) for value, histogram in sorted(by_value.items())))


def timing_families(names: tuple[str, str, str], what: str, label_names: Iterable[str],
                    sources: Iterable[tuple[tuple[str, ...], Timings]]) -> list[Family]:
    """
    The calls, errors and duration families of L{Timings}.

    @param label_names: the labels, the last one the timings' own key.
    @param sources: C{[(values of the other labels, Timings)]}.
    """
    calls_name, errors_name, duration_name = names
    labels = tuple(label_names)
    by = ", ".join(labels)
    calls: list[tuple[tuple[str, ...], Sample]] = []
    errors: list[tuple[tuple[str, ...], Sample]] = []
    duration: list[tuple[tuple[str, ...], Sample]] = []
    for values, timings in sources:
        for key, count in sorted(timings.calls.items()):
            calls.append(((*values, key), count))
            errors.append(((*values, key), timings.errors.get(key, 0)))
        for key, histogram in sorted(timings.latency.items()):
            duration.append(((*values, key), histogram))
    return [Family(COUNTER, calls_name, f"{what}, by {by}.", labels, tuple(calls)),
            Family(COUNTER, errors_name, f"{what} that failed, by {by}.", labels, tuple(errors)),
            Family(HISTOGRAM, duration_name, f"How long {what.lower()} took, by {by}.", labels,
                   tuple(duration))]


def labelled(family: Family, label: str, value: str) -> Family:
    """C{family} with one more label, first, of one value (a machine's worker)."""
    return attrs.evolve(family, labels=(label, *family.labels),
                        samples=tuple(((value, *values), sample)
                                      for values, sample in family.samples))


def dump_families(families: Iterable[Family]) -> bytes:
    """Families as JSON (what a machine's worker leaves for the others' scrapes)."""
    def sample(value: Sample) -> object:
        if isinstance(value, Histogram):
            return {"bounds": list(value.bounds), "counts": value.counts, "total": value.total}
        return value
    return json.dumps([[f.kind, f.name, f.help, list(f.labels),
                        [[list(values), sample(value)] for values, value in f.samples]]
                       for f in families]).encode("utf-8")


def load_families(data: bytes) -> list[Family]:
    """The families L{dump_families} wrote; L{ValueError} for anything else."""
    def sample(value: object) -> Sample:
        if isinstance(value, dict):
            return Histogram(tuple(value["bounds"]), list(value["counts"]),
                             float(value["total"]))
        if value is None or isinstance(value, int | float):
            return value
        raise ValueError(f"not a sample: {value!r}")
    document = json.loads(data)
    if not isinstance(document, list):
        raise ValueError("not metric families: not a list")
    try:
        return [Family(kind, name, help, tuple(labels),
                       tuple((tuple(values), sample(value)) for values, value in samples))
                for kind, name, help, labels, samples in document]
    except (TypeError, KeyError) as e:
        raise ValueError(f"not metric families: {e}") from None
