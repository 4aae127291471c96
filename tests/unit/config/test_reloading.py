"""
Issue 59: one rule for a change of configuration, for every key. The table
of L{pypid.config.reloading} is held to the parser's own list of keys (a
new key cannot be forgotten), and every key, changed at C{SIGHUP}, is
either refused whole, naming it and saying "restart", or taken.
"""

import json
import os

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.hashes import hash_password
from pypid.config import FREE_SECTIONS, NAMED_SECTIONS, SCHEMA, ConfigError, load_config
from pypid.config.attestation_settings import TRUST_ROOT_MEDIA_TYPE
from pypid.config.reloading import HOW, RELOAD, RESTART, how, needs_restart
from pypid.core.records.webhook_events import new_secret
from pypid.core.util.startup import StartupError
from pypid.daemon.container import Parts
from pypid.daemon.server import build_service
from pypid.upstream.factory import UpstreamPart
from tests.harness.fakes import FAST
from tests.harness.indexes import _ServerMixin
from tests.harness.tap import fake_pools
from tests.harness.webhooks import SECRET

#: A webhook's secret other than the tests' (L{tests.harness.webhooks.SECRET}).
OTHER_SECRET = new_secret(b"o" * 32)

#: Values tried, in order, for a key until one parses to another value
#: than the base's (and the whole file still loads).
CANDIDATES = [
    "2", "17", "yes", "no", "1h", "5m", "0", "1.5", "1GB", "10MB", "tcp:8099",
    "tcp:0:interface=127.0.0.2", "https://other.example/", "https://other.example/simple/",
    "ldap://127.0.0.1:2", "ou=other,dc=example,dc=test", "cn=svc,dc=example,dc=test",
    "(cn={user})", "cn", "(member={dn})",
    "https://login.example/realms/b", "other", "x", "eve", "group:x", "10.0.0.0/8", "local",
    "path", "redirect", "proxy", "none", "eu-west-1", "high", "warn", "hide", "everyone",
    "authenticated", "daily", "2026-01-01T00:00:00Z", "a*", "PYPID_Y", "stream", "AKIAOTHER",
    "default", "upstream:corp", "show", "hide",
    "ci https://other-token.ci.example", "openid email",
    "otheraccount", "other-container", "c3Y9MjAyNg==", "sv=2026&sig=x",
    "upload", OTHER_SECRET,
]
#: A file the trust root's check takes.
TRUST_ROOT = json.dumps({"mediaType": TRUST_ROOT_MEDIA_TYPE, "certificateAuthorities": [{}],
                         "tlogs": [{}]})

#: Keys whose parser takes one value alone: nothing to change.
ONE_VALUE = {("auth", "upload")}

#: Files a candidate may name (made in the test's folder).
FILES = ("a.pem", "b.pem", "c.pem", "trust.json", "secret", "htp", "htp2", "pw", "pw2",
         "whsec", "whsec2")


