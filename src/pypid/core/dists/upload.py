"""
Validation of the legacy upload form (what twine and C{uv publish} send),
as the public index applies it, and a little past it: it reads the parsed
form and the upload's digests, and returns what to store or raises
L{BadRequest} naming the field.

The form is checked as a whole first, so that what the index keeps does
not depend on which of two copies of a field a reader takes: a single-use
field at most once (twice with the same value is accepted, as
requests-based clients may repeat one); no text field as a file part, no
file part but C{content} (and the old C{gpg_signature}); text without NUL
or control characters, line breaks, tabs and form feeds only where core
metadata allows several lines (C{description}, C{license}); every field
within its cap (L{FIELD_LIMITS}); C{name} and C{version} sent exactly,
without surrounding whitespace. The archive is checked afterwards
(L{pypid.core.dists.dist_archive.extract}).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping, Sequence
from typing import Protocol

import attrs

from pypid.core.dists.metadata import (
    DEFAULT_HEADER_LIMIT,
    HEADER_LIMITS,
    SUPPORTED_METADATA_VERSIONS,
    escape_text,
    short_text,
)
from pypid.core.dists.names import (
    SDIST,
    WHEEL,
    InvalidName,
    canonical_version,
    is_valid_name,
    normalize,
    parse_filename,
)
from pypid.core.dists.provenance import ProvenanceInvalid, parse_attestations
from pypid.core.util.http_errors import BadRequest


class UploadedFile(Protocol):
    """The spooled file part of an upload (L{pypid.web.server.upload_form.FilePart})."""

    @property
    def filename(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> str: ...
    @property
    def blake2_256(self) -> str: ...
    @property
    def md5(self) -> str: ...


class UploadForm(Protocol):
    """A parsed upload form (L{pypid.web.server.upload_form.Form}), as it is checked here."""

    @property
    def fields(self) -> Mapping[str, Sequence[str]]: ...
    @property
    def files(self) -> Mapping[str, UploadedFile]: ...
    @property
    def inline_files(self) -> Mapping[str, object]: ...
    def get(self, name: str) -> str | None: ...


_HEX64 = re.compile(r"^[0-9a-fA-F]{64}\Z")
_HEX32 = re.compile(r"^[0-9a-fA-F]{32}\Z")

#: Form fields that may be sent more than once: the repeatable core metadata
#: fields, under the names twine and uv send them.
MULTI_USE_FIELDS = frozenset({
    "classifiers", "platform", "supported_platform", "requires", "provides",
    "obsoletes", "requires_dist", "provides_dist", "obsoletes_dist",
    "requires_external", "project_urls", "provides_extra", "dynamic",
    # twine says license_file, uv import_names and import_namespaces
    "license_file", "license_files", "import_name", "import_names",
    "import_namespace", "import_namespaces",
})

#: Fields whose values may hold line breaks and tabs.
MULTI_LINE_FIELDS = frozenset({"description", "license", "attestations"})

#: File parts accepted besides the distribution itself (twine < 6 could
#: send a detached GPG signature; it is ignored).
_IGNORED_FILE_PARTS = frozenset({"gpg_signature"})

#: Longest value of a field, in characters: the metadata headers' caps, and the form's own.
FIELD_LIMITS = {**HEADER_LIMITS, "name": 200, "version": 128, "attestations": 1 << 20}

#: Longest value of any other field.
DEFAULT_FIELD_LIMIT = DEFAULT_HEADER_LIMIT

#: Most values of one multi-use field, and of the whole form.
MAX_VALUES_PER_FIELD = 500
MAX_VALUES = 1000

# C0 controls and DEL, and the C1 controls; TAB, LF and CR are told apart,
# and so is the form feed, a page break that old README and licence files
# hold (docutils' README does) and no reader takes for anything else.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_CONTROL_OR_FORM_FEED = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Breaks and tabs, the Unicode line and paragraph separators, and the
# bidirectional controls that make one line read as another ("Trojan
# Source"): none belongs on one line of metadata.
_LINE_BREAK_OR_TAB = re.compile(r"[\t\n\r\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def check_form(form: UploadForm) -> None:
    """Refuse a form that breaks the rules of the module docstring, naming the field."""
    for name in form.inline_files:
        if name not in _IGNORED_FILE_PARTS:
            raise BadRequest(f"{escape_text(name, 60)}: expected a text field, not a file part")
    total = 0
    for name, values in form.fields.items():
        shown = escape_text(name, 60)
        total += len(values)
        if total > MAX_VALUES:
            raise BadRequest(f"the form has more than {MAX_VALUES} fields")
        if name in MULTI_USE_FIELDS:
            if len(values) > MAX_VALUES_PER_FIELD:
                raise BadRequest(f"{shown}: more than {MAX_VALUES_PER_FIELD} values")
        elif len(set(values)) > 1:
            raise BadRequest(f"{shown}: sent more than once with different values")
        limit = FIELD_LIMITS.get(name, DEFAULT_FIELD_LIMIT)
        for value in values:
            if len(value) > limit:
                raise BadRequest(f"{shown}: longer than {limit} characters")
            if "\x00" in value:
                raise BadRequest(f"{shown}: contains a NUL character")
            control = _CONTROL if name in MULTI_LINE_FIELDS else _CONTROL_OR_FORM_FEED
            if control.search(value):
                raise BadRequest(f"{shown}: contains a control character")
            if name not in MULTI_LINE_FIELDS and _LINE_BREAK_OR_TAB.search(value):
                raise BadRequest(
                    f"{shown}: must be one line, without tabs or bidirectional controls")
    for name in ("name", "version"):
        sent = form.get(name)
        if sent is not None and sent != sent.strip():
            raise BadRequest(f"{name}: has leading or trailing whitespace")


@attrs.frozen
class UploadRequest:
    """
    A valid upload, ready to be inspected and stored: the normalized project
    and version, the validated filename, the spooled file C{part}, and the
    C{attestations} field (PEP 740, its shape checked by
    L{pypid.core.dists.provenance.parse_attestations}) or L{None}.
    """

    project: str
    name: str
    version: str
    filename: str
    packagetype: str
    part: UploadedFile
    attestations: str | None = None


def _optional(form: UploadForm, name: str) -> str | None:
    value = form.get(name)
    return (value.strip() if value is not None else value) or None


def _required(form: UploadForm, name: str) -> str:
    value = _optional(form, name)
    if value is None:
        raise BadRequest(f"{name}: this field is required")
    return value


def _check_digest(form: UploadForm, field: str, pattern: re.Pattern[str], actual: str) -> bool:
    supplied = _optional(form, field)
    if supplied is None:
        return False
    if not pattern.match(supplied):
        raise BadRequest(f"{field}: expected a hex digest")
    if not hmac.compare_digest(supplied.lower(), actual):
        raise BadRequest(
            f"{field}: the digest supplied does not match a digest calculated "
            "from the uploaded file"
        )
    return True


def _bad_filename(filename: str, error: InvalidName) -> str:
    """
    What an upload whose C{filename} L{parse_filename} refused with
    C{error} is told: that it is the filename's fault, not the form's
    C{name}'s, the filename named once (cut to fit a status line).
    """
    if not filename:
        return "the uploaded file has no filename"
    return f"the filename {short_text(filename)} is not valid: {error}"


def validate_upload(form: UploadForm) -> UploadRequest:
    """Check the form of a C{file_upload} action and its file part, naming the field at fault."""
    check_form(form)
    action = _required(form, ":action")
    if action != "file_upload":
        raise BadRequest(f":action: unsupported action {action!r}; expected file_upload")
    protocol = _optional(form, "protocol_version")
    if protocol not in (None, "1"):
        raise BadRequest("protocol_version: unknown protocol version; expected 1")
    metadata_version = _required(form, "metadata_version")
    if metadata_version not in SUPPORTED_METADATA_VERSIONS:
        raise BadRequest(
            f"metadata_version: {metadata_version[:20]!r} is not a metadata version the index "
            f"supports ({', '.join(sorted(SUPPORTED_METADATA_VERSIONS))})"
        )
    name = _required(form, "name")
    if not is_valid_name(name):
        raise BadRequest(f"name: {name!r} is not a valid project name")
    try:
        version = canonical_version(_required(form, "version"))
    except InvalidName as e:
        raise BadRequest(f"version: {e}")
    filetype = _optional(form, "filetype")
    if filetype not in (None, WHEEL, SDIST):
        raise BadRequest(f"filetype: expected bdist_wheel or sdist, not {filetype!r}")
    part = form.files.get("content")
    if part is None:
        raise BadRequest("content: the upload has no file part named content")
    if part.size == 0:
        raise BadRequest("the uploaded file is empty")
    filename = part.filename or ""
    try:
        parsed = parse_filename(filename)
    except InvalidName as e:
        raise BadRequest(_bad_filename(filename, e)) from None
    if filetype is not None and filetype != parsed.packagetype:
        raise BadRequest(
            f"filetype: {filetype} does not match the file {filename} ({parsed.packagetype})"
        )
    if parsed.project != normalize(name):
        raise BadRequest(
            f"the filename {filename} is for project {parsed.project!r}, "
            f"not {normalize(name)!r}"
        )
    if parsed.version != version:
        raise BadRequest(f"the filename {filename} is for version {parsed.version}, not {version}")
    checked = [
        _check_digest(form, "sha256_digest", _HEX64, part.sha256),
        _check_digest(form, "blake2_256_digest", _HEX64, part.blake2_256),
        _check_digest(form, "md5_digest", _HEX32, part.md5),
    ]
    if not any(checked):
        raise BadRequest("sha256_digest: at least one digest of the file is required")
    attestations = _optional(form, "attestations")
    if attestations is not None:
        # (the shape now, before the file is read: the signatures after)
        try:
            if not parse_attestations(attestations):
                attestations = None
        except ProvenanceInvalid as e:
            raise BadRequest(str(e))
    return UploadRequest(
        project=parsed.project,
        name=name,
        version=version,
        filename=filename,
        packagetype=parsed.packagetype,
        part=part,
        attestations=attestations,
    )
