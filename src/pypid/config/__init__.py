"""
The configuration file: an INI file parsed once into frozen attrs values.

Each section's module declares its keys (default and parser) and checks
them against the other keys; this module reads the file, the environment
(C{PYPID_<SECTION>_<KEY>}: over the file, under C{--set}) and the command
line, runs the parsers and checks, and assembles the L{Config}. So an
unknown key, a misspelt section or a bad value stops start-up with one line
naming the file (or the option), the section and the key, and saying what
is allowed. C{etc/pypid.ini} documents every key for people.

Named sections (C{[index:NAME]}, ...: L{NAMED_SECTIONS}) go through the same
loop under their whole name, so their errors read like any other's; the
environment cannot spell their names.

A relative path written in the file is read against the file's folder; a
default, C{--set}'s or the environment's against the working directory.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from types import MappingProxyType
from typing import Any, NoReturn, TypeVar

import attrs

from pypid.config.advisory_settings import ADVISORIES_KEYS, AdvisoriesConfig
from pypid.config.attestation_settings import (
    ATTESTATIONS_KEYS,
    AttestationsConfig,
    check_attestations,
)
from pypid.config.auth_settings import (
    AUTH_KEYS,
    FREE_SECTIONS,
    AuthConfig,
    groups_from_outside,
    read_principals,
)
from pypid.config.bucket_settings import BucketConfig
from pypid.config.errors import ConfigError, StartupError
from pypid.config.index_settings import (
    INDEX_KEYS,
    INDEX_SECTION,
    UPSTREAM_SECTION,
    IndexConfig,
    check_indexes,
    check_read_through,
)
from pypid.config.ldap_settings import LDAP_KEYS, LDAPConfig, check_ldap
from pypid.config.metrics_settings import METRICS_KEYS, MetricsConfig, check_metrics
from pypid.config.namespace_settings import NAMESPACES, check_namespaces_through, read_namespaces
from pypid.config.oidc_settings import OIDC_KEYS, PUBLISHERS, OIDCConfig, read_publishers
from pypid.config.retention_settings import RETENTION_KEYS, RetentionConfig, check_retention
from pypid.config.server_settings import SERVER_KEYS, ServerConfig
from pypid.config.sso_settings import SSO_KEYS, SSOConfig, check_sso
from pypid.config.storage_settings import STORAGE_KEYS, StorageConfig
from pypid.config.store_backends import BACKENDS
from pypid.config.tls_settings import TLS_KEYS, TLSConfig, check_tls, no_tls
from pypid.config.upstream_settings import UPSTREAM_KEYS, UpstreamConfig, read_upstream
from pypid.config.values import HELD_KEYS, PATH_PARSERS, Keys, Values, in_folder, text_of
from pypid.config.webhook_settings import (
    WEBHOOK_KEYS,
    WEBHOOK_SECTION,
    WebhookConfig,
    check_webhooks,
)
from pypid.core.access.access_rules import IndexGrants, Rule
from pypid.core.access.publishers import PublisherRule
from pypid.core.indexes.index_names import DEFAULT, NAME, NAME_FORMS
from pypid.core.indexes.namespaces import NamespaceGrants

__all__ = ["FREE_SECTIONS", "SCHEMA", "Config", "ConfigError", "StartupError", "load_config",
           "parse_override"]

_S = TypeVar("_S")


def _frozen(value: Mapping[Any, Any]) -> Mapping[Any, Any]:
    """A read-only view of C{value}."""
    return MappingProxyType(value)


@attrs.frozen
class Config:
    """The whole configuration, as the services are built from it."""

    source: str
    server: ServerConfig
    storage: StorageConfig
    #: the clouds' sections by backend name, each present (at its
    #: defaults) whichever keeps the packages
    stores: Mapping[str, BucketConfig] = attrs.field(converter=_frozen)
    auth: AuthConfig
    upstream: UpstreamConfig
    users: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen)
    tls: TLSConfig = attrs.field(factory=no_tls)
    #: C{[groups]}: group name -> frozenset of user names
    groups: Mapping[str, frozenset[str]] = attrs.field(factory=dict, converter=_frozen)
    #: C{[acl]}: L{pypid.core.access.access_rules.Rule}s in file order
    acl: tuple[Rule, ...] = ()
    metrics: MetricsConfig = attrs.field(factory=MetricsConfig)
    #: C{[ldap]}: the directory of more users and groups (none without C{url})
    ldap: LDAPConfig = attrs.field(factory=LDAPConfig)
    oidc: OIDCConfig = attrs.field(factory=OIDCConfig)
    #: C{[sso]}: single sign-on for the pages (none without C{issuer})
    sso: SSOConfig = attrs.field(factory=SSOConfig)
    #: C{[publishers]}: L{pypid.core.access.publishers.PublisherRule}s in file order
    publishers: tuple[PublisherRule, ...] = ()
    #: C{[namespaces]}: PEP 752's grants
    namespaces: NamespaceGrants = attrs.field(factory=NamespaceGrants)
    #: C{[index:NAME]} sections by name, in file order
    indexes: Mapping[str, IndexConfig] = attrs.field(factory=dict, converter=_frozen)
    #: C{[upstream:NAME]} sections by name, in file order (C{[upstream]}
    #: stays L{upstream}, C{upstream:default} to an index's C{bases})
    upstreams: Mapping[str, UpstreamConfig] = attrs.field(factory=dict, converter=_frozen)
    advisories: AdvisoriesConfig = attrs.field(factory=AdvisoriesConfig)
    attestations: AttestationsConfig = attrs.field(factory=AttestationsConfig)
    retention: RetentionConfig = attrs.field(factory=RetentionConfig)
    #: C{[webhook:NAME]} sections by name, in file order
    webhooks: Mapping[str, WebhookConfig] = attrs.field(factory=dict, converter=_frozen)
    #: every key's parsed value, by C{(section, key)}: what a reload
    #: compares (L{pypid.config.reloading}); not the free sections' names
    keys: Mapping[tuple[str, str], Any] = attrs.field(factory=dict, converter=_frozen,
                                                      eq=False, repr=False)
    #: where the keys that did not come from the file came from
    #: (C{--set pypid.listen}, C{--listen}, C{environment PYPID_AUTH_READ}),
    #: by C{(section, key)}: what a later error about the key names
    origins: Mapping[tuple[str, str], str] = attrs.field(
        factory=dict, converter=_frozen, eq=False, repr=False)
    #: the configuration file's text as read ("" for the embedded
    #: defaults), given to a machine's workers (L{pypid.machine.config_in_force})
    text: str = attrs.field(default="", eq=False, repr=False)
    #: the texts of the other files it read, by path (L{text_of}): given to
    #: a machine's workers, so that one started again reads the users and
    #: secrets as the machine took them, not a file being edited (which
    #: ended for good the tokens of the users it lacked)
    held: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen, eq=False,
                                          repr=False)

    def where(self, section: str, key: str | None = None) -> str:
        """What an error about C{[section] key} starts with: where its value came from."""
        place = f"[{section}] {key}" if key else f"[{section}]"
        origin = self.origins.get((section, key or ""), self.source)
        return f"{origin}: {place}"

    @property
    def bucket(self) -> BucketConfig | None:
        """The section of the store that keeps the packages; L{None} on local disk."""
        return self.stores.get(self.storage.backend)

    @property
    def index_grants(self) -> Mapping[str, IndexGrants]:
        """Who may read and upload to each index of an C{[index:NAME]} section."""
        return {name: IndexGrants(frozenset(index.read), frozenset(index.upload))
                for name, index in self.indexes.items()}


#: section -> key -> (default, parser), in the order the sections are read.
SCHEMA: dict[str, Keys] = {
    "pypid": SERVER_KEYS,
    "storage": STORAGE_KEYS,
    **{name: backend.keys for name, backend in BACKENDS.items()},
    "auth": AUTH_KEYS,
    "upstream": UPSTREAM_KEYS,
    "tls": TLS_KEYS,
    "metrics": METRICS_KEYS,
    "ldap": LDAP_KEYS,
    "oidc": OIDC_KEYS,
    "sso": SSO_KEYS,
    "advisories": ADVISORIES_KEYS,
    "attestations": ATTESTATIONS_KEYS,
    "retention": RETENTION_KEYS,
}

#: Sections whose keys are names chosen by the administrator.
FREE_SECTIONS = FREE_SECTIONS | {PUBLISHERS, NAMESPACES}

#: Sections that may appear several times, each named after the prefix:
#: prefix -> their keys.
NAMED_SECTIONS: dict[str, Keys] = {
    INDEX_SECTION: INDEX_KEYS,
    UPSTREAM_SECTION: UPSTREAM_KEYS,
    WEBHOOK_SECTION: WEBHOOK_KEYS,
}


def _named(section: str) -> tuple[str, str] | None:
    """C{(prefix, name)} of a named section (C{index:prod}), or L{None}."""
    prefix = next((p for p in NAMED_SECTIONS if section.startswith(p)), None)
    return None if prefix is None else (prefix, section[len(prefix):])


def parse_override(text: str) -> tuple[str, str, str]:
    """Parse a C{--set section.key=value} argument into C{(section, key, value)}."""
    name, sep, value = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not section or not key:
        raise ValueError(f"--set {text!r}: expected section.key=value")
    return section.lower(), key.strip(), value


#: What an environment variable of the configuration starts with.
ENV_PREFIX = "PYPID_"


def environment_overrides(environ: Mapping[str, str]) -> list[tuple[str, str, str, str]]:
    """
    C{(section, key, value, variable)} of the variables of C{environ} that
    name a section of L{SCHEMA} (C{PYPID_PYPID_BASE_URL} is C{[pypid]
    base_url}); an unknown key is returned, to be refused like a misspelt one.
    The free and named sections come from the file only: a variable's name
    cannot spell their keys faithfully.
    """
    found: list[tuple[str, str, str, str]] = []
    for variable, value in sorted(environ.items()):
        if not variable.startswith(ENV_PREFIX):
            continue
        section, _, key = variable[len(ENV_PREFIX):].partition("_")
        section = section.lower()
        if section in SCHEMA and key:
            found.append((section, key.lower(), value, variable))
    return found


def load_config(path: str | None, overrides: Iterable[tuple[str, str, str]] = (),
                listen: Sequence[str] = (), environ: Mapping[str, str] | None = None,
                text: str | None = None, held: Mapping[str, str] | None = None) -> Config:
    """
    Read, validate and freeze the configuration.

    @param path: the INI file, or L{None} for the embedded defaults.
    @param overrides: C{(section, key, value)} triples from C{--set}; they
        win over the file and the environment.
    @param environ: whose C{PYPID_<SECTION>_<KEY>} variables win over the
        file (L{environment_overrides}); L{None} for none.
    @param listen: endpoint strings from C{--listen}, replacing C{[pypid] listen}.
    @param text: the file's text, read before (a machine's worker is given
        the supervisor's); L{None} to read C{path}, beside which its paths
        are still read.
    @param held: with C{text}, the other files' texts as read with it
        (L{Config.held}), taken rather than read again.
    @raise ConfigError: naming the file, section and key of the first problem.
    """
    overrides = list(overrides)
    environ = environ or {}
    if path is not None and text is None:
        text = _file_text(path)
    parser = _read(path, text)
    blame = _overlay(parser, path or "<defaults>", overrides, listen, environ)
    parsed = _parse(parser, blame, overrides,
                    None if path is None else os.path.dirname(os.path.abspath(path)))
    return attrs.evolve(_assemble(parser, parsed, blame, environ, dict(held or {})),
                        text=text if path is not None and text is not None else "")


def _file_text(path: str) -> str:
    """The configuration file's text."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the configuration file: {e.strerror}")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the configuration file is not UTF-8 text")


