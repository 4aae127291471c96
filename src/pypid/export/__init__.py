"""
The static export: the whole index written as files (C{pypid-export}), so
that nginx, a bucket or a CDN serves it without the daemon.

  - L{plan}: pure; what an export writes and removes, and the manifest that
    makes the next one incremental.
  - L{source}: reading the server's storage without disturbing a daemon
    that runs on it.
  - L{target}: where it is written, a folder or a bucket, behind one interface.
  - L{exporter}: one export, in the order that keeps a served tree consistent.

The command line is L{pypid.cli.export}.
"""

from __future__ import annotations
