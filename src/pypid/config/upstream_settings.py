"""
The C{[upstream]} section, and every C{[upstream:NAME]} (an upstream an
index's C{bases} name), of the same keys: the index pypid falls back on for
projects it does not host, the hosts its files may come from, the project
patterns that keep hosted names safe from it, and the credentials it may
need, read at load so that a missing one stops start-up, not the first fetch.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from pypid.config.values import (
    Fail,
    Keys,
    Values,
    choice,
    has_control_characters,
    is_loopback_host,
    parse_boolean,
    parse_optional_path,
    text_of,
    whole_number,
)
from pypid.core.util.units import DURATION_FORMS, is_zero_duration, parse_duration, parse_size


@attrs.frozen
class UpstreamConfig:
    """
    The C{[upstream]} section (C{mode} C{"none"} when absent). Durations are
    seconds, sizes bytes. Project patterns are L{fnmatch} globs normalized like
    project names (PEP 503), matched with C{fnmatch.fnmatchcase}.
    """

    #: C{"none"}, C{"redirect"} or C{"cache"}.
    mode: str
    #: The upstream's simple index root, with exactly one trailing slash;
    #: L{None} only when C{mode} is C{"none"}.
    url: str | None
    ttl: float
    offline: bool
    private: tuple[str, ...]
    merge: tuple[str, ...]
    #: 0.0 when off.
    min_age: float
    min_age_exempt: tuple[str, ...]
    #: Lowercase C{host} or C{host:port} entries files may be fetched from,
    #: and C{*} for any other host at a public address
    #: (L{pypid.upstream.fetch.FileHosts}); C{url}'s comes first. An entry
    #: without a port stands for the default port of the file URL's scheme.
    hosts: tuple[str, ...]
    timeout: float
    max_page_size: int
    #: The most entries one page may list (files and refused entries alike).
    max_page_files: int = 100_000
    #: The memory budget of the cached pages (an estimate, bytes).
    page_cache_size: int = 256 << 20
    #: The largest upstream file fetched, whatever its page claims.
    max_file_size: int = 1 << 30
    #: File downloads at once; more wait their turn.
    max_downloads: int = 4
    #: Bytes reserved by the downloads under way, all together.
    download_space: int = 2 << 30
    #: Requests that must ask the upstream, per client address and minute.
    max_misses_per_address: int = 600
    #: The longest one fetch (a page, a file, its metadata) may take in all.
    fetch_deadline: float = 600.0
    #: What pypid identifies itself with to the upstream, or L{None}.
    credentials: UpstreamCredentials | None = None
    #: The most bytes of files the cache keeps (the least recently
    #: downloaded evicted past it); 0: no cap.
    max_cache_size: int = 0
    #: Whether the files pre-caching asked for are never evicted.
    keep_precached: bool = True
    #: Whether a kept file the upstream no longer lists is still served at
    #: its URL (off, it is withheld once the page is refreshed).
    keep_removed: bool = False


@attrs.frozen
class UpstreamCredentials:
    """How pypid tells an upstream who asks: a user name and password, or a token alone."""

    #: The user name of Basic authentication; L{None} for a token.
    username: str | None
    #: The password, or the token.
    secret: str = attrs.field(repr=False)


#: The entry of C{hosts} for any host at a public address (here: the
#: configuration is a lower layer than L{pypid.upstream.fetch.FileHosts}).
ANY_PUBLIC = "*"

_HOST_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_HOST_FORMS = ("expected a host name of letters, digits, '.' and '-', or an IPv4 address, "
               "with an optional :port from 1 to 65535")


def _host_port(text: str) -> str:
    """Check one C{host} or C{host:port} (a host name or an IPv4 address); lowercased."""
    text = text.lower()
    host, colon, port = text.partition(":")
    if colon and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(_HOST_FORMS)
    labels = host.split(".")
    if len(host) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError(_HOST_FORMS)
    if labels[-1].isdigit():
        # A name whose last part is a number is read as an IPv4 address.
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(_HOST_FORMS) from None
    return f"{host}:{int(port)}" if colon else host


def _hosts(value: str) -> tuple[str, ...]:
    hosts = []
    for entry in value.split():
        host = entry
        if entry != ANY_PUBLIC:
            if "@" in entry or "/" in entry:
                raise ValueError("expected host names (with an optional :port), not URLs; "
                                 "user names and passwords are not allowed")
            try:
                host = _host_port(entry)
            except ValueError as e:
                raise ValueError(f"{entry!r}: {e}") from None
        if host not in hosts:
            hosts.append(host)
    return tuple(hosts)


_UPSTREAM_URL_FORMS = ("expected the upstream's simple index root: an http:// or https:// URL "
                       "with a host and no query or fragment, such as "
                       "https://upstream.example/simple/")


def _upstream_url(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    if has_control_characters(value) or any(c.isspace() for c in value):
        raise ValueError(_UPSTREAM_URL_FORMS)
    parts = urlsplit(value)
    if "@" in parts.netloc:
        # The value holds a secret: never repeat it.
        raise ValueError("a user name or password in the URL is not allowed: it would "
                         "show in logs and error messages; give the URL without it")
    if (parts.scheme not in ("http", "https") or not parts.netloc or "?" in value
            or "#" in value):
        raise ValueError(_UPSTREAM_URL_FORMS)
    try:
        netloc = _host_port(parts.netloc)
    except ValueError as e:
        raise ValueError(f"{_UPSTREAM_URL_FORMS}; its host: {e}") from None
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}/"


_PATTERN_CHARACTERS = re.compile(r"^[A-Za-z0-9._*?\[\]-]+$")
_PATTERN = re.compile(r"^(?:[a-z0-9*?-]|\[[^\[\]]+\])+$")


def _patterns(value: str) -> tuple[str, ...]:
    """Project names or globs, normalized like names (C{Corp_*} is C{corp-*}), without repeats."""
    patterns = []
    for entry in value.split():
        if not _PATTERN_CHARACTERS.match(entry):
            raise ValueError(f"{entry!r}: expected project names or patterns of letters, "
                             "digits, '-', '_', '.' and the glob characters '*', '?' and "
                             "'[...]', separated by spaces or lines")
        pattern = re.sub(r"[-_.]+", "-", entry).lower()
        if not _PATTERN.match(pattern):
            raise ValueError(f"{entry!r}: every '[' must be closed by a ']', "
                             "with at least one character between them")
        if not re.search(r"[a-z0-9*?[]", pattern):
            raise ValueError(f"{entry!r}: not a project name or pattern: only '-', '_' "
                             "and '.', which are nothing once normalized")
        if pattern not in patterns:
            patterns.append(pattern)
    return tuple(patterns)


def parse_min_age(value: str) -> float:
    """The age of files below which they are not listed; 0.0 (or empty): off."""
    if not value.strip() or is_zero_duration(value):
        return 0.0
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(f"{DURATION_FORMS}; or 0 (or empty) for off") from None


def _username(value: str) -> str | None:
    """A user name for the upstream's Basic authentication, or L{None} when empty."""
    value = value.strip()
    if not value:
        return None
    if has_control_characters(value) or ":" in value or len(value) > 256:
        raise ValueError("expected a user name of at most 256 characters, without ':' or "
                         "control characters; or empty for none")
    return value


