"""
The static export: the whole index written as files (C{pypid-export}), so
that nginx, a bucket or a CDN serves it without the daemon.

  - L{plan}: pure; what an export writes and removes, and the manifest that
    makes the next one incremental.
  - L{outputs}, L{people_files}: what each path holds.
  - L{target}: where it is written, a folder or a bucket, behind one interface.
  - L{exporter}: one export, in the order that keeps a served tree consistent.

The storage is read by L{pypid.storage.base.reading}; the command line is
L{pypid.cli.export}.
"""

from __future__ import annotations
