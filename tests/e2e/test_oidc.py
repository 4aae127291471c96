"""
End-to-end tests of trusted publishing: the real daemon trusts two local
OIDC issuers (L{tests.harness.oidc_issuer.HTTPSIssuers}, loopback HTTPS with a test
CA, tokens shaped like GitHub Actions' and GitLab CI's); a CI job's ID
token is exchanged at C{POST /api/oidc/mint-token}, the token it gets
uploads with real twine, and real pip installs what it uploaded. Every
forgery and mistake is refused with its message, and key rotation at the
issuer is followed.
"""

import atexit
import json
import os
import time

from tests.harness.distributions import make_wheel
from tests.harness.e2e import (
    PASSWORD,
    USER,
    DaemonTestCase,
    files_by_name,
    free_port,
    http,
    installed,
    upload,
)
from tests.harness.oidc_issuer import HTTPSIssuers

RELEASE_WORKFLOW = "acme/widgets/.github/workflows/release.yml@refs/heads/main"
GITHUB_PUBLISHER = "publisher:github:acme/widgets"

_served = []


def serving():
    """The tests' issuers, started once for the module (stopped at exit)."""
    if not _served:
        served = HTTPSIssuers(os.path.abspath("oidc-issuer"))
        served.issuers.add("github", "rsa")
        served.issuers.add("gitlab", "ec")
        #: an issuer nobody serves: a port that was free a moment ago
        served.down_url = f"https://127.0.0.1:{free_port()}/down"
        atexit.register(served.stop)
        _served.append(served)
    return _served[0]