_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


def _variable(value: str) -> str | None:
    """The name of an environment variable, or L{None} when empty."""
    value = value.strip()
    if not value:
        return None
    if not _VARIABLE.match(value):
        raise ValueError("expected the name of an environment variable (letters, digits "
                         "and '_', not starting with a digit); or empty for none")
    return value


def _cache_cap(value: str) -> int:
    """The cache's cap in bytes (a size); C{0} or empty: none."""
    if value.strip() in ("", "0"):
        return 0
    return parse_size(value)


#: key -> (default, parser)
UPSTREAM_KEYS: Keys = {
    "mode": ("none", choice("none", "redirect", "cache")),
    "url": ("", _upstream_url),
    "ttl": ("10m", parse_duration),
    "offline": ("no", parse_boolean),
    "private": ("", _patterns),
    "merge": ("", _patterns),
    "min_age": ("0", parse_min_age),
    "min_age_exempt": ("", _patterns),
    "hosts": (ANY_PUBLIC, _hosts),
    "timeout": ("10s", parse_duration),
    "max_page_size": ("20M", parse_size),
    "max_page_files": ("100000", whole_number(1, 10_000_000)),
    "page_cache_size": ("256M", parse_size),
    "max_file_size": ("1G", parse_size),
    "max_downloads": ("4", whole_number(1, 1000)),
    "download_space": ("2G", parse_size),
    "max_misses_per_address": ("600", whole_number(1, 1_000_000)),
    "fetch_deadline": ("10m", parse_duration),
    "max_cache_size": ("0", _cache_cap),
    "keep_precached": ("yes", parse_boolean),
    "keep_removed": ("no", parse_boolean),
    "username": ("", _username),
    "password_file": ("", parse_optional_path),
    "password_env": ("", _variable),
    "token_file": ("", parse_optional_path),
    "token_env": ("", _variable),
}

#: The keys of L{UPSTREAM_KEYS} that L{read_credentials} turns into an
#: L{UpstreamCredentials}, rather than fields of L{UpstreamConfig}.
CREDENTIAL_KEYS = frozenset({"username", "password_file", "password_env", "token_file",
                             "token_env"})


