"""
Content negotiation for the simple index (PEP 691) and for response
compression.

Every index request asks both L{choose} and L{accepts_gzip}, so they are
pure functions of the raw header bytes, memoized in small bounded caches:
real traffic comes from a handful of clients that send the same few header
values byte for byte, so almost every call is a single dict hit.

The rules follow RFC 9110 section 12 and PEP 691:

  - the highest q-value wins whatever the order, a missing one means 1 and
    q=0 "not acceptable";
  - a served type takes its q-value from the most specific range that
    matches it, so C{v1+json;q=0, */*} refuses JSON and accepts HTML;
  - ties go to HTML, in warehouse's order C{text/html}, C{v1+html},
    C{v1+json}, whatever the specificity of the ranges that matched;
  - a missing or empty header means C{*/*}; malformed entries are ignored,
    and a header with no usable entry counts as missing;
  - when nothing offered is acceptable the answer is L{None} (a 406).
"""

from __future__ import annotations

import re

from pypid.core.dists.provenance import INTEGRITY_MEDIA_TYPE
from pypid.core.util.bounded import remember

HTML = "text/html"
V1_HTML = "application/vnd.pypi.simple.v1+html"
V1_JSON = "application/vnd.pypi.simple.v1+json"
LATEST_HTML = "application/vnd.pypi.simple.latest+html"
LATEST_JSON = "application/vnd.pypi.simple.latest+json"

#: The two serializations that L{choose} picks between.
KIND_HTML = "html"
KIND_JSON = "json"

#: Beyond this many distinct header values a memo is emptied and refilled,
#: which bounds its memory whatever headers clients make up.
MEMO_LIMIT = 256

# The served media types in tie-breaking order, as (type, subtype, kind).
_OFFERS = (
    ("text", "html", KIND_HTML),
    ("application", "vnd.pypi.simple.v1+html", KIND_HTML),
    ("application", "vnd.pypi.simple.v1+json", KIND_JSON),
)

# The aliases that PEP 691 defines, mapped to the concrete v1 types.
_ALIASES = {
    "vnd.pypi.simple.latest+html": "vnd.pypi.simple.v1+html",
    "vnd.pypi.simple.latest+json": "vnd.pypi.simple.v1+json",
}

# What ?format= may name: one concrete media type, no ranges, no q-values.
_FORMATS = {
    HTML: KIND_HTML,
    V1_HTML: KIND_HTML,
    LATEST_HTML: KIND_HTML,
    V1_JSON: KIND_JSON,
    LATEST_JSON: KIND_JSON,
}

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+\Z")
# (RFC 9110 allows at most three decimals; nothing is gained by refusing more)
_QVALUE = re.compile(r"(?:0(?:\.[0-9]*)?|1(?:\.0*)?)\Z")

_SPECIFIC = 2
_TYPE_WILDCARD = 1
_ANY = 0


def _split_entry(entry: str) -> tuple[str, float] | None:
    """
    Split one entry of an C{Accept}-style header into C{(lowercased value,
    q)}, or L{None} when it is empty or its q-value invalid (to be ignored).
    """
    value, _, params = entry.partition(";")
    value = value.strip().lower()
    if not value:
        return None
    q = 1.0
    for param in params.split(";") if params else ():
        name, eq, raw = param.partition("=")
        if name.strip().lower() != "q":
            continue  # (charset and the like do not change which type it names)
        raw = raw.strip()
        if not eq or not _QVALUE.match(raw):
            return None
        q = float(raw)
        break  # (the weight ends the media range; extensions follow)
    return value, q


def _parse_accept(header: str) -> list[tuple[str, str, float]]:
    """Parse an C{Accept} header into C{(type, subtype, q)} triples, dropping malformed entries."""
    ranges: list[tuple[str, str, float]] = []
    for entry in header.split(","):
        split = _split_entry(entry)
        if split is None:
            continue
        media_range, q = split
        main, slash, sub = media_range.partition("/")
        main, sub = main.strip(), sub.strip()
        if not slash or not _TOKEN.match(main) or not _TOKEN.match(sub):
            continue
        if main == "*" and sub != "*":
            continue
        if main == "application":
            sub = _ALIASES.get(sub, sub)
        ranges.append((main, sub, q))
    return ranges