def sections(folder):
    """Base configurations between which every key of the parser is set."""
    local = {
        "pypid": {"snapshot": f"{folder}/var/index.json",
                  "listen": "https:8443:interface=127.0.0.1"},
        "storage": {"path": f"{folder}/packages"},
        "upstream": {"mode": "cache", "url": "https://upstream.example/simple/"},
        "index:prod": {},
        "index:view": {"view": "yes", "bases": "prod"},
        "upstream:corp": {"mode": "cache", "url": "https://corp.example/simple/"},
        "tls": {"certificate": f"{folder}/a.pem", "key": f"{folder}/b.pem"},
        "retention": {"keep_releases": "5"},
        # (a SAS token signs no download URL: relayed downloads take one;
        # anonymous = yes takes an emulator's endpoint)
        "azure": {"download": "stream"},
        "gcs": {"download": "stream", "endpoint_url": "http://127.0.0.1:4443"},
        "webhook:builds": {"url": "https://builds.example/hooks/pypid", "secret": SECRET},
    }
    outside = {
        "pypid": {"snapshot": f"{folder}/var/index.json", "listen": "tcp:0:interface=127.0.0.1"},
        "storage": {"backend": "s3"},
        "s3": {"bucket": "packages", "endpoint_url": "http://127.0.0.1:9000", "access_key": "k",
               "secret_key": "s", "region": "us-east-1"},
        "auth": {"htpasswd": f"{folder}/htp"},
        "ldap": {"url": "ldap://127.0.0.1:1", "user_base": "ou=people,dc=example,dc=test",
                 "group_base": "ou=groups,dc=example,dc=test",
                 "bind_dn": "cn=pypid,dc=example,dc=test", "bind_password": "pw"},
        "sso": {"issuer": "https://login.example/realms/a", "client_id": "pypid",
                "client_secret": "s"},
        "oidc": {"issuers": "ci https://token.ci.example"},
        "users": {"eve": hash_password("pw", FAST)},
        "groups": {"x": "eve"},
        "upstream": {"mode": "cache", "url": "https://upstream.example/simple/",
                     "username": "u", "password_file": f"{folder}/pw"},
        "index:prod": {},
        "upstream:corp": {"mode": "cache", "url": "https://corp.example/simple/",
                          "username": "u", "password_env": "PYPID_X"},
        "retention": {"recycle_bin": "7d"},
        "webhook:builds": {"url": "https://builds.example/hooks/pypid",
                           "secret_file": f"{folder}/whsec"},
    }
    # (the credentials' other spellings: a password is given once)
    flipped = {**outside,
               "upstream": {**outside["upstream:corp"], "url": "https://upstream.example/simple/"},
               "upstream:corp": {**outside["upstream"], "url": "https://corp.example/simple/"},
               "sso": {"issuer": "https://login.example/realms/a", "client_id": "pypid",
                       "client_secret_file": f"{folder}/secret"}}
    # (a machine of several workers, with an upstream they share)
    machine = {"pypid": {"snapshot": f"{folder}/var/index.json", "workers": "2"},
               "storage": {"path": f"{folder}/packages"},
               "upstream": {"mode": "cache", "url": "https://upstream.example/simple/"}}
    return [local, outside, flipped, machine]


def text_of(base, section=None, key=None, value=None):
    laid = {name: dict(keys) for name, keys in base.items()}
    if section is not None:
        laid.setdefault(section, {})[key] = value
    return "".join(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
                   for name, keys in laid.items())


def every_key():
    """C{(section, key)} of every key the parser knows (named sections by one name each)."""
    found = [(section, key) for section, keys in SCHEMA.items() for key in keys]
    names = {"index:": "index:prod", "upstream:": "upstream:corp", "webhook:": "webhook:builds"}
    found += [(names[prefix], key) for prefix, keys in NAMED_SECTIONS.items() for key in keys]
    return found


class TableTests(SynchronousTestCase):
    """The table knows every key of the parser, and nothing else."""

    def test_every_key(self):
        for section, keys in SCHEMA.items():
            self.assertEqual(set(HOW[section]), set(keys), section)
        for prefix, keys in NAMED_SECTIONS.items():
            self.assertEqual(set(HOW[prefix]), set(keys), prefix)
        for section in FREE_SECTIONS:
            self.assertEqual(dict(HOW[section]), {"*": RELOAD}, section)
        self.assertEqual(set(HOW), set(SCHEMA) | set(NAMED_SECTIONS) | set(FREE_SECTIONS))
        self.assertEqual(set(how(section, key) for section, key in every_key()),
                         {RELOAD, RESTART})


