"""
The C{[storage]} section: which backend keeps the packages, and the local
folder (the packages with C{local}, temporary files with a bucket).
"""

from __future__ import annotations

import attrs

from pypid.config.store_backends import BACKENDS
from pypid.config.values import Keys, choice, parse_path
from pypid.core.util.units import parse_size


@attrs.frozen
class StorageConfig:
    """The C{[storage]} section."""

    backend: str
    path: str
    #: the bytes the local folder's file system must keep free, or
    #: C{/health} says the storage is full (0: never)
    min_free: int = 1 << 30
    #: where this storage is below the store's root (C{""}: the root, which
    #: keeps the one journal; L{pypid.storage.factory.below}); not a key
    within: str = ""


def parse_min_free(value: str) -> int:
    """A size such as C{1G} or C{500M}, or C{0} for no minimum."""
    if value.strip() == "0":
        return 0
    try:
        return parse_size(value)
    except ValueError:
        raise ValueError("expected a size such as 1G, 500M or 524288 (bytes), or 0 "
                         "for no minimum")


#: key -> (default, parser)
STORAGE_KEYS: Keys = {
    "backend": ("local", choice("local", *BACKENDS)),
    "path": ("var/packages", parse_path),
    "min_free": ("1G", parse_min_free),
}
