"""
Upstream project pages, parsed into the values the upstream cache keeps.
Pure: the caller fetches the bytes and passes the content type, final URL
and C{X-PyPI-Last-Serial}.

L{parse_page} reads PEP 691 JSON or PEP 503 HTML into one L{UpstreamPage},
so nothing past this module knows which arrived. Both are untrusted: an
entry this module will not pass on (not a distribution's filename, another
project's, no usable sha256, a URL that is not http(s), a filename twice)
is counted in L{UpstreamPage.refused} instead of failing the page, as pip
and uv ignore links they cannot use. Only a page that cannot be read at
all raises L{UpstreamPageError}.

A page's work and memory are bounded by the entries it may list
(C{max_entries}), not only by its size: a 20 MB JSON page of ten million
C{1}s once made ten million refusals (2.3 GB, kept while cached). Before
the JSON is decoded its commas and brackets are counted (milliseconds for
20 MB), so a page that could not hold that few entries is refused before
it becomes millions of objects; the HTML reader stops at the anchor past
the limit.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from pypid.core.dists.model import cut_reason
from pypid.core.dists.names import InvalidName, is_valid_name, normalize, parse_filename
from pypid.core.dists.variant_files import VARIANTS, is_variants_filename, variants_version
from pypid.core.indexes.project_status import ACTIVE, MAX_REASON, STATUSES, ProjectStatus
from pypid.upstream.page_fields import (
    DIGITS,
    URL_STRIP,
    Unusable,
    checked_sha256,
    html_metadata,
    json_metadata,
    provenance_url,
    resolve_url,
    size,
    upload_time,
)
from pypid.upstream.page_model import (
    SKIPPED_EXAMPLES,
    UpstreamFile,
    UpstreamPage,
    UpstreamPageError,
    quoted,
)

#: Media types read as PEP 691 JSON. Plain C{application/json} is accepted
#: because some proxies and older servers label the same body that way.
JSON_TYPES = frozenset({"application/vnd.pypi.simple.v1+json", "application/json"})

#: Media types read as PEP 503 HTML (C{text/html} is the v1 alias, PEP 691).
HTML_TYPES = frozenset({"text/html", "application/vnd.pypi.simple.v1+html"})

#: The only API major version understood; PEP 629 tells clients to refuse a
#: higher one rather than guess at its meaning.
API_MAJOR = 1

#: The entries a page may list when the caller does not say
#: (C{[upstream] max_page_files}).
MAX_PAGE_ENTRIES = 100_000

#: The longest display name taken from a page; a longer one (separators
#: that normalize away) is replaced by the normalized name.
MAX_NAME_LENGTH = 200

#: JSON values (commas) and containers (brackets) one entry may take, at
#: most: a PEP 691 file entry has about ten keys and three objects; the rest
#: is slack for long C{requires-python} specifiers and keys to come.
_VALUES_PER_ENTRY = 32
_CONTAINERS_PER_ENTRY = 8

_API_VERSION = re.compile(r"(\d+)(?:\.\d+)*")
_SERIAL_COMMENT = re.compile(r"SERIAL\s+(\d+)")
# Warehouse's heading and title say "Links for <name>".
_LINKS_FOR = re.compile(r"\s*Links\s+for\s+(.*?)\s*", re.IGNORECASE | re.DOTALL)


#: An entry of a page, whichever its form: C{(label, filename or None,
#: fields or None, why it is refused or None)}.
_Entry = tuple[str, str | None, dict[str, Any] | None, str | None]


def parse_page(body: bytes, content_type: str, page_url: str, project: str,
               last_serial_header: str | None = None,
               max_entries: int = MAX_PAGE_ENTRIES) -> UpstreamPage:
    """
    Parse an upstream project page in whichever form it arrived.

    @param content_type: the response's C{Content-Type} header; it picks the
        form, and for HTML its C{charset} (UTF-8 when absent, as pip does).
    @param page_url: the URL the page was finally fetched from; relative file
        URLs are resolved against it (and against C{<base href>} in HTML).
    @param last_serial_header: the C{X-PyPI-Last-Serial} header, if any; a
        serial in the body itself wins.
    @param max_entries: the most entries (refused ones included) the page may list.
    @raise UpstreamPageError: for an unsupported content type, an API major
        version other than 1, a body that cannot be read, or too many entries.
    """
    project = normalize(project)
    media_type, params = _split_content_type(content_type)
    if media_type in JSON_TYPES:
        name, entries, serial, status = _read_json(body, page_url, project, max_entries)
    elif media_type in HTML_TYPES:
        name, entries, serial, status = _read_html(body, params.get("charset"), page_url,
                                                   project, max_entries)
    else:
        raise UpstreamPageError(f"unsupported content type {quoted(content_type)}")
    if serial is None:
        serial = _serial(last_serial_header)
    files, skipped, refused, variants, variant_wheels = _check_entries(entries, project)
    return UpstreamPage(project=project, name=name, files=_by_filename(files),
                        variants=_by_filename(variants),
                        variant_wheels=_by_filename(variant_wheels), skipped=tuple(skipped),
                        refused=refused, last_serial=serial, status=status)


def _by_filename(files: list[UpstreamFile]) -> tuple[UpstreamFile, ...]:
    return tuple(sorted(files, key=lambda f: f.filename))


def upstream_status(status: object, reason: object) -> ProjectStatus | None:
    """
    The project status an upstream page gives, read leniently (PEP 792 tells
    clients to ignore what they do not know): L{None} (active) for C{active},
    an unknown status or one that is not a string; a reason that is not a
    string is dropped, and one that is made a single printable line of at
    most L{MAX_REASON} characters.
    """
    if not isinstance(status, str) or status not in STATUSES or status == ACTIVE:
        return None
    text: str | None = None
    if isinstance(reason, str):
        text = "".join(c if c.isprintable() else " " for c in reason[: 4 * MAX_REASON])
        text = " ".join(text.split())[:MAX_REASON].strip() or None
    return ProjectStatus(status, text)


def _too_many(max_entries: int) -> UpstreamPageError:
    return UpstreamPageError(f"the page lists more than {max_entries} entries "
                             "([upstream] max_page_files)")


def _split_content_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """Return the lowercase media type and a dict of lowercase-named parameters."""
    media_type, *rest = (content_type or "").split(";")
    params: dict[str, str] = {}
    for param in rest:
        key, _, value = param.partition("=")
        params[key.strip().lower()] = value.strip().strip('"')
    return media_type.strip().lower(), params


def _serial(value: str | None) -> int | None:
    """A serial from a header, or L{None} when absent or not a number."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str) and DIGITS.fullmatch(value.strip()):
        return int(value.strip())
    return None


