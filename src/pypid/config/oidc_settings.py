"""
The C{[oidc]} and C{[publishers]} sections: trusted publishing, where a CI
job trades its OIDC ID token for a short-lived upload token
(L{pypid.auth.oidc}). C{[publishers]}' keys are project names or globs,
its values the publishers that may upload to them:
C{acme-* = issuer:github repository:acme/widgets environment:release}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs

from pypid.config.values import Fail, Items, Keys, Values, parse_optional_path
from pypid.core.access.access_rules import RuleError
from pypid.core.access.publishers import (
    PublisherRule,
    PublishingSettings,
    parse_issuers,
    parse_publishers,
)
from pypid.core.util.units import DURATION_FORMS, is_zero_duration, parse_duration

#: The free section of the publishers.
PUBLISHERS = "publishers"

#: The largest leeway allowed on a token's times: clocks that disagree more
#: are a problem to fix, not to paper over.
MAX_LEEWAY = 300.0


@attrs.frozen
class OIDCConfig:
    """The C{[oidc]} section."""

    #: the C{aud} a token must be for
    audience: str = "pypid"
    #: the issuers trusted, C{(name, url)} in file order, the URL as their
    #: tokens' C{iss} say it
    issuers: tuple[tuple[str, str], ...] = ()
    #: the CA certificates the issuers' HTTPS is checked against, or L{None}
    #: for C{[pypid] ca_bundle} (itself the system's roots when empty)
    ca_bundle: str | None = None
    #: seconds a token's C{exp}, C{nbf} and C{iat} may be off
    leeway: float = 60.0
    #: seconds an issuer's keys are kept before they are fetched again
    jwks_ttl: float = 3600.0
    #: the fewest seconds between two fetches of an issuer's keys
    jwks_min_refresh: float = 30.0
    #: seconds an issuer has to answer
    timeout: float = 10.0
    #: seconds a minted upload token lives
    lifetime: float = 900.0

    def settings(self, rules: Iterable[PublisherRule]) -> PublishingSettings:
        """The L{pypid.core.access.publishers.PublishingSettings} of this section and C{rules}."""
        return PublishingSettings(audience=self.audience, issuers=self.issuers, rules=tuple(rules),
                        leeway=self.leeway, lifetime=self.lifetime, jwks_ttl=self.jwks_ttl,
                        jwks_min_refresh=self.jwks_min_refresh, timeout=self.timeout)


def _audience(value: str) -> str:
    value = value.strip()
    if not value or any(c.isspace() for c in value) or not value.isprintable():
        raise ValueError("expected one word, the aud the tokens must name, such as pypid")
    return value


def parse_leeway(value: str) -> float:
    """How far a token's times may be off: a duration of at most L{MAX_LEEWAY}, or 0."""
    if is_zero_duration(value):
        return 0.0
    seconds = parse_duration(value)
    if seconds > MAX_LEEWAY:
        raise ValueError(f"expected at most {MAX_LEEWAY:g} seconds")
    return seconds


def _duration_at_most(most: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        seconds = parse_duration(value)
        if seconds > most:
            raise ValueError(f"{DURATION_FORMS}, at most {most:g} seconds")
        return seconds
    return parse


#: key -> (default, parser)
OIDC_KEYS: Keys = {
    "audience": ("pypid", _audience),
    "issuers": ("", parse_issuers),
    "ca_bundle": ("", parse_optional_path),
    "leeway": ("60", parse_leeway),
    "jwks_ttl": ("1h", parse_duration),
    "jwks_min_refresh": ("30", parse_duration),
    "timeout": ("10", parse_duration),
    "lifetime": ("15m", _duration_at_most(24 * 3600)),
}


def read_publishers(items: Items, values: Values, fail: Fail) -> list[PublisherRule]:
    """Read C{[publishers]}, each rule's issuer one of C{[oidc] issuers}."""
    names = [name for name, _url in values["oidc", "issuers"]]
    rules = []
    for order, (pattern, value) in enumerate(items(PUBLISHERS)):
        try:
            found = parse_publishers(pattern, value, order)
        except RuleError as e:
            fail(PUBLISHERS, pattern, str(e))
        for rule in found:
            if rule.issuer not in names:
                known = ", ".join(names) or "none"
                fail(PUBLISHERS, pattern, f"issuer:{rule.issuer}: not an issuer of [oidc] "
                     f"issuers (the issuers: {known})", [("oidc", "issuers")])
        rules += found
    return rules