class TrustedPublishingTests(DaemonTestCase):
    """A daemon with C{[oidc]} and C{[publishers]}, and the tests' issuers."""

    @property
    def settings(self):
        served = serving()
        issuers = served.issuers
        return {
            "auth.admins": USER,
            "oidc.issuers": (f"github {issuers['github'].url}\n"
                             f"gitlab {issuers['gitlab'].url}\n"
                             f"down {served.down_url}"),
            "oidc.ca_bundle": served.ca_path,
            "oidc.jwks_min_refresh": "0.5",
            "oidc.timeout": "5",
            "publishers.acme-*": (f"issuer:github repository:acme/widgets "
                                  f"job_workflow_ref:{RELEASE_WORKFLOW} environment:release"),
            "publishers.tool": "issuer:gitlab project_path:acme/tools ref:main",
        }

    @property
    def github(self):
        return serving().issuers["github"]

    @property
    def gitlab(self):
        return serving().issuers["gitlab"]

    def mint(self, token):
        """POST an ID token to the exchange; the L{tests.harness.e2e.Response}."""
        return http("POST", self.daemon.url + "api/oidc/mint-token",
                    {"Content-Type": "application/json"}, json.dumps({"token": token}).encode())

    def minted(self, token):
        """The exchange's JSON answer for a token that must be accepted."""
        response = self.mint(token)
        self.assertEqual(response.status, 200, response.body)
        return response.json()

    def audit(self, **query):
        """The audit entries (as an admin)."""
        search = "&".join(f"{k}={v}" for k, v in query.items())
        response = http("GET", f"{self.daemon.url}api/audit?{search}", auth=(USER, PASSWORD))
        self.assertEqual(response.status, 200, response.body)
        return response.json()["entries"]

    def test_publish_with_twine_install_with_pip(self):
        """
        A GitHub Actions-like token of the release workflow mints a token;
        twine uploads with it as __token__; pip installs; the audit log names
        the publisher for the exchange and the upload.
        """
        answer = self.minted(self.github.github_token())
        self.assertEqual(answer["projects"], ["acme-*"])
        self.assertTrue(answer["expires"].endswith("Z"))
        wheel = make_wheel("acme-widgets", "1.0")
        self.clients.twine_upload(self.daemon, self.dist_dir(wheel), user="__token__",
                                  password=answer["token"])
        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, self.daemon.index_url, "acme-widgets")
        self.assertEqual(installed(target), {"acme-widgets": "1.0"})
        token_id = answer["token"].split("-")[1]
        issued = [e for e in self.audit(event="token-issued") if e.get("target") == token_id]
        self.assertEqual([(e["user"], e["outcome"]) for e in issued], [(GITHUB_PUBLISHER, "ok")])
        uploads = self.audit(event="upload", project="acme-widgets")
        self.assertEqual([(e["user"], e["token"]) for e in uploads],
                         [(GITHUB_PUBLISHER, token_id)])
        self.assertNotIn(answer["token"], self.daemon.log_text())

    def test_gitlab_token_scope(self):
        """A GitLab CI-like token (ES256) publishes tool, and nothing else."""
        answer = self.minted(self.gitlab.gitlab_token(project_path="acme/tools"))
        self.assertEqual(answer["projects"], ["tool"])
        auth = ("__token__", answer["token"])
        self.assertEqual(upload(self.daemon, *make_wheel("tool", "1.0"), auth=auth).status, 200)
        refused = upload(self.daemon, *make_wheel("acme-tools", "1.0"), auth=auth)
        self.assertEqual(refused.status, 403, refused.body)
        # It publishes; it never yanks or deletes what was published.
        filename = make_wheel("tool", "1.0")[0]
        for method, path in (("POST", f"api/files/{filename}/yank"),
                             ("DELETE", f"api/files/{filename}"),
                             ("DELETE", "api/projects/tool/1.0")):
            answer = http(method, self.daemon.url + path, auth=auth)
            self.assertIn(answer.status, (403, 404), (method, path, answer.body))
        self.assertFalse(files_by_name(self.daemon, "tool")[filename].get("yanked", False))

    def test_refusals(self):
        """Each mistake and forgery is refused with its status and message, and audited."""
        github = self.github
        claims = github.github_claims
        now = int(time.time())
        replayed = github.github_token()
        self.minted(replayed)
        cases = [
            ("wrong audience", github.github_token(audience="https://pypi.example"), 401,
             "the token is meant for another audience (https://pypi.example); this index "
             "accepts 'pypid'"),
            ("expired", github.github_token(exp=now - 600), 401, "the token expired at "),
            ("future nbf", github.github_token(nbf=now + 600), 401,
             "the token is not valid before "),
            ("wrong repository", github.github_token(repository="evil/widgets"), 403,
             "its repository is 'evil/widgets', not the one the rule names"),
            ("wrong workflow", github.github_token(workflow="evil.yml"), 403,
             "its job_workflow_ref is 'acme/widgets/.github/workflows/evil.yml@refs/heads/main'"),
            ("replay", replayed, 401, "this token was already exchanged"),
            ("unknown key", github.forged(claims()), 401,
             "the token is signed with a key ('stranger') that the issuer github does not "
             "publish"),
            ("forged under a real kid", github.forged(claims(), kid=github.signing.kid), 401,
             "the token's signature is not valid"),
            ("alg none", github.unsigned(claims()), 401, "unsigned tokens (alg none) are refused"),
            ("HMAC with the public key", github.hmac_with_public_key(claims()), 401,
             "tokens signed with a shared secret (alg HS256) are refused"),
            ("unknown issuer", github.sign(claims(iss="https://127.0.0.1:1/other")), 401,
             "is not one of this index's trusted issuers"),
            ("issuer down", github.sign(claims(iss=serving().down_url)), 503,
             "the token cannot be verified now: its issuer cannot be reached, or its keys cannot be used"),
        ]
        for what, token, status, message in cases:
            response = self.mint(token)
            self.assertEqual(response.status, status, f"{what}: {response.body!r}")
            self.assertIn(message, response.body.decode(), what)
        refused = [e for e in self.audit(event="token-issued") if e["outcome"] != "ok"]
        self.assertGreaterEqual(len(refused), len(cases))
        self.assertIn("publisher:github:evil/widgets",
                      [e.get("user") for e in refused])

    def test_key_rotation(self):
        """After the issuer rotates its key, tokens signed by the new key are accepted."""
        self.minted(self.github.github_token())
        fetched = serving().issuers.count("/github/jwks")
        self.github.rotate()
        time.sleep(0.6)  # (past jwks_min_refresh since the last fetch)
        answer = self.minted(self.github.github_token())
        self.assertEqual(answer["projects"], ["acme-*"])
        self.assertEqual(serving().issuers.count("/github/jwks"), fetched + 1)

    def test_issuer_certificate_checked(self):
        """Without the issuers' CA in a bundle, their HTTPS is not trusted: 503, no key."""
        issuers = serving().issuers
        daemon = self.new_daemon({"oidc.issuers": f"github {issuers['github'].url}",
                                  "publishers.acme-*": "issuer:github repository:acme/widgets"})
        response = http("POST", daemon.url + "api/oidc/mint-token",
                        {"Content-Type": "application/json"},
                        json.dumps({"token": self.github.github_token()}).encode())
        self.assertEqual(response.status, 503, response.body)
        self.assertIn("the token cannot be verified now: its issuer cannot be reached, or its keys cannot be used", response.body.decode())
        log = daemon.log_text()
        self.assertIn("cannot reach the discovery document of the issuer github: ", log)
        self.assertIn("certificate verify failed", log)