def _check_api_version(value: object, what: str) -> None:
    """Refuse a page whose API major version is not 1, or malformed (PEP 629)."""
    match = _API_VERSION.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise UpstreamPageError(f"invalid {what} {quoted(value)}")
    if int(match.group(1)) != API_MAJOR:
        raise UpstreamPageError(
            f"unsupported {what} {quoted(value)}: only major version {API_MAJOR} is understood")


def _read_json(body: bytes | str, page_url: str, project: str, max_entries: int
               ) -> tuple[str, list[_Entry], int | None, ProjectStatus | None]:
    """
    Read a PEP 691 project page: its display name, entries, serial and status.

    @raise UpstreamPageError: if the body is not a PEP 691 v1 project page,
        or holds more values than C{max_entries} entries could.
    """
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    if (body.count(b",") > _VALUES_PER_ENTRY * max_entries + 64
            or body.count(b"{") + body.count(b"[")
            > _CONTAINERS_PER_ENTRY * max_entries + 64):
        raise _too_many(max_entries)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise UpstreamPageError(f"the page is not valid JSON: {e}")
    if not isinstance(data, dict):
        raise UpstreamPageError("the page is not a JSON object")
    meta = data.get("meta")
    if not isinstance(meta, dict) or "api-version" not in meta:
        raise UpstreamPageError("the page has no meta.api-version")
    _check_api_version(meta["api-version"], "api-version")
    serial = meta.get("_last-serial")
    if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
        serial = None
    name = data.get("name", project)
    if not isinstance(name, str):
        raise UpstreamPageError("the page's name is not a string")
    if normalize(name) != project:
        # Every file would be refused anyway; saying so once is clearer.
        raise UpstreamPageError(f"the page is for project {quoted(name)}, not {project!r}")
    if len(name) > MAX_NAME_LENGTH:
        name = project  # ("holy" + "_" * 5_000_000 + "grail" normalizes to holy-grail)
    files = data.get("files")
    if not isinstance(files, list):
        raise UpstreamPageError("the page has no files list")
    if len(files) > max_entries:
        raise _too_many(max_entries)
    entries = [_json_entry(i, entry, page_url) for i, entry in enumerate(files)]
    status = data.get("project-status")
    return name, entries, serial, (upstream_status(status.get("status"), status.get("reason"))
                                   if isinstance(status, dict) else None)