def _weigh(ranges: list[tuple[str, str, float]], main: str, sub: str) -> float | None:
    """
    The q-value of the most specific range of C{ranges} that matches
    C{main/sub} (the highest among equally specific ones), or L{None}.
    """
    best_specificity = -1
    best_q: float | None = None
    for range_main, range_sub, q in ranges:
        if range_main == "*":
            specificity = _ANY
        elif range_main != main:
            continue
        elif range_sub == "*":
            specificity = _TYPE_WILDCARD
        elif range_sub == sub:
            specificity = _SPECIFIC
        else:
            continue
        if specificity > best_specificity:
            best_specificity, best_q = specificity, q
        elif specificity == best_specificity and best_q is not None and q > best_q:
            best_q = q
    return best_q


def _best(accept: bytes | None, offers: tuple[tuple[str, str, str], ...]) -> str | None:
    """
    Negotiate without a memo: the answer of the C{(type, subtype, answer)}
    offer C{accept} weighs highest (the first when it has no usable entry),
    or L{None}.
    """
    ranges = _parse_accept(accept.decode("latin-1") if accept else "")
    if not ranges:
        return offers[0][2]
    best: str | None = None
    best_q = 0.0
    for main, sub, answer in offers:
        q = _weigh(ranges, main, sub)
        # Strictly greater: an equal q keeps the earlier offer (a page: HTML).
        if q is not None and q > best_q:
            best, best_q = answer, q
    return best


_choose_memo: dict[bytes | None, str | None] = {}


def choose(accept: bytes | None, format_param: bytes | None = None) -> str | None:
    """
    Pick the serialization of a simple index page, C{"html"} or C{"json"},
    from the raw C{Accept} header and C{?format=} (L{None}: absent); L{None}
    when nothing the client accepts can be served (a 406). A non-empty
    C{?format=} names one media type and overrides C{Accept}.
    """
    if format_param:
        return _FORMATS.get(format_param.decode("latin-1").strip().lower())
    try:
        return _choose_memo[accept]
    except KeyError:
        return remember(_choose_memo, accept, _best(accept, _OFFERS), MEMO_LIMIT)


def _accepts_gzip_uncached(accept_encoding: bytes | None) -> bool:
    """Decide without the memo: see L{accepts_gzip}."""
    if not accept_encoding:
        return False
    gzip_q: float | None = None
    any_q: float | None = None
    for entry in accept_encoding.decode("latin-1").split(","):
        split = _split_entry(entry)
        if split is None:
            continue
        coding, q = split
        if coding in ("gzip", "x-gzip"):
            gzip_q = q if gzip_q is None else max(gzip_q, q)
        elif coding == "*":
            any_q = q if any_q is None else max(any_q, q)
    if gzip_q is not None:
        return gzip_q > 0
    return any_q is not None and any_q > 0


_gzip_memo: dict[bytes | None, bool] = {}


def accepts_gzip(accept_encoding: bytes | None) -> bool:
    """
    Whether a response may be gzip-compressed, given the request's
    C{Accept-Encoding} header (RFC 9110 section 12.5.3): an explicit C{gzip}
    entry decides, else C{*} does; a missing or empty header means no.
    """
    try:
        return _gzip_memo[accept_encoding]
    except KeyError:
        return remember(_gzip_memo, accept_encoding, _accepts_gzip_uncached(accept_encoding),
                        MEMO_LIMIT)


#: The Integrity API's media types (PEP 740), in the order a tie picks them:
#: the public index's own type first, then plain JSON.
INTEGRITY_TYPES = (INTEGRITY_MEDIA_TYPE, "application/json")
_INTEGRITY_OFFERS = tuple((offer.partition("/")[0], offer.partition("/")[2], offer)
                          for offer in INTEGRITY_TYPES)

_integrity_memo: dict[bytes | None, str | None] = {}


def choose_integrity(accept: bytes | None) -> str | None:
    """
    Pick the media type of an Integrity API answer (PEP 740) from the
    request's C{Accept}, by the rules above: one of L{INTEGRITY_TYPES} (a
    tie gives the first), or L{None} (a 406).
    """
    try:
        return _integrity_memo[accept]
    except KeyError:
        return remember(_integrity_memo, accept, _best(accept, _INTEGRITY_OFFERS), MEMO_LIMIT)
