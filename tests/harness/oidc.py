"""
Trusted publishing in memory (it was L{tests.unit.auth.test_oidc}'s): L{tests.harness.oidc_issuer}'s
issuers on a L{Clock}, the publishers' rules (C{RULES}), and
L{MintSiteMixin}, the real site over in-memory storage with trusted
publishing, the login throttle and an audit log in memory.
"""

import json
import os

from treq.testing import StubTreq
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock

from pypid.auth.hashes import hash_password
from pypid.auth.oidc import TrustedPublishing
from pypid.auth.oidc_errors import TokenRefused
from pypid.auth.policy import AccessModel
from pypid.auth.throttle import LoginThrottle
from pypid.auth.verifier import PasswordVerifier
from pypid.core.access.access_rules import parse_rule
from pypid.core.access.publishers import PublishingSettings, parse_publishers
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.core.records.audit_chain import decode
from pypid.storage.folder.journal_files import MemoryJournal
from pypid.web.app import build_web
from pypid.web.identity.gates import Gates
from pypid.web.server.audit_trail import AuditTrail
from pypid.web.web_inputs import SiteServices, SiteSettings
from tests.harness.distributions import make_wheel
from tests.harness.fakes import (
    FAST,
    multipart_body,
    one_index,
    run_in_pool_now,
    run_now,
    site_treq,
    twine_fields,
)
from tests.harness.memory_storage import MemoryStorage
from tests.harness.oidc_issuer import IssuerResource, Issuers

NOW = 1_800_000_000
BASE = "https://ci.example"
GITHUB = BASE + "/github"
GITLAB = BASE + "/gitlab"

#: The rules most tests use: GitHub's release workflow of acme/widgets in
#: its release environment publishes acme-*; GitLab's acme/tools on main
#: publishes tool.
RULES = (parse_publishers(
    "acme-*", "issuer:github repository:acme/widgets "
    "job_workflow_ref:acme/widgets/.github/workflows/release.yml@refs/heads/main "
    "environment:release")
    + parse_publishers("Tool", "issuer:gitlab project_path:acme/tools ref:main", 1))


class _IssuerMixin:
    """A L{TrustedPublishing} over in-memory issuers, on a L{Clock}."""

    settings = PublishingSettings(issuers=(("github", GITHUB), ("gitlab", GITLAB)), rules=tuple(RULES),
                        leeway=60, jwks_min_refresh=30, timeout=10)

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(NOW)
        self.issuers = Issuers(BASE, now=self.clock.seconds)
        self.github = self.issuers.add("github", "rsa")
        self.gitlab = self.issuers.add("gitlab", "ec")
        self.resource = IssuerResource(self.issuers)
        self.stub = StubTreq(self.resource)
        self.publishing = TrustedPublishing(self.settings, self.stub, self.clock)

    def verify(self, text):
        """The L{pypid.auth.oidc.Verified} of C{text}, or the exception it was refused with."""
        d = ensureDeferred(self.publishing.verify(text))
        self.stub.flush()
        results = []
        d.addBoth(results.append)
        self.assertEqual(len(results), 1, "the verification did not finish")
        result = results[0]
        return result.value if hasattr(result, "value") else result

    def refusal(self, text, kind=TokenRefused):
        """The message C{text} is refused with (by L{verify}, then by minting)."""
        result = self.verify(text)
        if not isinstance(result, Exception):
            try:
                self.publishing.mint(result)
            except Exception as e:
                result = e
        self.assertIsInstance(result, kind)
        return str(result)


WHEEL_NAME, WHEEL = make_wheel("acme-widgets", "1.0")
OTHER_NAME, OTHER = make_wheel("other", "1.0")


class MintSiteMixin(_IssuerMixin):
    """
    The real site over in-memory storage, with trusted publishing, the
    login throttle and an audit log in memory.
    """

    def setUp(self):
        _IssuerMixin.setUp(self)
        folder = os.path.abspath(self.mktemp())
        self.storage = MemoryStorage(os.path.join(folder, "spool"), self.clock)
        self.successResultOf(self.storage.prepare())
        self.index = Index(file_url_for(None))
        verifier = PasswordVerifier({"alice": hash_password("pw", FAST)}, self.clock, None,
                                    run_in_pool=run_in_pool_now)
        # acme-* is reserved for alice by [acl]: the publisher's rule is its own grant.
        model = AccessModel(read="authenticated", rules=(parse_rule("acme-*", "user:alice rw"),
                                                         parse_rule("other", "user:alice rw")))
        self.audit_log = MemoryJournal(self.clock)
        audit = AuditTrail(self.audit_log, self.clock)
        self.login_throttle = LoginThrottle(self.clock)
        self.access = Gates(model, verifier, throttle=self.login_throttle, audit=audit,
                             publishers=self.publishing.tokens)
        self.web = build_web(one_index(self.index, self.storage, self.clock), self.access, run_now,
                             self.clock,
                             SiteSettings(max_upload_size=10 << 20),
                             SiteServices(audit=audit, publishing=self.publishing,
                                          **self.site_services()))
        self.client = site_treq(self.web.site)

    def site_services(self):
        """More of the site's services (a worker's hub, say), by name."""
        return {}

    def request(self, method, path, **kwargs):
        d = self.client.request(method, "http://pypi.test" + path, **kwargs)
        self.client.flush()
        self.stub.flush()
        self.client.flush()
        response = self.successResultOf(d)
        body = self.client.content(response)
        self.client.flush()
        return response, self.successResultOf(body)

    def mint(self, token):
        return self.request("POST", "/api/oidc/mint-token",
                            data=json.dumps({"token": token}).encode(),
                            headers={"Content-Type": "application/json"})

    def upload(self, password, name=WHEEL_NAME, data=WHEEL, project="acme-widgets"):
        ctype, body = multipart_body(twine_fields(project, "1.0", data), [("content", name, data)])
        return self.request("POST", "/legacy/", data=body, headers={"Content-Type": ctype},
                            auth=("__token__", password))

    def entries(self):
        """The audit entries written (those queued are written first)."""
        self.clock.advance(1)
        lines = b"".join(self.audit_log.files[name] for name in sorted(self.audit_log.files))
        return [decode(line) for line in lines.splitlines()]
