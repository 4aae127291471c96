"""
The C{[sso]} section: single sign-on for the pages through an OpenID
Connect provider, beside the login form (L{pypid.auth.sso}). Without
C{issuer} there is none, and the other keys must stay unset; with it, the
client secret is best given by a file or the environment
(C{PYPID_SSO_CLIENT_SECRET}) rather than the configuration file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import attrs

from pypid.config.oidc_settings import parse_leeway
from pypid.config.values import (
    Fail,
    Keys,
    Values,
    has_control_characters,
    parse_optional_path,
    text_of,
)
from pypid.core.access.credential_syntax import USER_NAME
from pypid.core.access.sso_flow import ClaimMapping
from pypid.core.util.units import parse_duration


@attrs.frozen
class SSOConfig:
    """The C{[sso]} section (see C{docs/configuration.rst})."""

    #: the provider, as its ID tokens' C{iss} say it; L{None}: no single sign-on
    issuer: str | None = None
    client_id: str = ""
    client_secret: str = attrs.field(default="", repr=False)
    client_secret_file: str | None = None
    #: what the login page's button says: "Log in with <label>"
    label: str = "single sign-on"
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    user_claim: str = "preferred_username"
    groups_claim: str = "groups"
    #: who may log in: C{("*",)}, or user names and C{group:NAME}s
    allow: tuple[str, ...] = ("*",)
    ca_bundle: str | None = None
    timeout: float = 10.0
    leeway: float = 60.0

    @property
    def mapping(self) -> ClaimMapping:
        """How the ID token's claims name a user and groups."""
        return ClaimMapping(self.user_claim, self.groups_claim, self.allow)


def _issuer(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment \
            or parts.username or parts.password:
        raise ValueError(f"{value!r}: expected the provider's https:// URL with no query, "
                         "exactly as its ID tokens' iss claim says it, such as "
                         "https://login.corp.example/realms/acme")
    return value


def _word(what: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        value = value.strip()
        if any(c.isspace() for c in value) or has_control_characters(value) or len(value) > 255:
            raise ValueError(f"expected {what}, one word")
        return value
    return parse


def _label(value: str) -> str:
    value = " ".join(value.split())
    if not value or has_control_characters(value) or len(value) > 60:
        raise ValueError("expected a short name for the provider (at most 60 characters), "
                         "shown as 'Log in with <label>'")
    return value


def _scopes(value: str) -> tuple[str, ...]:
    scopes = tuple(dict.fromkeys(value.split()))
    if "openid" not in scopes:
        raise ValueError("expected the scopes asked of the provider, openid among them, such "
                         "as 'openid profile email groups'")
    for scope in scopes:
        if not scope.isascii() or not scope.isprintable() or '"' in scope or "\\" in scope:
            raise ValueError(f"{scope!r} is not a scope")
    return scopes


def _claim(optional: bool) -> Callable[[str], str]:
    def parse(value: str) -> str:
        value = value.strip()
        if not value and optional:
            return ""
        if not value or not value.isascii() or not value.isprintable() or " " in value:
            raise ValueError("expected a claim's name, such as "
                             + ("groups (or empty for none)" if optional
                                else "preferred_username, email or sub"))
        return value
    return parse


def _allow(value: str) -> tuple[str, ...]:
    entries = tuple(value.split())
    if not entries:
        raise ValueError("expected * (everyone the provider authenticates), or user names "
                         "and group:NAME")
    for entry in entries:
        if entry != "*" and not USER_NAME.match(entry.removeprefix("group:")):
            raise ValueError(f"{entry!r}: expected *, a user name or group:NAME")
    return entries


#: key -> (default, parser)
SSO_KEYS: Keys = {
    "issuer": ("", _issuer),
    "client_id": ("", _word("the client id pypid is registered with at the provider")),
    "client_secret": ("", lambda value: value.strip()),
    "client_secret_file": ("", parse_optional_path),
    "label": ("single sign-on", _label),
    "scopes": ("openid profile email", _scopes),
    "user_claim": ("preferred_username", _claim(False)),
    "groups_claim": ("groups", _claim(True)),
    "allow": ("*", _allow),
    "ca_bundle": ("", parse_optional_path),
    "timeout": ("10", parse_duration),
    "leeway": ("60", parse_leeway),
}


def check_sso(values: Values, fail: Fail, files: dict[str, str]) -> None:
    """
    Check C{[sso]} as a whole: without C{issuer}, nothing else is set;
    with it, C{client_id} and exactly one client secret are, a file's read
    into C{files} (L{text_of}).
    """
    if values["sso", "issuer"] is None:
        for key, (default, parse) in SSO_KEYS.items():
            if key != "issuer" and values["sso", key] != parse(default):
                fail("sso", key, "set, but [sso] issuer is empty: set issuer to the OpenID "
                     "provider (such as https://login.corp.example/realms/acme), or leave "
                     "[sso] out", [("sso", "issuer")])
        return
    if not values["sso", "client_id"]:
        fail("sso", "client_id", "required with [sso] issuer: the client id pypid is "
             "registered with at the provider", [("sso", "issuer")])
    secret, secret_file = values["sso", "client_secret"], values["sso", "client_secret_file"]
    if bool(secret) == (secret_file is not None):
        fail("sso", "client_secret_file",
             "give the client secret once: in client_secret_file, or in client_secret "
             "(best through the environment, PYPID_SSO_CLIENT_SECRET)",
             [("sso", "client_secret")])
    if secret_file is not None:
        try:
            text = text_of(secret_file, files)
        except ValueError as e:
            fail("sso", "client_secret_file", str(e))
        if not text.strip():
            fail("sso", "client_secret_file", f"{secret_file} is empty")


def sso_secret(sso: SSOConfig, files: Mapping[str, str]) -> str:
    """
    The client secret: C{client_secret_file}'s text as read (in C{files}), else C{client_secret}.
    """
    if sso.issuer is None or sso.client_secret_file is None:
        return sso.client_secret
    return files[sso.client_secret_file].strip()
