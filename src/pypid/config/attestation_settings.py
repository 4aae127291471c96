"""
The C{[attestations]} section (PEP 740): the Sigstore trust root uploads'
attestations are verified against, and the projects that must come with
them. The trust root is a file, never fetched (empty: the one the installed
C{sigstore} package ships, L{pypid.auth.attestations.default_trust_root}).
"""

from __future__ import annotations

import json

import attrs

from pypid.config.values import Fail, Keys, Values, normalized_globs, parse_optional_path, text_of

#: The media type a trust root file declares.
TRUST_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json"


def check_trust_root(path: str, files: dict[str, str] | None = None) -> None:
    """
    Check that C{path} is a Sigstore trust root file (a cheap read, no
    Sigstore import: the full parse comes with the verifier); C{files} as
    L{text_of} takes them.
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
    """C{[attestations] trust_root}: a trust root, held in C{files} as the verifier reads it."""
    path = values["attestations", "trust_root"]
    if path is not None:
        try:
            check_trust_root(path, files)
        except ValueError as e:
            fail("attestations", "trust_root", str(e))


@attrs.frozen
class AttestationsConfig:
    """The C{[attestations]} section."""

    #: the Sigstore trust root file; L{None}: the one sigstore ships
    trust_root: str | None = None
    #: the projects (normalized names or globs) that refuse unsigned uploads
    require: tuple[str, ...] = ()


#: key -> (default, parser) of C{[attestations]}.
ATTESTATIONS_KEYS: Keys = {
    "trust_root": ("", parse_optional_path),
    "require": ("", normalized_globs),
}
