"""
Moving packages in and out of a pypid storage: the portable bundle that
C{pypid-admin export} writes and C{pypid-admin import} reads, and the
readers of what the servers people leave behind hold (a devpi export, a
pypiserver folder, a pypicloud bucket or folder).

  - L{pypid.bundle.manifest}: the bundle's layout and its manifest (pure);
  - L{pypid.bundle.archive}: writing and reading a bundle as a folder or a
    tar file, safely against hostile archives (blocking);
  - L{pypid.bundle.pack}: a storage into a bundle, beside a running daemon;
  - L{pypid.bundle.ingest}: files from any source into a storage, each
    checked and inspected as an upload is, with a report;
  - L{pypid.bundle.sources}: what a bundle, devpi, pypiserver and pypicloud
    offer, as the files L{pypid.bundle.ingest} takes.
"""

from __future__ import annotations
