"""
Describing bytes the in-memory backend holds without a record (put into
its C{objects} directly, as a file is copied into a folder by hand): the
pure half of its scan and of its C{describe}, as
L{pypid.storage.folder_imports} is the local backend's and
L{pypid.storage.s3.imports} the bucket's. Apart from
L{pypid.storage.memory.MemoryStorage} because none of it touches the
storage's state: bytes in, a record and what is kept beside it out.
"""

from __future__ import annotations

import hashlib
import io

from pypid.core.dists.distribution import Inspected, inspect
from pypid.core.dists.metadata import InvalidDistribution
from pypid.core.dists.names import InvalidName
from pypid.core.dists.readme import render_description


def _digests(data: bytes) -> tuple[int, str, str, str]:
    """C{(size, sha256, blake2_256, md5)} of C{data}, as L{inspect} takes them."""
    return (len(data), hashlib.sha256(data).hexdigest(),
            hashlib.blake2b(data, digest_size=32).hexdigest(),
            hashlib.md5(data, usedforsecurity=False).hexdigest())


def inspect_bytes(data: bytes, filename: str, key: str, now: float,
                  details: bool = True) -> Inspected | str:
    """
    What the bytes under C{key} are, found at C{now} (their upload time),
    with their details rendered when C{details}; or why they are not served.
    """
    try:
        return inspect(io.BytesIO(data), filename, key, now, _digests(data), legacy=True,
                       details=render_description if details else None)
    except (InvalidName, InvalidDistribution) as e:
        return str(e)