class ChangeTests(SynchronousTestCase):
    """Each key changed at C{SIGHUP}: refused whole naming it, or taken."""

    def setUp(self):
        self.folder = os.path.abspath(self.mktemp())
        os.makedirs(self.folder)
        for name in FILES:
            with open(os.path.join(self.folder, name), "w") as f:
                f.write(f"{name}:$2y$05$" + "a" * 53 + "\n" if name.startswith("htp")
                        else TRUST_ROOT if name == "trust.json"
                        else SECRET + "\n" if name == "whsec"
                        else OTHER_SECRET + "\n" if name == "whsec2" else "x\n")
        self.environ = {"PYPID_X": "secret-x", "PYPID_Y": "secret-y"}

    def load(self, text):
        path = os.path.join(self.folder, "pypid.ini")
        with open(path, "w") as f:
            f.write(text)
        return load_config(path, environ=self.environ)

    def changed(self, section, key):
        """
        C{(section, before, after)}: two configurations that differ in
        C{[section] key} alone (an index's key, of a hosted index or a view).
        """
        candidates = CANDIDATES + [os.path.join(self.folder, name) for name in FILES]
        for base in sections(self.folder):
            before = self.load(text_of(base))
            for name in (section, "index:view") if section == "index:prod" else (section,):
                for value in candidates:
                    try:
                        after = self.load(text_of(base, name, key, value))
                    except ConfigError:
                        continue
                    if after.keys[name, key] != before.keys.get((name, key)):
                        return name, before, after
        self.fail(f"[{section}] {key}: no value of CANDIDATES changes it; add one")

    def reload(self, before, after):
        """Reload a container built of C{before} with C{after}: what it logged."""
        said = []

        def observe(event):
            if "log_format" in event and event.get("log_namespace", "").startswith(
                    "pypid.daemon.container"):
                said.append(event)
        globalLogPublisher.addObserver(observe)
        try:
            parts = Parts([], MemoryReactorClock(), load_config=lambda: after, config=before)
            parts.reload()
        finally:
            globalLogPublisher.removeObserver(observe)
        return parts, said

    def test_every_key(self):
        """
        Every key the parser knows, changed alone: a key a restart takes
        refuses the reload, naming it and saying "restart", and the server
        keeps the configuration it had; any other is taken.
        """
        for section, key in every_key():
            if (section, key) in ONE_VALUE:
                continue
            with self.subTest(section=section, key=key):
                section, before, after = self.changed(section, key)
                parts, said = self.reload(before, after)
                texts = [event.get("error", "") for event in said]
                if how(section, key) == RESTART:
                    # (a key may carry others it decides: [s3] endpoint_url its addressing)
                    self.assertIn((section, key), needs_restart(before.keys, after.keys))
                    self.assertTrue(any(f"[{section}] {key}" in text and "restart" in text
                                        for text in texts), said)
                    self.assertIs(parts._config, before)
                else:
                    self.assertEqual(needs_restart(before.keys, after.keys), [])
                    self.assertEqual(texts, [""])
                    self.assertIs(parts._config, after)


class UpstreamReloadTests(_ServerMixin, SynchronousTestCase):
    """
    Findings 9 and 10 on a daemon of the composition root: a name made
    private at C{SIGHUP} is refused loudly (it was taken silently, and the
    name still fetched), for the default upstream as for a named one; a
    rotated password is taken, for both.
    """

    def setUp(self):
        super().setUp()
        self.password = os.path.join(self.folder, "upstream-password")
        self.write_password("first")
        self.private = ""

    def write_password(self, text):
        with open(self.password, "w") as f:
            f.write(text + "\n")

    def text(self):
        upstream = ("mode = cache\nurl = https://upstream.example/simple/\nusername = pypid\n"
                    f"password_file = {self.password}\n" + self.private)
        return self.config(f"[upstream]\n{upstream}[index:prod]\n[upstream:corp]\n"
                           + upstream.replace("upstream.example", "corp.example"))

    def logged(self, service):
        said = []

        def observe(event):
            if event.get("log_namespace", "").startswith("pypid.daemon.container"):
                said.append(event.get("error") or event.get("took") or "")
        globalLogPublisher.addObserver(observe)
        try:
            service.reload()
        finally:
            globalLogPublisher.removeObserver(observe)
        return said

    def clients(self, service):
        return [part.source.client for _, part in service._parts
                if isinstance(part, UpstreamPart)]

    def test_private_refused(self):
        service, _ = self.served(self.text)
        self.private = "private = acme-*\n"
        said = self.logged(service)
        self.assertEqual(len(said), 1, said)
        self.assertIn("[upstream] private", said[0])
        self.assertIn("[upstream:corp] private", said[0])
        self.assertIn("restart", said[0])

    def test_password_rotated(self):
        service, _ = self.served(self.text)
        clients = self.clients(service)
        self.assertEqual(len(clients), 2)
        self.assertEqual({c.credentials.secret for c in clients}, {"first"})
        self.write_password("second")
        said = self.logged(service)
        self.assertIn("credentials", said[0])
        self.assertEqual({c.credentials.secret for c in clients}, {"second"})


