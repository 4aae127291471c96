"""
Core metadata (C{METADATA}, C{PKG-INFO}) as the index reads and keeps it.

The exact bytes are kept, never re-encoded: the index advertises their
hash for the PEP 658 C{.metadata} sidecar, and pip, after downloading the
wheel, compares the sidecar with the wheel's own C{METADATA} and aborts on
any difference. L{parse_metadata} reads them into a L{CoreMetadata} or
raises L{InvalidDistribution}.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, KeysView
from typing import Any, cast

import attrs
from packaging.version import InvalidVersion, Version

#: Largest METADATA / PKG-INFO accepted, in bytes.
DEFAULT_MAX_METADATA_SIZE = 4 << 20

#: Metadata versions the index reads (core metadata 1.0 to 2.6; 2.0 was never
#: specified, but old tools wrote it and the public index takes it).
SUPPORTED_METADATA_VERSIONS = frozenset(
    {"1.0", "1.1", "1.2", "2.0", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6"}
)

# Core metadata fields whose being dynamic makes an sdist's metadata
# unreliable for a resolver (PEP 643), and so unfit to serve as PEP 658.
_RESOLVER_FIELDS = frozenset({"requires-dist", "requires-python", "provides-extra"})

_METADATA_2_2 = Version("2.2")

_PIPE_CONTINUATION = re.compile(r"^[ \t]*\|")

# Lines end at CR, LF or CRLF only, as the email parser that pip and
# packaging use splits them: str.splitlines also breaks at \x0b, \x0c,
# \x1c-\x1e, \x85, U+2028 and U+2029, which would let a header value
# hide a header ("Summary: hi\x1cRequires-Python: >=99") that only the
# index sees.
_LINE_END = re.compile(r"\r\n|\r|\n")
_LINE_WITH_END = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


class InvalidDistribution(ValueError):
    """
    A distribution file that is not what its name says, or whose metadata
    the index refuses; C{str()} is a short message fit for a 400 response body.

    @ivar field: what was wrong: C{"content"} for the archive itself,
        C{"metadata"} for the metadata file as a whole, or
        C{"metadata.<Field>"} (C{"metadata.Version"}, ...) for one field.
    """

    def __init__(self, message: str, field: str = "content", tag_mismatch: bool = False) -> None:
        super().__init__(message)
        self.field = field
        #: whether it is a wheel's C{WHEEL} Tag lines that differ from its
        #: filename's (which an index may let through)
        self.tag_mismatch = tag_mismatch


def short_text(text: str, limit: int = 80) -> str:
    """Quote client-supplied text for an error message: escaped, and short."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text)


