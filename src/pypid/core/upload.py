"""
Validation of the legacy upload form (what twine and C{uv publish} send), as
the public index applies it. Pure: it reads the parsed form and the upload's
digests, and returns what to store or raises L{BadRequest} naming the field.
"""

import hmac
import re

import attrs

from pypid.core.errors import BadRequest
from pypid.core.names import (
    SDIST,
    WHEEL,
    InvalidName,
    canonical_version,
    is_valid_name,
    normalize,
    parse_filename,
)

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}\Z")
_HEX32 = re.compile(r"^[0-9a-fA-F]{32}\Z")


@attrs.frozen
class UploadRequest:
    """
    A valid upload, ready to be inspected and stored.

    @ivar project: normalized project name.
    @ivar version: normalized version.
    @ivar filename: the uploaded file's name, validated.
    @ivar packagetype: C{"bdist_wheel"} or C{"sdist"}.
    @ivar part: the spooled file part (path, size and digests).
    """

    project: str
    name: str
    version: str
    filename: str
    packagetype: str
    part: object


def _field(form, name, required=True):
    value = form.get(name)
    if value is not None:
        value = value.strip()
    if required and not value:
        raise BadRequest(f"{name}: this field is required")
    return value or None


def _check_digest(form, field, pattern, actual):
    supplied = _field(form, field, required=False)
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


def validate_upload(form):
    """
    Check the form of a C{file_upload} action and the uploaded file part.

    @param form: a L{pypid.web.multipart.Form}.
    @rtype: L{UploadRequest}
    @raise BadRequest: naming the field and the problem.
    """
    action = _field(form, ":action")
    if action != "file_upload":
        raise BadRequest(f":action: unsupported action {action!r}; expected file_upload")
    protocol = _field(form, "protocol_version", required=False)
    if protocol not in (None, "1"):
        raise BadRequest("protocol_version: unknown protocol version; expected 1")
    name = _field(form, "name")
    if not is_valid_name(name):
        raise BadRequest(f"name: {name!r} is not a valid project name")
    try:
        version = canonical_version(_field(form, "version"))
    except InvalidName as e:
        raise BadRequest(f"version: {e}")
    filetype = _field(form, "filetype", required=False)
    if filetype not in (None, WHEEL, SDIST):
        raise BadRequest(f"filetype: expected bdist_wheel or sdist, not {filetype!r}")
    part = form.files.get("content")
    if part is None:
        raise BadRequest("content: the upload has no file part named content")
    if part.size == 0:
        raise BadRequest("content: the uploaded file is empty")
    filename = part.filename or ""
    try:
        parsed = parse_filename(filename)
    except InvalidName as e:
        raise BadRequest(f"content: {e}")
    if filetype is not None and filetype != parsed.packagetype:
        raise BadRequest(
            f"filetype: {filetype} does not match the file {filename} ({parsed.packagetype})"
        )
    if parsed.project != normalize(name):
        raise BadRequest(
            f"content: the filename {filename} is for project {parsed.project!r}, "
            f"not {normalize(name)!r}"
        )
    if parsed.version != version:
        raise BadRequest(
            f"content: the filename {filename} is for version {parsed.version}, not {version}"
        )
    checked = [
        _check_digest(form, "sha256_digest", _HEX64, part.sha256),
        _check_digest(form, "blake2_256_digest", _HEX64, part.blake2_256),
        _check_digest(form, "md5_digest", _HEX32, part.md5),
    ]
    if not any(checked):
        raise BadRequest("sha256_digest: at least one digest of the file is required")
    return UploadRequest(
        project=parsed.project,
        name=name,
        version=version,
        filename=filename,
        packagetype=parsed.packagetype,
        part=part,
    )
