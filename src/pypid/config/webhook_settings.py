"""
The C{[webhook:NAME]} sections: each a subscription, the URL pypid sends
the events it wants to (L{pypid.core.records.webhook_events}), signed with
its secret (in Standard Webhooks' form, kept out of every C{repr}).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import attrs

from pypid.config.values import (
    Fail,
    Keys,
    Values,
    has_control_characters,
    parse_boolean,
    parse_globs,
    parse_optional_path,
    text_of,
    whole_number,
)
from pypid.core.access.addresses import client_ip, is_public_address
from pypid.core.records.webhook_events import EVENT_TYPES, Filter, parse_secret
from pypid.core.util.units import parse_duration

#: The prefix of a subscription's section (C{[webhook:builds]}).
WEBHOOK_SECTION = "webhook:"


def parse_events(value: str) -> frozenset[str]:
    """Event types (L{EVENT_TYPES}), separated by spaces or commas; C{*} or empty: all."""
    words = value.replace(",", " ").split()
    if not words or words == ["*"]:
        return frozenset()
    unknown = [word for word in words if word not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"unknown event {unknown[0]!r}; the events are "
                         + ", ".join(EVENT_TYPES) + ", or * for all")
    return frozenset(words)


def parse_names(value: str) -> frozenset[str]:
    """Index names, separated by spaces or commas; C{*} or empty: every index."""
    words = value.replace(",", " ").split()
    return frozenset() if not words or words == ["*"] else frozenset(words)


def parse_patterns(value: str) -> tuple[str, ...]:
    """Project names or globs as C{[acl]}'s; C{*} or empty: every project."""
    if value.strip() in ("", "*"):
        return ()
    return parse_globs(value)


def parse_url(value: str) -> str:
    """An http:// or https:// URL, without credentials or a fragment."""
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname \
            or has_control_characters(value) or " " in value:
        raise ValueError("expected the receiver's https:// URL, such as "
                         "https://builds.example/hooks/pypid")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a webhook's URL carries no credentials: the receiver checks "
                         "the signature instead")
    if parts.fragment:
        raise ValueError("a webhook's URL has no #fragment")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("the port of the receiver's URL is not a number from 1 to 65535")
    return value


#: key -> (default, parser) of a C{[webhook:NAME]} section.
WEBHOOK_KEYS: Keys = {
    "url": ("", lambda value: parse_url(value) if value.strip() else ""),
    "events": ("*", parse_events),
    "indexes": ("*", parse_names),
    "projects": ("*", parse_patterns),
    "secret": ("", str),
    "secret_file": ("", parse_optional_path),
    "timeout": ("10s", parse_duration),
    "retry_for": ("1d", parse_duration),
    "retry_delay": ("5s", parse_duration),
    "max_connections": ("2", whole_number(1, 64)),
    "allow_http": ("no", parse_boolean),
    "allow_private": ("no", parse_boolean),
    "ca_bundle": ("", parse_optional_path),
}


@attrs.frozen
class WebhookConfig:
    """
    One subscription: where its events go, which it wants, and how they
    are sent (times in seconds).

    @ivar timeout: the longest one delivery may take, connecting and reading
        the answer included.
    @ivar retry_delay: the wait before the first try again, doubled at each
        failure (L{pypid.core.records.webhook_events.next_try}).
    @ivar max_connections: the most deliveries under way at once to the
        receiver's host (every subscription to it with the same value and
        CA bundle together).
    @ivar allow_private: whether the receiver may be at an address that is
        not public: otherwise the admins' test and redeliver buttons, which
        show the answer, could probe the network pypid runs in.
    """

    name: str
    url: str
    filter: Filter
    key: bytes = attrs.field(repr=False)
    timeout: float = 10.0
    retry_for: float = 86400.0
    retry_delay: float = 5.0
    max_connections: int = 2
    ca_bundle: str | None = None
    allow_private: bool = False

    @property
    def receiver(self) -> str:
        """The receiver's scheme, host and port: what L{max_connections} bounds."""
        parts = urlsplit(self.url)
        default = 443 if parts.scheme == "https" else 80
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        return f"{parts.scheme}://{host}:{parts.port or default}"


def read_secret(section: str, values: Values, fail: Fail, files: dict[str, str]) -> bytes:
    """The key of C{section}'s C{secret} or C{secret_file} (a file's through L{text_of})."""
    text, path = values[section, "secret"], values[section, "secret_file"]
    if bool(text.strip()) == (path is not None):
        fail(section, "secret", "give the subscription's secret in secret or in secret_file "
             "(one of the two)", [(section, "secret_file")])
    key = "secret"
    if path is not None:
        key = "secret_file"
        try:
            text = text_of(path, files)
        except ValueError as e:
            fail(section, key, str(e))
    try:
        return parse_secret(text)
    except ValueError as e:
        fail(section, key, str(e))


def check_webhooks(values: Values, names: Iterable[str], indexes: Iterable[str],
                   fail: Fail, files: dict[str, str]) -> Mapping[str, WebhookConfig]:
    """The C{[webhook:NAME]} sections, read and checked against the server's C{indexes}."""
    known = set(indexes)
    found: dict[str, WebhookConfig] = {}
    for name in names:
        section = WEBHOOK_SECTION + name
        url = values[section, "url"]
        if not url:
            fail(section, "url", "a webhook needs the URL of its receiver")
        if urlsplit(url).scheme == "http" and not values[section, "allow_http"]:
            fail(section, "url", "a webhook is sent over https: only (its events name your "
                 "projects and people); set allow_http = yes to send it in the clear")
        host = urlsplit(url).hostname or ""
        if client_ip(host) is not None and not is_public_address(host) \
                and not values[section, "allow_private"]:
            fail(section, "url", f"{host} is not a public address (loopback, private or "
                 "link-local); set allow_private = yes to send to a receiver there")
        wanted = values[section, "indexes"]
        unknown = sorted(wanted - known)
        if unknown:
            fail(section, "indexes", f"{unknown[0]!r} is not an index of this server (the "
                 "indexes are " + ", ".join(sorted(known)) + ")")
        found[name] = WebhookConfig(
            name=name, url=url,
            filter=Filter(values[section, "events"], wanted, values[section, "projects"]),
            key=read_secret(section, values, fail, files), timeout=values[section, "timeout"],
            retry_for=values[section, "retry_for"],
            retry_delay=values[section, "retry_delay"],
            max_connections=values[section, "max_connections"],
            ca_bundle=values[section, "ca_bundle"],
            allow_private=values[section, "allow_private"])
    return found