def escape_text(text: str, limit: int = 120) -> str:
    """Client-supplied text, short and its unprintable characters escaped, for an error message."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def _tuple_of_str(values: Iterable[object]) -> tuple[str, ...]:
    if values == ():
        return ()
    return tuple(str(v) for v in values)


def _tuple_of_pairs(values: Iterable[tuple[object, object]]) -> tuple[tuple[str, str], ...]:
    return tuple((str(label), str(url)) for label, url in values)


@attrs.frozen
class CoreMetadata:
    """
    The parsed core metadata of one distribution, with the exact bytes it was
    parsed from (never re-encoded). Text fields are L{None} when the header
    is absent or empty; list fields are tuples, empty when absent.

    @ivar raw: the exact bytes of C{METADATA} or C{PKG-INFO}.
    @ivar project_urls: C{(label, url)} pairs of the C{Project-URL} headers,
        in file order.
    @ivar platforms: the C{Platform} headers.
    @ivar description: the message body, or the C{Description} header
        (unfolded) when the body is empty.
    """

    raw: bytes = attrs.field(repr=False)
    metadata_version: str
    name: str
    version: str
    requires_python: str | None = None
    dynamic: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    summary: str | None = None
    description: str | None = attrs.field(default=None, repr=False)
    description_content_type: str | None = None
    keywords: str | None = None
    author: str | None = None
    author_email: str | None = None
    maintainer: str | None = None
    maintainer_email: str | None = None
    license: str | None = attrs.field(default=None, repr=False)
    license_expression: str | None = None
    license_files: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    classifiers: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    requires_dist: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    provides_extra: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    project_urls: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_tuple_of_pairs)
    home_page: str | None = None
    download_url: str | None = None
    platforms: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)

    @property
    def sha256(self) -> str:
        """Hex sha256 of L{raw}: the digest PEP 658 / PEP 714 advertise."""
        return hashlib.sha256(self.raw).hexdigest()

    def is_reliable_for_sdist(self) -> bool:
        """
        Whether this metadata, found in an sdist, may be served as PEP 658
        metadata: PEP 643 makes it binding only from Metadata-Version 2.2 on,
        and only for fields not listed in C{Dynamic}.
        """
        version = version_of(self.metadata_version)
        if version is None or version < _METADATA_2_2:
            return False
        return not _RESOLVER_FIELDS.intersection(d.lower() for d in self.dynamic)

    def to_json_info(self) -> dict[str, Any]:
        """
        The metadata part of the C{info} object of C{/pypi/<project>/json},
        with the public index's keys and empty values (C{classifiers} is
        always a list; the other lists and C{project_urls} L{None} when empty).
        """
        return {
            "name": self.name,
            "version": self.version,
            "summary": self.summary,
            "description": self.description,
            "description_content_type": self.description_content_type,
            "author": self.author,
            "author_email": self.author_email,
            "maintainer": self.maintainer,
            "maintainer_email": self.maintainer_email,
            "license": self.license,
            "license_expression": self.license_expression,
            "license_files": list(self.license_files) or None,
            "keywords": self.keywords,
            "classifiers": list(self.classifiers),
            "requires_dist": list(self.requires_dist) or None,
            "requires_python": self.requires_python,
            "provides_extra": list(self.provides_extra) or None,
            "project_urls": dict(self.project_urls) or None,
            "home_page": self.home_page,
            "download_url": self.download_url,
            "platform": ", ".join(self.platforms) or None,
            "dynamic": list(self.dynamic) or None,
        }


def _unfold(value: str) -> str:
    """Join a folded header onto one line, as every field but Description is."""
    if type(value) is str and "\n" not in value and "\r" not in value:
        return value.strip()  # (one line, as most are: the same, faster)
    return " ".join(part.strip() for part in _LINE_END.split(str(value))).strip()


def _unfold_description(value: str) -> str:
    """
    Undo the folding of a multi-line C{Description} header.

    The core metadata spec folds each line as C{"\\n" + 7 spaces + "|"};
    distutils and older setuptools used 8 spaces and no pipe. The pipe form
    is recognised only when every continuation line has it, so that a
    space-folded Markdown table keeps its leading C{|}.
    """
    first, *rest = _LINE_END.split(str(value).rstrip("\r\n")) or [""]
    if rest and all(_PIPE_CONTINUATION.match(line) for line in rest):
        rest = [_PIPE_CONTINUATION.sub("", line, count=1) for line in rest]
    else:
        rest = [line[8:] if line.startswith(" " * 8) else line.lstrip() for line in rest]
    return "\n".join([first.strip(), *rest]).rstrip()


# A header's first line: its name, and the rest of the line with its end.
_HEADER_LINE = re.compile(r"([\x21-\x39\x3b-\x7e]+):([^\r\n]*(?:\r\n|\r|\n)?)")


class _Headers:
    """
    The header block of core metadata, read as the standard library's
    C{email} parser reads it (C{compat32}, C{headersonly=True}), for the
    little this module asks of it, at a tenth of the cost (imports of large
    folders parse thousands of these): a line C{Name: value} starts a header
    (names case-insensitive, and may repeat), a line starting with a space
    or tab continues it, a header without a name is dropped, and any other
    line ends the headers.
    """

    #: each header's values by its lower-cased name, each value as its lines
    _values: dict[str, list[list[str]]]
    payload: str

    def __init__(self, text: str) -> None:
        # Line by line from the start, and no further than the headers: the
        # body (a README, often most of the text) is sliced off whole. A
        # header line is matched with its end in one step.
        values = self._values = {}
        header_line = _HEADER_LINE.match
        next_line = _LINE_WITH_END.match
        current: list[str] | None = None
        position = 0
        end = len(text)
        while position < end:
            match = header_line(text, position)
            if match is not None:
                current = [match.group(2).lstrip(" \t")]
                name = match.group(1).lower()
                if name in values:
                    values[name].append(current)
                else:
                    values[name] = [current]
                position = match.end()
                continue
            # (a line always matches where text is left; no cast on this path)
            line = next_line(text, position).group()  # type: ignore[union-attr]
            if line[0] == ":":
                # A header with no name is dropped, with what continues it,
                # and the headers go on, as email does (pip reads them so).
                current = None
                position += len(line)
                continue
            if line[0] in " \t":
                if current is not None:
                    current.append(line)
                # A continuation before any header is ignored, as email does.
                position += len(line)
                continue
            # An empty line ends the headers; any other line starts the body.
            self.payload = text[position + len(line) if not line.rstrip("\r\n") else position:]
            return
        self.payload = ""

    def get_all(self, name: str) -> list[str] | None:
        """Every value of a header, continuation lines kept, or L{None}."""
        values = self._values.get(name.lower())
        if values is None:
            return None
        return ["".join(parts).rstrip("\r\n") for parts in values]

    def get(self, name: str) -> str | None:
        """The first value of a header, or L{None}."""
        values = self.get_all(name)
        return values[0] if values else None

    def names(self) -> KeysView[str]:
        """The lower-cased names of the headers, each once, in no set order."""
        return self._values.keys()


#: Core metadata fields that may appear once (the others, such as
#: Classifier or Requires-Dist, repeat).
_SINGLE_USE_FIELDS = frozenset({
    "metadata-version", "name", "version", "summary", "description",
    "description-content-type", "keywords", "home-page", "download-url",
    "author", "author-email", "maintainer", "maintainer-email", "license",
    "license-expression", "requires-python",
})

# Control characters but TAB, LF and CR (C0, DEL, C1), the Unicode line
# and paragraph separators and the bidirectional embedding, override and
# isolate controls: none belongs in a header ("Trojan Source").
_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)

#: Longest value of a metadata header, in characters, on upload; others get
#: L{DEFAULT_HEADER_LIMIT}. The upload form's fields share these caps
#: (L{pypid.core.dists.upload.FIELD_LIMITS}). (pandas and matplotlib carry over
#: 64 KiB of licence texts.)
HEADER_LIMITS = {"summary": 512, "description": 1 << 20, "license": 1 << 20, "keywords": 4096}
DEFAULT_HEADER_LIMIT = 2048


def _strict_text(raw: bytes) -> str:
    """The text of metadata under the upload rules: UTF-8 without a NUL."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InvalidDistribution(
            f"the metadata is not valid UTF-8 (at byte {e.start})", field="metadata"
        ) from None
    if "\x00" in text:
        raise InvalidDistribution("the metadata contains a NUL character", field="metadata")
    return text


