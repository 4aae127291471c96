"""
The C{[storage]} section: which backend keeps the packages, and the local
folder (the packages themselves with C{local}, temporary files with C{s3}).
"""

from __future__ import annotations

import attrs

from pypid.config.values import Keys, choice, parse_path


@attrs.frozen
class StorageConfig:
    """The C{[storage]} section."""

    backend: str
    path: str


#: key -> (default, parser)
STORAGE_KEYS: Keys = {
    "backend": ("local", choice("local", "s3")),
    "path": ("var/packages", parse_path),
}