def _read(path: str | None, text: str | None) -> configparser.ConfigParser:
    """The INI C{text} of the file at C{path} (none: the embedded defaults alone), parsed."""
    parser = configparser.ConfigParser(interpolation=None, strict=True,
                                       empty_lines_in_values=False)
    # (configparser's documented way to keep the keys' case: typeshed
    # declares it a method)
    parser.optionxform = str  # type: ignore[method-assign,assignment]
    if path is not None and text is not None:
        try:
            parser.read_string(text, source=path)
        except configparser.Error as e:
            message = " ".join(str(e).split())
            raise ConfigError(f"{path}: not a valid INI file: {message}")
    return parser


@attrs.frozen
class _Blame:
    """
    Where each value came from (the command line, the environment, or the
    file), so that an error names the place to fix. Called, it is the
    L{pypid.config.values.Fail} every section's check is given.
    """

    source: str
    file_sections: frozenset[str]
    from_environment: Mapping[tuple[str, str], str]
    from_command_line: frozenset[tuple[str, str]]
    listen: bool

    def origins(self) -> dict[tuple[str, str], str]:
        """Where each key that did not come from the file came from (L{Config.origins})."""
        found = {key: f"environment {variable}"
                 for key, variable in self.from_environment.items()}
        for section, key in self.from_command_line:
            found[section, key] = "--listen" if (section, key) == ("pypid", "listen") \
                and self.listen else f"--set {section}.{key}"
        return found

    def __call__(self, section: str, key: str | None, message: str,
                 causes: Iterable[tuple[str, str]] = ()) -> NoReturn:
        """
        Raise the error for C{[section] key}, blamed on the first of that key
        and C{causes} (the other keys involved) that came from the command
        line, else from the environment, else on the file.
        """
        where = f"[{section}] {key}" if key else f"[{section}]"
        # (a key of [users] is a person's name)
        named = f"[{section}]" if section == "users" else where
        blamed_keys = [(section, key), *causes]
        for blamed in blamed_keys:
            if blamed in self.from_command_line:
                option = "--listen" if blamed == ("pypid", "listen") and self.listen else "--set"
                raise ConfigError(f"{option} {blamed[0]}.{blamed[1]}: {where}: {message}", named)
        for blamed_section, blamed_key in blamed_keys:
            variable = self.from_environment.get((blamed_section, blamed_key or ""))
            if variable is not None:
                raise ConfigError(f"environment {variable}: {where}: {message}", named)
        raise ConfigError(f"{self.source}: {where}: {message}", named)