def _json_entry(index: int, entry: object, page_url: str) -> _Entry:
    """One element of a JSON C{files} list as an entry for L{_check_entries}."""
    label = f"files[{index}]"
    if not isinstance(entry, dict):
        return label, None, None, "the entry is not a JSON object"
    filename = entry.get("filename")
    if not isinstance(filename, str):
        url = entry.get("url")
        return (url if isinstance(url, str) else label), None, None, "the entry has no filename"
    try:
        url = entry.get("url")
        if not isinstance(url, str):
            raise Unusable("the entry has no url")
        url, _fragment = resolve_url(page_url, url)
        hashes = entry.get("hashes")
        if not isinstance(hashes, dict):
            raise Unusable("the entry's hashes are not a JSON object")
        sha256 = checked_sha256(hashes.get("sha256"))
        requires_python = entry.get("requires-python")
        if requires_python is not None and not isinstance(requires_python, str):
            raise Unusable("requires-python is not a string")
        yanked = entry.get("yanked", False)
        if yanked is True:
            yanked = ""
        elif yanked is False or yanked is None:
            yanked = None
        elif not isinstance(yanked, str):
            raise Unusable("yanked is neither a boolean nor a string")
    except Unusable as e:
        return filename, filename, None, str(e)
    # (PEP 700 makes size a JSON number; a string is not one)
    fields = dict(
        url=url, sha256=sha256, requires_python=requires_python or None,
        yanked=cut_reason(yanked), metadata_sha256=json_metadata(entry),
        size=None if isinstance(entry.get("size"), str) else size(entry.get("size")),
        upload_time=upload_time(entry.get("upload-time")),
        provenance_url=provenance_url(page_url, entry.get("provenance")))
    return filename, filename, fields, None


class _PageParser(HTMLParser):
    """Collect what a PEP 503 page holds, and warehouse's C{<!--SERIAL n-->} comment."""

    def __init__(self, max_entries: int = MAX_PAGE_ENTRIES) -> None:
        super().__init__(convert_charrefs=True)
        self._max_entries = max_entries
        self.anchors: list[dict[str, str | None]] = []
        self.base: str | None = None
        self.repository_version: str | None = None
        self.title: str | None = None
        self.heading: str | None = None
        self.serial: int | None = None
        self.status: str | None = None
        self.reason: str | None = None
        self._text: list[str] | None = None
        self._text_tag: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Record anchors, the base URL and the version meta tag."""
        # (HTML gives the first of repeated attributes precedence)
        attributes = dict(reversed(attrs))
        if tag == "a" and "href" in attributes:
            if len(self.anchors) >= self._max_entries:
                raise _too_many(self._max_entries)
            self.anchors.append(attributes)
        elif tag == "base" and self.base is None and attributes.get("href") is not None:
            self.base = attributes["href"]
        elif (tag == "meta" and self.repository_version is None
                and (attributes.get("name") or "").lower() == "pypi:repository-version"):
            self.repository_version = attributes.get("content") or ""
        elif tag == "meta":
            self._status_meta(attributes)
        elif (tag in ("title", "h1") and self._text is None
                and (self.title if tag == "title" else self.heading) is None):
            self._text, self._text_tag = [], tag

    def _status_meta(self, attributes: dict[str, str | None]) -> None:
        """Record PEP 792's status and reason meta tags (the first of each)."""
        name = (attributes.get("name") or "").lower()
        if name == "pypi:project-status" and self.status is None:
            self.status = (attributes.get("content") or "").strip()
        elif name == "pypi:project-status-reason" and self.reason is None:
            self.reason = attributes.get("content") or ""

    def handle_endtag(self, tag: str) -> None:
        """Finish the title or heading text."""
        if self._text is not None and tag == self._text_tag:
            text = "".join(self._text)
            if tag == "h1":
                self.heading = text
            else:
                self.title = text
            self._text = self._text_tag = None

    def handle_data(self, data: str) -> None:
        """Gather the title or heading text."""
        if self._text is not None:
            self._text.append(data)

    def handle_comment(self, data: str) -> None:
        """Read warehouse's serial comment."""
        match = _SERIAL_COMMENT.fullmatch(data.strip())
        if match and self.serial is None:
            self.serial = int(match.group(1))


def _html_name(parser: _PageParser, project: str) -> str:
    """
    The display name from the title or first heading ("Links for <name>"),
    or the normalized project name when neither names this project.
    """
    for text in (parser.title, parser.heading):
        if text is None:
            continue
        match = _LINKS_FOR.fullmatch(text)
        candidate = match.group(1) if match else text.strip()
        if (len(candidate) <= MAX_NAME_LENGTH and is_valid_name(candidate)
                and normalize(candidate) == project):
            return candidate
    return project


