"""
The C{[attestations]} section (PEP 740): the Sigstore trust root
uploads' attestations are verified against, and the projects that must
come with them.

The trust root is a file, never fetched: pypid verifies with no network
but its storage's. Empty, it is the public-good instance's root as the
installed C{sigstore} package ships it (L{pypid.auth.attestations.default_trust_root});
an operator of a private Sigstore, or one who keeps the root current
between upgrades, names another file. A file that cannot be read, or is no
trust root, stops start-up with one line naming the key.
"""

from __future__ import annotations

import json
import re

import attrs

from pypid.config.values import Fail, Keys, Values, parse_optional_path, text_of
from pypid.core.access.access_rules import RuleError, normalize_pattern

#: The media type a trust root file declares.
TRUST_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json"


def check_trust_root(path: str, files: dict[str, str] | None = None) -> None:
    """
    Check that C{path} is a Sigstore trust root file: JSON of its media
    type, naming Fulcio CAs and transparency logs (a cheap read, no
    Sigstore import: the full parse comes with the verifier).

    @param files: the texts read with the configuration (L{text_of}):
        the file's is taken from there, or read and added.
    @raise ValueError: saying why not.
    """
    text = text_of(path, {} if files is None else files)
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError(f"{path} is not JSON (expected a Sigstore trusted_root.json)") from None
    media = data.get("mediaType") if isinstance(data, dict) else None
    if not isinstance(media, str) or not media.startswith(TRUST_ROOT_MEDIA_TYPE):
        raise ValueError(f"{path} is not a Sigstore trust root (its mediaType is not "
                         f"{TRUST_ROOT_MEDIA_TYPE})")
    if not data.get("certificateAuthorities") or not data.get("tlogs"):
        raise ValueError(f"{path} names no certificate authority or transparency log")


def check_attestations(values: Values, fail: Fail, files: dict[str, str]) -> None:
    """
    C{[attestations] trust_root}: a file that can be read and is a trust
    root, held with the configuration (C{files}) as the verifier will
    read it.
    """
    path = values["attestations", "trust_root"]
    if path is not None:
        try:
            check_trust_root(path, files)
        except ValueError as e:
            fail("attestations", "trust_root", str(e))


def parse_require(value: str) -> tuple[str, ...]:
    """
    The projects (names or globs, separated by spaces, commas or lines)
    whose uploads must come with attestations, normalized.
    """
    patterns: list[str] = []
    for word in (w for w in re.split(r"[\s,]+", value) if w):
        try:
            pattern = normalize_pattern(word)
        except RuleError as e:
            raise ValueError(str(e)) from None
        if pattern not in patterns:
            patterns.append(pattern)
    return tuple(patterns)


@attrs.frozen
class AttestationsConfig:
    """The C{[attestations]} section."""

    #: the Sigstore trust root file; L{None}: the public-good one the
    #: installed sigstore package ships
    trust_root: str | None = None
    #: the projects (normalized names or globs) that refuse unsigned uploads
    require: tuple[str, ...] = ()


#: key -> (default, parser) of C{[attestations]}.
ATTESTATIONS_KEYS: Keys = {
    "trust_root": ("", parse_optional_path),
    "require": ("", parse_require),
}