def _overlay(parser: configparser.ConfigParser, source: str,
             overrides: Sequence[tuple[str, str, str]], listen: Sequence[str],
             environ: Mapping[str, str]) -> _Blame:
    """Lay the environment, then C{--set}, then C{--listen} over the file in C{parser}."""
    file_sections = frozenset(parser.sections())
    from_environment: dict[tuple[str, str], str] = {}
    laid: list[tuple[str, str, str]] = []
    for section, key, value, variable in environment_overrides(environ):
        laid.append((section, key, value))
        from_environment[section, key] = variable
    laid += overrides
    if listen:
        laid.append(("pypid", "listen", "\n".join(listen)))
    for section, key, value in laid:
        if not parser.has_section(section):
            parser.add_section(section)
        parser.set(section, key, value)
    from_command_line = {(section, key) for section, key, _ in overrides}
    if listen:
        from_command_line.add(("pypid", "listen"))
    return _Blame(source, file_sections, from_environment, frozenset(from_command_line),
                  bool(listen))


@attrs.frozen
class _Parsed:
    """Every key's parsed value, the keys given, and the named sections by prefix."""

    values: Values
    given: frozenset[tuple[str, str]]
    named: Mapping[str, list[str]]


def _parse(parser: configparser.ConfigParser, fail: _Blame,
           overrides: Sequence[tuple[str, str, str]], folder: str | None = None) -> _Parsed:
    """
    Run every key's parser on its value, or its default: an unknown section
    or key, a misnamed section, or a value its parser refuses stops here. A
    relative path written in the file is read in its C{folder} (read in the
    working directory, a server started elsewhere served a new, empty index).
    """
    named: dict[str, list[str]] = {prefix: [] for prefix in NAMED_SECTIONS}
    sections: dict[str, Keys] = dict(SCHEMA)
    for section in parser.sections():
        causes = () if section in fail.file_sections else [
            (s, k) for s, k, _ in overrides if s == section]
        prefixed = _named(section)
        if prefixed is not None:
            prefix, name = prefixed
            if not NAME.match(name):
                article = "a" if prefix == WEBHOOK_SECTION else "an"
                fail(section, None, f"{name!r} cannot name {article} {prefix[:-1]}: "
                     f"{NAME_FORMS}", causes)
            if prefix == UPSTREAM_SECTION and name == DEFAULT:
                fail(section, None, "[upstream] is the default upstream (upstream:default): "
                     "configure it there", causes)
            named[prefix].append(name)
            sections[section] = NAMED_SECTIONS[prefix]
        elif section not in SCHEMA and section not in FREE_SECTIONS:
            allowed = ", ".join(f"[{s}]" for s in [*SCHEMA, *sorted(FREE_SECTIONS)])
            fail(section, None, f"unknown section; the sections are {allowed}, "
                 "[index:NAME], [upstream:NAME] and [webhook:NAME]", causes)
    values: Values = {}
    given: set[tuple[str, str]] = set()
    for section, keys in sections.items():
        present = dict(parser.items(section)) if parser.has_section(section) else {}
        for key in present:
            if key not in keys:
                fail(section, key, "unknown key; the keys are " + ", ".join(keys))
            given.add((section, key))
        for key, (default, parse) in keys.items():
            value = present.get(key, default)
            if folder is not None and key in present and parse in PATH_PARSERS and (
                    (section, key) not in fail.from_command_line
                    and (section, key) not in fail.from_environment):
                value = in_folder(value, folder)
            try:
                values[section, key] = parse(value)
            except ValueError as e:
                fail(section, key, str(e))
    return _Parsed(values, frozenset(given), named)