def state_of(service):
    """
    What the parts took of the configuration, as the server acts on it: the
    rules, users, directory, tokens, sessions' timeouts, who from outside
    it lets in, trusted publishing and single sign-on, who may scrape, the
    advisories' settings, the indexes' views, rules and grants, the hosted
    pages' budget and the upstreams' credentials and hosts.
    """
    part = service.getServiceNamed("access")
    access = part.access
    identification = access._identification
    verifier = identification.verifier
    directory = verifier._directory
    web = service.getServiceNamed("web")
    registry = web._indexes._registry if web._indexes is not None else None
    names = dict(service._parts)
    feed = names.get("advisories")
    index = service.getServiceNamed("index").index
    return {
        "model": access.model,
        "users": dict(verifier._users),
        "directory": directory._settings if directory is not None else None,
        "tokens": access.tokens.path,
        "sessions": (part.sessions.book.idle, part.sessions.book.lifetime),
        "outside": identification.outside,
        "publishing": part.publishing.settings,
        "sso": (part.sso.config, part.sso.secret),
        "metrics": web.web.app.metrics._policy,
        "advisories": feed._settings if feed is not None else None,
        "views": {name: (registry.orders[name], view.filters)
                  for name, view in registry.composed.items()} if registry is not None else None,
        "advisory rules": {name: policy.rules for name, policy in registry.policies.items()}
        if registry is not None else None,
        "upload rules": {name: stack.uploads.current
                         for name, stack in registry.stacks.items()}
        if registry is not None else None,
        "page budget": index._rendered.max_bytes,
        "upstreams": [(p.source.name, p.source.client.credentials,
                       p.source.client.file_hosts.entries)
                      for _, p in service._parts if isinstance(p, UpstreamPart)],
        "webhooks": service.getServiceNamed("webhooks").subscriptions,
    }


class ReloadEqualsRestartTests(ChangeTests):
    """
    Every key a reload takes leaves the server as a restart with the same
    file does (L{state_of}); a file a restart refuses, a reload refuses too.
    """

    def built(self, config):
        return build_service(config, MemoryReactorClock(), pools=fake_pools(),
                             load_config=lambda: config)

    def test_every_key(self):
        for section, key in every_key():
            if (section, key) in ONE_VALUE or how(section, key) != RELOAD:
                continue
            with self.subTest(section=section, key=key):
                section, before, after = self.changed(section, key)
                try:
                    running = self.built(before)
                except StartupError:
                    continue
                try:
                    restarted = self.built(after)
                except StartupError:
                    restarted = None
                then = state_of(running)
                running._load_config = lambda after=after: after
                refused = []

                def observe(event, refused=refused):
                    if "Not reloading" in event.get("log_format", ""):
                        refused.append(event["error"])
                globalLogPublisher.addObserver(observe)
                try:
                    running.reload()
                finally:
                    globalLogPublisher.removeObserver(observe)
                if restarted is None or refused:
                    # (refused whole, saying why: nothing of it taken; a
                    # part may refuse a value, a hosted index made a view)
                    self.assertEqual(state_of(running), then, f"[{section}] {key}")
                    self.assertTrue(refused, f"[{section}] {key}: a restart refuses it")
                else:
                    self.assertEqual(state_of(running), state_of(restarted),
                                     f"[{section}] {key}")
