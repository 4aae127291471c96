"""
The configuration file: an INI file parsed once into frozen attrs values.

Every section and key is declared here, with its default and its parser, so
that an unknown key, a misspelt section or a bad value stops start-up with a
single line naming the file, the section and the key, and saying what is
allowed.  C{etc/pypid.ini} documents every key for people.

Relative paths are made absolute against the directory the server is started
in, so C{etc/pypid.ini} works from a checkout with C{./var/}.
"""

import configparser
import os
import re
from collections.abc import Mapping
from types import MappingProxyType
from urllib.parse import urlsplit

import attrs

from pypid.auth import check_hash_format


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line for a person."""


@attrs.frozen
class ServerConfig:
    """The C{[pypid]} section."""

    listen: tuple[str, ...]
    base_url: str | None
    snapshot: str
    snapshot_interval: float
    max_upload_size: int
    threads: int
    access_log: str | None


@attrs.frozen
class StorageConfig:
    """The C{[storage]} section."""

    backend: str
    path: str


@attrs.frozen
class AuthConfig:
    """The C{[auth]} section: who may read and who may upload."""

    read: str
    upload: str


@attrs.frozen
class Config:
    """The whole configuration, as the services are built from it."""

    source: str
    server: ServerConfig
    storage: StorageConfig
    auth: AuthConfig
    users: Mapping[str, str] = attrs.field(factory=dict, converter=MappingProxyType)


_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(value):
    """
    Parse a size such as C{100M}, C{1G}, C{512KiB} or C{1048576} (binary units).

    @raise ValueError: with the allowed forms.
    """
    match = _SIZE.match(value)
    if not match:
        raise ValueError("expected a size such as 100M, 1G or 524288 (bytes)")
    number, unit, _ = match.groups()
    size = int(number) * _SIZE_FACTORS[unit.lower()]
    if size <= 0:
        raise ValueError("expected a size greater than 0")
    return size


def _listen(value):
    lines = tuple(line.strip() for line in value.splitlines() if line.strip())
    if not lines:
        raise ValueError("expected one or more Twisted endpoint strings, one per line, "
                         "such as tcp:8080:interface=127.0.0.1")
    return lines


def _base_url(value):
    value = value.strip()
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError("expected an http:// or https:// URL with no query, "
                         "such as https://pypi.internal.example/")
    return value.rstrip("/") + "/"


def _path(value):
    value = value.strip()
    if not value:
        raise ValueError("expected a path")
    return os.path.abspath(os.path.expanduser(value))


def _optional_path(value):
    value = value.strip()
    return _path(value) if value else None


def _positive_number(value):
    try:
        number = float(value)
    except ValueError:
        number = -1
    if not number > 0:
        raise ValueError("expected a number of seconds greater than 0")
    return number


def _threads(value):
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= 64:
        raise ValueError("expected a whole number from 1 to 64")
    return number


def _choice(*allowed):
    def parse(value):
        value = value.strip().lower()
        if value not in allowed:
            raise ValueError("expected one of: " + ", ".join(allowed))
        return value
    return parse


# section -> key -> (default, parser).  A default of None means "no default".
SCHEMA = {
    "pypid": {
        "listen": ("tcp:8080:interface=127.0.0.1", _listen),
        "base_url": ("", _base_url),
        "snapshot": ("var/index.json", _path),
        "snapshot_interval": ("30", _positive_number),
        "max_upload_size": ("100M", parse_size),
        "threads": ("4", _threads),
        "access_log": ("", _optional_path),
    },
    "storage": {
        "backend": ("local", _choice("local")),
        "path": ("var/packages", _path),
    },
    "auth": {
        "read": ("everyone", _choice("everyone", "authenticated")),
        "upload": ("authenticated", _choice("authenticated")),
    },
}

#: Sections whose keys are names chosen by the administrator.
FREE_SECTIONS = {"users"}


def _user(name, value):
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$", name):
        raise ValueError("a user name is 1 to 64 letters, digits, '.', '_', '@' or '-'")
    check_hash_format(value.strip())
    return value.strip()


def parse_override(text):
    """
    Parse a C{--set section.key=value} argument into C{(section, key, value)}.

    @raise ValueError: when it is not of that form.
    """
    name, sep, value = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not section or not key:
        raise ValueError(f"--set {text!r}: expected section.key=value")
    return section.lower(), key.strip(), value


def load_config(path, overrides=(), listen=()):
    """
    Read, validate and freeze the configuration.

    @param path: the INI file, or L{None} for the embedded defaults.
    @param overrides: C{(section, key, value)} triples from C{--set}; they
        win over the file.
    @param listen: endpoint strings from C{--listen}; when given they replace
        C{[pypid] listen}.
    @rtype: L{Config}
    @raise ConfigError: naming the file, section and key of the first problem.
    """
    source = path or "<defaults>"
    parser = configparser.ConfigParser(interpolation=None, strict=True,
                                       empty_lines_in_values=False)
    parser.optionxform = str
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                parser.read_file(f, source=path)
        except OSError as e:
            raise ConfigError(f"{path}: cannot read the configuration file: {e.strerror}")
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: the configuration file is not UTF-8 text")
        except configparser.Error as e:
            message = " ".join(str(e).split())
            raise ConfigError(f"{path}: not a valid INI file: {message}")
    for section, key, value in overrides:
        if not parser.has_section(section):
            parser.add_section(section)
        parser.set(section, key, value)
    if listen:
        if not parser.has_section("pypid"):
            parser.add_section("pypid")
        parser.set("pypid", "listen", "\n".join(listen))

    from_command_line = {(section, key) for section, key, _ in overrides}
    if listen:
        from_command_line.add(("pypid", "listen"))

    def fail(section, key, message):
        where = f"[{section}] {key}" if key else f"[{section}]"
        if (section, key) in from_command_line:
            option = "--listen" if (section, key) == ("pypid", "listen") and listen else "--set"
            raise ConfigError(f"{option} {section}.{key}: {where}: {message}")
        raise ConfigError(f"{source}: {where}: {message}")

    for section in parser.sections():
        if section not in SCHEMA and section not in FREE_SECTIONS:
            allowed = ", ".join(f"[{s}]" for s in [*SCHEMA, *sorted(FREE_SECTIONS)])
            fail(section, None, f"unknown section; the sections are {allowed}")
    values = {}
    for section, keys in SCHEMA.items():
        present = dict(parser.items(section)) if parser.has_section(section) else {}
        for key in present:
            if key not in keys:
                fail(section, key, "unknown key; the keys are " + ", ".join(keys))
        for key, (default, parse) in keys.items():
            try:
                values[section, key] = parse(present.get(key, default))
            except ValueError as e:
                fail(section, key, str(e))
    users = {}
    if parser.has_section("users"):
        for name, value in parser.items("users"):
            try:
                users[name] = _user(name, value)
            except ValueError as e:
                fail("users", name, str(e))

    def section(name, cls):
        return cls(**{key: values[name, key] for key in SCHEMA[name]})

    return Config(
        source=source,
        server=section("pypid", ServerConfig),
        storage=section("storage", StorageConfig),
        auth=section("auth", AuthConfig),
        users=users,
    )
