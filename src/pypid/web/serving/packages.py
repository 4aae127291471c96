"""
C{/packages/<aa>/<bb>/<rest>/<filename>}: a hosted file by the BLAKE2b-256
of its bytes (C{<aa><bb><rest>}), as the public index's file host names its
files, and as the legacy JSON links them (L{pypid.core.indexes.links.package_url_for});
its core metadata at the same path and C{.metadata} (PEP 658).
Mirrors read the JSON and fetch these URLs: bandersnatch refuses a file
whose path does not begin with C{/packages}.

One path for every index: the digest names the bytes, so the file is
served from the first index the reader may enter and read it in (the
default, then the named ones) whose record of that name has that digest,
with that index's decision (its status, advisories, download count).
Found nowhere without credentials while the default index needs them: the
challenge its read path gives.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import Request

from pypid.core.dists.names import InvalidName, parse_filename
from pypid.core.util.http_errors import HTTPError, NotFound
from pypid.web.identity.gates import Gates, nothing_found
from pypid.web.server.respond import (
    Answer,
    Rendered,
    finish_later,
    send_error,
    wrong_method_error,
)
from pypid.web.serving.index_root import ServedIndex
from pypid.web.serving.read_decisions import StoredFile

_HEX = re.compile(rb"\A[0-9a-f]+\Z")


class PackagesPath(Resource):
    """The C{/packages/...} read path; see the module."""

    isLeaf = True

    def __init__(self, indexes: Callable[[], Sequence[ServedIndex]], access: Gates) -> None:
        """@param indexes: C{indexes()}: the served indexes in order, the default first."""
        Resource.__init__(self)
        self._indexes = indexes
        self._access = access

    def render(self, request: Request) -> Rendered:
        """Identify the request (credentials sent), then find the file."""
        try:
            if request.method not in (b"GET", b"HEAD"):
                raise wrong_method_error(request, ["GET", "HEAD"])
            project, digest, filename = _named(request.postpath)  # type: ignore[arg-type]
        except HTTPError as e:
            return send_error(request, e)
        gate = self._access.gate_anywhere(request)
        if gate is None:
            answer = self._answer(request, project, digest, filename)
            return finish_later(request, answer) if isinstance(answer, Deferred) else answer
        return finish_later(request, gate.addCallback(
            lambda _: self._answer(request, project, digest, filename)))

    def _answer(self, request: Request, project: str, digest: str, filename: str) -> Answer:
        reader = self._access.reader(request)
        try:
            for served in self._indexes():
                if not reader.enters(served.name):
                    continue
                decision = served.files.decide(reader, project, filename)
                if isinstance(decision, StoredFile) and decision.record.blake2_256 == digest:
                    return served.files.deliver(request, decision)
            raise nothing_found(reader)
        except HTTPError as e:
            return send_error(request, e)


def _named(post: Sequence[bytes]) -> tuple[str, str, str]:
    """
    C{(project, digest, filename)} a path after C{/packages/} names.

    @raise NotFound: for one that names no file so.
    """
    if len(post) != 4 or [len(part) for part in post[:3]] != [2, 2, 60] \
            or not all(_HEX.match(part) for part in post[:3]):
        raise NotFound("no such file")
    try:
        filename = post[3].decode("utf-8")
        # (a file's core metadata, PEP 658, is beside it: its digest is the file's)
        project = parse_filename(filename.removesuffix(".metadata"), legacy=True).project
    except (UnicodeDecodeError, InvalidName):
        raise NotFound("no such file") from None
    return project, b"".join(post[:3]).decode("ascii"), filename