def _read_html(body: bytes, charset: str | None, page_url: str, project: str,
               max_entries: int
               ) -> tuple[str, list[_Entry], int | None, ProjectStatus | None]:
    """
    Read a PEP 503 project page: its display name, entries, serial and status.

    @raise UpstreamPageError: if the body cannot be decoded or parsed, or
        announces a repository version other than 1.x.
    """
    charset = charset or "utf-8"
    try:
        text = body.decode(charset)
    except LookupError:
        raise UpstreamPageError(f"unknown charset {quoted(charset)}")
    except UnicodeDecodeError:
        raise UpstreamPageError(f"the page is not valid {quoted(charset)[1:-1]}")
    parser = _PageParser(max_entries)
    try:
        parser.feed(text)
        parser.close()
    except UpstreamPageError:
        raise
    except (AssertionError, ValueError) as e:
        # html.parser still raises AssertionError on some broken markup
        # (an unknown marked section such as "<![foo[").
        raise UpstreamPageError(f"the page is not valid HTML: {e}")
    if parser.repository_version is not None:
        _check_api_version(parser.repository_version, "pypi:repository-version")
    base = page_url if parser.base is None else urljoin(page_url, parser.base.strip(URL_STRIP))
    entries = [_html_entry(attributes, base) for attributes in parser.anchors]
    return (_html_name(parser, project), entries, parser.serial,
            upstream_status(parser.status, parser.reason))


def _html_entry(attributes: dict[str, str | None], base: str) -> _Entry:
    """
    Turn one anchor into an entry for L{_check_entries}: the filename is the
    href's last path segment, percent-decoded (as uv reads it), and the
    sha256 comes from the C{#sha256=} fragment.
    """
    href = attributes.get("href") or ""
    try:
        url, fragment = resolve_url(base, href)
    except Unusable as e:
        return href, None, None, str(e)
    filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    if not filename:
        return href, None, None, "the URL does not end in a filename"
    # The fragment is "<hashname>=<hex>", possibly after other "&"-separated
    # pairs such as "egg=", which pip also tolerates; the first of a name wins.
    pairs = [pair.partition("=") for pair in fragment.split("&")]
    hashes = dict(reversed([(key.lower(), value) for key, sep, value in pairs if sep]))
    try:
        sha256 = checked_sha256(hashes.get("sha256"))
    except Unusable as e:
        return filename, filename, None, str(e)
    yanked = (attributes["data-yanked"] or "") if "data-yanked" in attributes else None
    fields = dict(
        url=url, sha256=sha256, requires_python=attributes.get("data-requires-python") or None,
        yanked=cut_reason(yanked), metadata_sha256=html_metadata(attributes),
        size=size(attributes.get("data-size")),
        upload_time=upload_time(attributes.get("data-upload-time")),
        provenance_url=provenance_url(base, attributes.get("data-provenance")))
    return filename, filename, fields, None


def _check_entries(entries: list[_Entry], project: str
                   ) -> tuple[list[UpstreamFile], list[tuple[str, str]], int,
                              list[UpstreamFile], list[UpstreamFile]]:
    """
    Check each entry the same way whichever form it came from.

    The first entry naming a filename decides for it: later ones with the
    same filename are skipped even when the first was refused, so that a
    page cannot be read two ways depending on which entry is valid.

    @return: C{(files, skipped, refused, variants, variant_wheels)}: the
        first L{SKIPPED_EXAMPLES} refusals are the skipped, with their reasons.
    """
    files: list[UpstreamFile] = []
    variants: list[UpstreamFile] = []
    variant_wheels: list[UpstreamFile] = []
    skipped: list[tuple[str, str]] = []
    seen: set[str] = set()
    refused = 0

    def refuse(label: str, reason: str) -> None:
        nonlocal refused
        refused += 1
        if len(skipped) < SKIPPED_EXAMPLES:
            # (cut short: a label is the upstream's text, kept with the page)
            skipped.append((label[:200], reason))

    for label, filename, fields, reason in entries:
        if filename is not None:
            if filename in seen:
                refuse(label, "duplicate filename")
                continue
            seen.add(filename)
        if reason is not None:
            refuse(label, reason)
            continue
        assert filename is not None and fields is not None
        if is_variants_filename(filename):
            version = variants_version(filename, project)
            if version is None:
                refuse(label, "not this project's index-level file of variants")
            else:
                variants.append(UpstreamFile(filename=filename, project=project,
                                             version=version, packagetype=VARIANTS, **fields))
            continue
        try:
            parsed = parse_filename(filename, legacy=True)
        except InvalidName as e:
            refuse(label, f"not a distribution filename: {e}")
            continue
        if parsed.project != project:
            refuse(label, f"the file belongs to project {parsed.project!r}, not {project!r}")
            continue
        # (PEP 825: a variant wheel is listed only with its data, which
        # its release's index-level file gives: L{pypid.upstream.variant_data})
        (files if parsed.variant is None else variant_wheels).append(UpstreamFile(
            filename=filename, project=parsed.project, version=parsed.version,
            packagetype=parsed.packagetype, **fields))
    return files, skipped, refused, variants, variant_wheels