def _hold_named(values: Values, files: dict[str, str]) -> None:
    """Hold each file of L{HELD_KEYS} in C{files}; one unreadable now is refused by its part."""
    for (section, key), path in values.items():
        if key not in HELD_KEYS or not isinstance(path, str) \
                or (section == "gcs" and values["storage", "backend"] != "gcs"):
            continue
        with suppress(ValueError):
            text_of(path, files, strict=False)


def _assemble(parser: configparser.ConfigParser, parsed: _Parsed, fail: _Blame,
              environ: Mapping[str, str], files: dict[str, str]) -> Config:
    """Check the sections against each other and freeze the L{Config}."""
    values, given, named = parsed.values, parsed.given, parsed.named

    def items(section: str) -> list[tuple[str, str]]:
        return parser.items(section) if parser.has_section(section) else []

    def read_section(name: str, cls: Callable[..., _S]) -> _S:
        return cls(**{key: values[name, key] for key in SCHEMA[name]})

    users, groups, rules = read_principals(items, values, fail, files)
    for backend in BACKENDS.values():
        backend.check(values, fail)
    upstream = read_upstream(values, fail, "upstream", environ, files)
    upstreams = {name: read_upstream(values, fail, UPSTREAM_SECTION + name, environ, files)
                 for name in named[UPSTREAM_SECTION]}
    indexes = check_indexes(values, given, named[INDEX_SECTION], upstreams, upstream, users,
                            groups, fail)
    retention = read_section("retention", RetentionConfig)
    check_retention(retention, [(name, index) for name, index in indexes.items()
                                if not index.view and name != DEFAULT], given, fail)
    acl_keys = [key for key, _ in items("acl")]
    for rule in rules:
        if rule.index is not None and rule.index != DEFAULT and rule.index not in indexes:
            known = ", ".join([DEFAULT, *indexes])
            fail("acl", acl_keys[rule.order],
                 f"{rule.index!r} is not an index of this server (the indexes are {known})")
    # (what a base hides from some, no index based on it shows them)
    check_read_through(indexes, rules, acl_keys, groups, values["auth", "read"], fail)
    check_tls(values, fail)
    check_metrics(values, groups, fail)
    check_ldap(values, fail)
    check_sso(values, fail, files)
    check_attestations(values, fail, files)
    _hold_named(values, files)
    publishers = read_publishers(items, values, fail)
    namespaces = read_namespaces(
        items, users, groups, groups_from_outside(values),
        [DEFAULT, *(name for name, index in indexes.items()
                    if not index.view and name != DEFAULT)], fail)
    # (a namespace reserved in an index is reserved in what it reads)
    check_namespaces_through(items, namespaces,
                             {name: [str(base) for base in index.bases]
                              for name, index in indexes.items()},
                             {name for name, index in indexes.items() if index.view}, fail)
    return Config(
        source=fail.source,
        server=read_section("pypid", ServerConfig),
        storage=read_section("storage", StorageConfig),
        stores={name: read_section(name, backend.settings) for name, backend in BACKENDS.items()},
        auth=read_section("auth", AuthConfig),
        upstream=upstream,
        users=users,
        tls=read_section("tls", TLSConfig),
        groups=groups,
        acl=tuple(rules),
        metrics=read_section("metrics", MetricsConfig),
        ldap=read_section("ldap", LDAPConfig),
        oidc=read_section("oidc", OIDCConfig),
        sso=read_section("sso", SSOConfig),
        publishers=tuple(publishers),
        namespaces=namespaces,
        indexes=indexes,
        upstreams=upstreams,
        advisories=read_section("advisories", AdvisoriesConfig),
        attestations=read_section("attestations", AttestationsConfig),
        retention=retention,
        webhooks=check_webhooks(values, named[WEBHOOK_SECTION], [DEFAULT, *indexes], fail,
                                files),
        keys=dict(values),
        origins=fail.origins(),
        held=files,
    )
