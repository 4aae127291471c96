"""
The C{[advisories]} section (where the server's security advisories come
from: L{AdvisoriesConfig}), and an index's rule keys, in C{[pypid]} for the
default index (and as every named index's default) and in C{[index:NAME]}:
its advisory settings (L{AdvisoryKeys}, which make the
L{pypid.core.security.advisories.AdvisoryRules} it acts by) and its upload
rules (L{UploadKeys}).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import attrs

from pypid.config.values import (
    Keys,
    choice,
    has_control_characters,
    is_loopback_host,
    parse_optional_path,
)
from pypid.core.access.upload_rules import UploadRules, parse_projects
from pypid.core.security.advisories import (
    MODES,
    SEVERITIES,
    AdvisoryRules,
    InvalidRules,
    severity_word,
)
from pypid.core.util.units import is_zero_duration, parse_duration, parse_size


def parse_severity(value: str) -> str | None:
    """The lowest severity acted on (C{moderate} read as C{medium}); empty: every advisory."""
    if not value.strip():
        return None
    level = severity_word(value)
    if level is None:
        raise ValueError(f"expected one of: {', '.join(SEVERITIES)}; or empty for every "
                         "advisory, those of unknown severity too")
    return level


def parse_waive(value: str) -> tuple[str, ...]:
    """The waivers: C{project==version} releases and advisory identifiers."""
    entries = tuple(e for e in re.split(r"[\s,]+", value) if e)
    try:
        AdvisoryRules.parse("off", "", entries)
    except InvalidRules as e:
        raise ValueError(str(e).removeprefix("advisory_waive: ")) from None
    return entries


#: key -> (default, parser), in C{[pypid]} and in C{[index:NAME]} (where
#: a key not given takes C{[pypid]}'s value).
ADVISORY_RULE_KEYS: Keys = {
    "advisories": ("off", choice(*MODES)),
    "advisory_severity": ("", parse_severity),
    "advisory_waive": ("", parse_waive),
}

#: The same of the upload rules.
UPLOAD_RULE_KEYS: Keys = {
    "allow_tag_mismatch": ("", parse_projects),
}


@attrs.frozen
class AdvisoryKeys:
    """
    The three keys as C{[pypid]} (L{pypid.config.server_settings.ServerConfig})
    and C{[index:NAME]} (L{pypid.config.index_settings.IndexConfig}) both
    hold them.
    """

    #: C{off}, C{warn}, C{hide} or C{deny}: the key C{advisories}, named
    #: apart from the feed, the records and the decisions in the code
    advisory_mode: str = attrs.field(default="off", kw_only=True, alias="advisories")
    #: the lowest severity acted on; L{None}: every advisory
    advisory_severity: str | None = attrs.field(default=None, kw_only=True)
    #: releases (C{project==version}) and advisory identifiers let through
    advisory_waive: tuple[str, ...] = attrs.field(default=(), kw_only=True)

    @property
    def advisory_rules(self) -> AdvisoryRules:
        """What the index does about advisories."""
        return AdvisoryRules.parse(self.advisory_mode, self.advisory_severity or "",
                                   self.advisory_waive)


@attrs.frozen(slots=False)
class UploadKeys:
    """
    The upload keys as C{[pypid]} and C{[index:NAME]} hold them (not slotted, as RetentionKeys).
    """

    #: the projects (names and globs) whose wheels' C{WHEEL} Tag lines
    #: may differ from their filename's tags
    allow_tag_mismatch: tuple[str, ...] = attrs.field(default=(), kw_only=True)

    @property
    def upload_rules(self) -> UploadRules:
        """What the index lets through of its uploads."""
        return UploadRules(self.allow_tag_mismatch)


# -- [advisories]: where the advisories come from ------------------------------


def parse_advisory_url(value: str) -> str | None:
    """The URL of a zip of OSV records: HTTPS, or plain HTTP to loopback only; L{None} if empty."""
    value = value.strip()
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment \
            or has_control_characters(value) or not value.isascii():
        raise ValueError("expected an https:// URL of a zip of OSV records, such as "
                         "https://advisories.example/pypi/all.zip")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError("advisories are fetched over https:// (plain http only from a "
                         "loopback address)")
    return value


def parse_refresh(value: str) -> float:
    """How often the advisories are read again: a duration of at least a minute, or 0 for never."""
    if is_zero_duration(value):
        return 0.0
    seconds = parse_duration(value)
    if seconds and seconds < 60:
        raise ValueError("expected a duration of at least 1m, or 0 to read them only at "
                         "start-up and at SIGHUP")
    return seconds


@attrs.frozen
class AdvisoriesConfig:
    """The C{[advisories]} section: where the server's security advisories come from."""

    #: a folder or a zip of OSV records (L{None}: none)
    path: str | None = None
    #: an archive fetched over HTTPS, kept beside the snapshot (L{None}: none)
    url: str | None = None
    #: seconds between reads (0: at start-up and SIGHUP only)
    refresh: float = 6 * 3600.0
    #: the most bytes an archive may have
    max_size: int = 512 << 20

    @property
    def configured(self) -> bool:
        """Whether advisories come from anywhere."""
        return self.path is not None or self.url is not None


#: key -> (default, parser) of C{[advisories]}.
ADVISORIES_KEYS: Keys = {
    "path": ("", parse_optional_path),
    "url": ("", parse_advisory_url),
    "refresh": ("6h", parse_refresh),
    "max_size": ("512M", parse_size),
}
