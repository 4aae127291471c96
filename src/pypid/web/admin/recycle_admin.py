"""
C{GET /api/recycle-bin?index=} (admins): the files of a hosted index's
recycle bin, the first to be purged first, with when each was deleted and
will be purged; what C{pypid-admin bin} prints. A file is restored with
C{POST /api/files/<filename>/restore}
(L{pypid.web.changes.publish.Publish.restore_file}).
"""

from __future__ import annotations

from typing import Protocol

import attrs
from klein import Klein
from twisted.web.iweb import IRequest

from pypid.core.dists.model import format_upload_time
from pypid.core.formats.admin_answers import BinListing, BinnedFile
from pypid.core.util.http_errors import NotFound
from pypid.state.recycle_bin import RecycleBin
from pypid.web.identity.gates import Gates
from pypid.web.server.routes import answer_errors, form_field, send_json

#: What C{GET /api/recycle-bin} answers without credentials.
BIN_LOGIN = "authentication is required to read the recycle bin"


class BinnedIndexes(Protocol):
    """What the answer reads of the server's indexes (L{pypid.state.indexes.IndexRegistry})."""

    def bin(self, name: str) -> RecycleBin | None:
        """The recycle bin of the hosted index C{name}, or L{None} (no such index)."""


@attrs.define(slots=False)
class RecycleAdmin:
    """C{GET /api/recycle-bin}."""

    _access: Gates
    _indexes: BinnedIndexes

    app = Klein()
    answer_errors(app)

    @app.route("/api/recycle-bin", methods=["GET", "HEAD"])
    async def listed(self, request: IRequest) -> bytes:
        """An index's files in the recycle bin (see the module docstring)."""
        await self._access.admin(request, BIN_LOGIN)
        return send_json(request, self.listing(form_field(request, "index") or "default"))

    def listing(self, name: str) -> BinListing:
        """The recycle bin of the hosted index C{name}, its first purged first; 404 without."""
        bin = self._indexes.bin(name)
        if bin is None:
            raise NotFound(f"index: no hosted index {name!r}")
        files: list[BinnedFile] = [
            {"filename": record.filename, "project": record.project, "version": record.version,
             "size": record.size, "sha256": record.sha256,
             "deleted": format_upload_time(record.binned or 0.0),
             "purged": format_upload_time((record.binned or 0.0) + bin.keep_for)}
            for record in bin.index.binned()]
        return {"index": name, "keep_for": bin.keep_for, "files": files}