def check_upstream(values: Values, fail: Fail, section: str = "upstream") -> None:
    """Check the keys of C{[section]}, and put the host of C{url} first in its C{hosts}."""
    def upstream(key: str) -> Any:
        return values[section, key]

    mode = upstream("mode")
    url = upstream("url")
    if section != "upstream" and mode == "none":
        fail(section, "mode", "a named upstream is one pypid reads: set mode = redirect or "
             "cache (mode = none is for [upstream] alone), or remove the section")
    if mode != "none" and url is None:
        fail(section, "url", f"required for mode = {mode}: set it to the upstream's simple "
             "index root, such as https://upstream.example/simple/, or set mode = none",
             [(section, "mode")])

    merged = set(upstream("merge"))
    for pattern in upstream("private"):
        if pattern in merged:
            fail(section, "merge", f"{pattern!r} is also in [{section}] private: a private "
                 "name never shows upstream files, so it cannot be merged; remove it from "
                 "one of the two", [(section, "private")])

    if upstream("max_file_size") > upstream("download_space"):
        fail(section, "download_space", f"smaller than [{section}] max_file_size: a file "
             "of that size could never be fetched; raise it or lower max_file_size",
             [(section, "max_file_size")])
    cap = upstream("max_cache_size")
    if cap and cap < upstream("max_file_size"):
        fail(section, "max_cache_size", f"smaller than [{section}] max_file_size: one file "
             "could take more than the whole cache; raise it, or lower max_file_size",
             [(section, "max_file_size")])
    if upstream("fetch_deadline") < upstream("timeout"):
        fail(section, "fetch_deadline", f"shorter than [{section}] timeout: every fetch "
             "would end before the upstream had to answer; make it longer",
             [(section, "timeout")])

    if url is not None:
        own = urlsplit(url).netloc
        values[section, "hosts"] = (own, *(h for h in upstream("hosts") if h != own))


def _secret_key(values: Values, fail: Fail, section: str, kind: str) -> str | None:
    """
    The key giving C{[section]}'s C{kind} (password, token): C{KIND_file}, C{KIND_env} or none.
    """
    path, variable = values[section, f"{kind}_file"], values[section, f"{kind}_env"]
    if path is not None and variable is not None:
        fail(section, f"{kind}_env", f"give the {kind} once: {kind}_file or {kind}_env, "
             "not both", [(section, f"{kind}_file")])
    if path is not None:
        return f"{kind}_file"
    return f"{kind}_env" if variable is not None else None


def _read_secret(values: Values, fail: Fail, section: str, key: str,
                 environ: Mapping[str, str], files: dict[str, str]) -> str:
    """Read the secret C{[section] key} gives; messages never show the secret."""
    kind, _, source = key.partition("_")
    if source == "file":
        path = values[section, key]
        try:
            secret = text_of(path, files)
        except ValueError as e:
            fail(section, key, str(e))
        where = path
    else:
        variable = values[section, key]
        if variable not in environ:
            fail(section, key, f"the environment has no variable {variable}")
        secret = environ[variable]
        where = f"the variable {variable}"
    # (one line; a final line break, as editors leave it, is not part of it)
    secret = secret.removesuffix("\n").removesuffix("\r")
    if not secret:
        fail(section, key, f"{where} is empty: it must hold the {kind}")
    if has_control_characters(secret):
        fail(section, key, f"{where} holds a line break or another control character: "
             f"it must hold the {kind} alone, on one line")
    return secret


def read_credentials(values: Values, fail: Fail, section: str, environ: Mapping[str, str],
                     files: dict[str, str]) -> UpstreamCredentials | None:
    """
    Read the credentials of C{[section]} (a C{username} with a password, or a
    token, each from a file or an environment variable), or L{None}. They never
    cross the network in clear: an C{http://} C{url} must be this machine's.
    """
    username = values[section, "username"]
    password = _secret_key(values, fail, section, "password")
    token = _secret_key(values, fail, section, "token")
    if token is not None and (username is not None or password is not None):
        fail(section, token, "give a username and password, or a token, not both",
             [(section, "username")])
    if username is not None and password is None:
        fail(section, "username", "needs a password: set password_file or password_env "
             "(or remove username and give a token)")
    if password is not None and username is None:
        fail(section, password, "a password needs a username: set username")
    key = password or token
    if key is None:
        return None
    url = values[section, "url"]
    if url is not None and url.startswith("http://") \
            and not is_loopback_host(urlsplit(url).hostname or ""):
        fail(section, "url", f"is plain http:// and [{section}] {key} gives credentials: "
             "they would cross the network in clear; use https:// (plain http:// is "
             "allowed only to this machine)", [(section, key)])
    secret = _read_secret(values, fail, section, key, environ, files)
    return UpstreamCredentials(username, secret)


def read_upstream(values: Values, fail: Fail, section: str, environ: Mapping[str, str],
                  files: dict[str, str]) -> UpstreamConfig:
    """Check C{[section]} and return its L{UpstreamConfig}, its credentials read."""
    check_upstream(values, fail, section)
    credentials = read_credentials(values, fail, section, environ, files)
    return UpstreamConfig(
        **{key: values[section, key] for key in UPSTREAM_KEYS if key not in CREDENTIAL_KEYS},
        credentials=credentials)