def _check_headers(headers: _Headers) -> None:
    """
    Refuse headers that readers could take differently (the upload rules):
    a control character, a value over its cap, or a single-use field given
    twice, of which pip and the index might read different copies.
    """
    for name in headers.names():
        # (a name from names() always has values)
        values = cast("list[str]", headers.get_all(name))
        shown = escape_text(name.title())
        if name in _SINGLE_USE_FIELDS and len(values) > 1:
            raise InvalidDistribution(f"the metadata has more than one {shown} field",
                                      field=f"metadata.{shown}")
        if any(_CONTROL.search(value) for value in values):
            raise InvalidDistribution(f"the metadata's {shown} field contains a control character",
                                      field=f"metadata.{shown}")
        limit = HEADER_LIMITS.get(name, DEFAULT_HEADER_LIMIT)
        if any(len(value) > limit for value in values):
            raise InvalidDistribution(
                f"the metadata's {shown} field is longer than {limit} characters",
                field=f"metadata.{shown}")


def parse_metadata(raw: bytes, strict: bool = False) -> CoreMetadata:
    """
    Parse core metadata (a wheel's METADATA or an sdist's PKG-INFO).
    Undecodable bytes become U+FFFD in the parsed view; C{raw} is kept as given.

    @param strict: apply the upload rules (L{_strict_text},
        L{_check_headers}) too.
    @raise InvalidDistribution: if Metadata-Version, Name or Version is
        missing, or with C{strict}, if the rules refuse it.
    """
    if strict:
        message = _Headers(_strict_text(raw))
        _check_headers(message)
    else:
        message = _Headers(raw.decode("utf-8-sig", errors="replace"))

    # Only the headers present are looked at, each once: this runs for every
    # file of a folder being imported; fields are CoreMetadata's keywords.
    fields: dict[str, Any] = {}
    for name, values in message._values.items():
        key = _ONE_VALUE_FIELDS.get(name)
        if key is not None:
            parts = values[0]
            value = _unfold((parts[0] if len(parts) == 1 else "".join(parts)).rstrip("\r\n"))
            if value:
                fields[key] = value
            continue
        key = _MANY_VALUE_FIELDS.get(name)
        if key is not None:
            unfolded = [_unfold("".join(parts).rstrip("\r\n")) for parts in values]
            fields[key] = tuple(value for value in unfolded if value)
    for header in ("Metadata-Version", "Name", "Version"):
        if header.lower().replace("-", "_") not in fields:
            raise InvalidDistribution(f"the metadata has no {header}", field=f"metadata.{header}")

    body = message.payload
    if not body.strip():
        folded = message.get("Description")
        body = _unfold_description(folded) if folded is not None else ""
    fields["description"] = body or None
    keywords = fields.pop("keywords", None)
    if keywords:
        fields["keywords"] = ",".join(keywords)
    project_urls: list[tuple[str, str]] = []
    for spec in fields.pop("project_urls", ()):
        label, _, url = spec.partition(",")
        if label.strip() and url.strip():
            project_urls.append((label.strip(), url.strip()))
    if project_urls:
        fields["project_urls"] = tuple(project_urls)
    return CoreMetadata(raw=raw, **fields)


