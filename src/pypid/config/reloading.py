"""
What C{SIGHUP} does with each key of the configuration: one rule for
every key, so that a reload and a restart never mean two things.

Every key the parser knows is in L{HOW} (a test holds the table to the
parser's own list), as L{RELOAD} or L{RESTART}:

  - L{RELOAD}: the parts of the daemon take it in full at C{SIGHUP}, so
    the server is then as a restart with the same file leaves it;
  - L{RESTART}: the server builds something of it once, as it starts (a
    listener, a storage, an upstream's cache): a reload whose file changes
    it is refused whole, naming the key and saying "restart", never taken
    in part with the key quietly left as it was.

Files a key names follow the table by their names; their contents are
read with the configuration (L{pypid.config.Config.held}) and taken at a
reload as each part takes them: the C{[tls]} files, the htpasswd file, an
upstream's secret files, C{[ldap] ca_bundle} and the webhooks' bundles at
every reload; the token file only when its path changed (the book in
memory is what the daemon wrote); the C{[oidc]} and C{[sso]} bundles only
when their settings changed; the files of L{START_FILES} only at a start
(L{held_as_started}).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from pypid.config.store_backends import BACKENDS
from pypid.config.values import HELD_KEYS
from pypid.core.util.startup import StartupError

if TYPE_CHECKING:
    from pypid.config import Config

#: A key the parts take in full at C{SIGHUP}.
RELOAD = "reload"
#: A key only a restart takes: a reload that changes it is refused.
RESTART = "restart"


def _all(how: str, keys: str) -> dict[str, str]:
    return dict.fromkeys(keys.split(), how)


#: An upstream's keys: who pypid says it is (the credentials, read again at
#: each reload) and where its files may come from are taken; the rest builds
#: its cache and client at start-up. C{private} is among those: a name made
#: private must not seem protected while the cache still holds it.
_UPSTREAM = {
    **_all(RESTART, "mode url ttl offline private merge min_age min_age_exempt timeout "
           "max_page_size max_page_files page_cache_size max_file_size max_downloads "
           "download_space max_misses_per_address fetch_deadline max_cache_size "
           "keep_precached keep_removed"),
    **_all(RELOAD, "hosts username password_file password_env token_file token_env"),
}

#: section -> key -> L{RELOAD} or L{RESTART}; the named sections by their
#: prefix (C{index:}, C{upstream:}); the free sections (their keys are
#: names) under the key C{*}.
HOW: Mapping[str, Mapping[str, str]] = {
    "pypid": {
        **_all(RESTART, "listen base_url snapshot snapshot_interval max_upload_size threads "
               "access_log header_timeout send_timeout description_budget min_upload_rate "
               "max_connections_per_address ca_bundle trusted_proxies workers worker_timeout"),
        **_all(RELOAD, "page_cache_size advisories advisory_severity advisory_waive "
               "allow_tag_mismatch"),
    },
    "storage": _all(RESTART, "backend path min_free"),
    # (every cloud's keys: a store's client and its storages are built at
    # the start, and a bucket moved under a running server is another index)
    **{name: dict.fromkeys(backend.keys, RESTART) for name, backend in BACKENDS.items()},
    "auth": {
        **_all(RELOAD, "read upload admins tokens htpasswd session_idle session_lifetime"),
        **_all(RESTART, "throttle_ipv6_prefix sessions"),
    },
    "upstream": _UPSTREAM,
    # (the files are read again at each reload; which files, at a restart)
    "tls": _all(RESTART, "certificate key chain allow_expired"),
    "metrics": _all(RELOAD, "allow group"),
    "ldap": _all(RELOAD, "url starttls bind_dn bind_password user_base user_filter "
                 "user_name_attribute group_base group_filter group_name_attribute "
                 "ca_bundle timeout cache_ttl"),
    "oidc": _all(RELOAD, "audience issuers ca_bundle leeway jwks_ttl jwks_min_refresh "
                 "timeout lifetime"),
    "sso": _all(RELOAD, "issuer client_id client_secret client_secret_file label scopes "
                "user_claim groups_claim allow ca_bundle timeout leeway"),
    "advisories": _all(RELOAD, "path url refresh max_size"),
    "attestations": _all(RESTART, "trust_root require"),
    "retention": _all(RESTART, "recycle_bin keep_releases remove_prereleases_after "
                      "keep_downloaded protect schedule"),
    "index:": {
        **_all(RELOAD, "view bases read upload min_age as_of include exclude prereleases "
               "yanked advisories advisory_severity advisory_waive allow_tag_mismatch"),
        **_all(RESTART, "recycle_bin keep_releases remove_prereleases_after keep_downloaded "
               "protect"),
    },
    "upstream:": _UPSTREAM,
    # (the subscriptions in force are the deliveries': an event sent
    # after the reload goes by the new ones, those waiting included)
    "webhook:": _all(RELOAD, "url events indexes projects secret secret_file timeout "
                     "retry_for retry_delay max_connections allow_http allow_private ca_bundle"),
    "users": {"*": RELOAD},
    "groups": {"*": RELOAD},
    "acl": {"*": RELOAD},
    "publishers": {"*": RELOAD},
    "namespaces": {"*": RELOAD},
}


def how(section: str, key: str) -> str:
    """What C{SIGHUP} does with C{[section] key} (C{index:prod} by its prefix)."""
    if ":" in section:
        section = section.partition(":")[0] + ":"
    keys = HOW[section]
    return keys["*"] if "*" in keys else keys[key]


def needs_restart(before: Mapping[tuple[str, str], object],
                  after: Mapping[tuple[str, str], object]) -> list[tuple[str, str]]:
    """
    The C{(section, key)} of L{RESTART} keys whose parsed values differ
    between two readings (a section only one has is the business of
    L{pypid.state.index_reload}).
    """
    return [(section, key) for (section, key), value in after.items()
            if (section, key) in before and before[section, key] != value
            and how(section, key) == RESTART]


def refuse_restart_keys(before: Config, after: Config) -> None:
    """
    A key only a restart takes, changed, refuses the whole reload, in one
    process and in a machine's check (L{pypid.daemon.reload_check}): a
    L{StartupError} naming the keys (also as its C{named}).
    """
    changed = needs_restart(before.keys, after.keys)
    if changed:
        keys = ", ".join(f"[{section}] {key}" for section, key in changed)
        raise StartupError(f"{after.source}: {keys}: a change of "
                           + ("this key" if len(changed) == 1 else "these keys")
                           + " is taken only at a restart; restart the server to apply it",
                           keys)


#: The keys whose files only a start reads: the clients made of them (the
#: upstream's, the storage's, the verifier of attestations) are made once.
START_FILES = frozenset({("pypid", "ca_bundle"), ("gcs", "credentials_file"),
                         ("attestations", "trust_root")})


def held_as_started(before: Config, after: Config) -> Config:
    """
    C{after} (read at a reload), holding the files of L{START_FILES} as
    C{before} held them where the key names the same file and no key a reload
    takes names it too: a worker started again uses the file as the start read it.
    """
    taken = {value for (section, key), value in after.keys.items()
             if isinstance(value, str) and (section, key) not in START_FILES
             and key in HELD_KEYS and how(section, key) == RELOAD}
    kept = {}
    for section_key in START_FILES:
        path = after.keys.get(section_key)
        if isinstance(path, str) and path == before.keys.get(section_key) \
                and path in before.held and path not in taken \
                and after.held.get(path) != before.held[path]:
            kept[path] = before.held[path]
    return attrs.evolve(after, held={**after.held, **kept}) if kept else after