# The fields of L{CoreMetadata} by the lower-cased header that gives them:
# from its first value (Description is read apart), or from all its values.
_ONE_VALUE_FIELDS = {name: name.replace("-", "_")
                     for name in _SINGLE_USE_FIELDS - {"description", "keywords"}}
_MANY_VALUE_FIELDS = {
    "keywords": "keywords",
    "project-url": "project_urls",
    "dynamic": "dynamic",
    "license-file": "license_files",
    "classifier": "classifiers",
    "requires-dist": "requires_dist",
    "provides-extra": "provides_extra",
    "platform": "platforms",
}


# The longest version spelling remembered by version_of (real ones are short;
# a hostile one could be megabytes long).
_MAX_CACHED_VERSION = 64


def version_of(spelling: str) -> Version | None:
    """
    The L{Version} a spelling stands for, or L{None} if it is not a valid
    PEP 440 version. A folder's files share a few versions, and parsing one
    costs 3 us: short spellings are remembered.
    """
    if len(spelling) > _MAX_CACHED_VERSION:
        return _parse_version(spelling)
    return _cached_version(spelling)


def _parse_version(spelling: str) -> Version | None:
    try:
        return Version(spelling)
    except InvalidVersion:
        return None


_cached_version = functools.lru_cache(maxsize=4096)(_parse_version)
