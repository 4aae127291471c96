"""
End-to-end tests of trusted publishing as the real clients do it,
unmodified: C{uv publish --trusted-publishing always} and C{twine upload}
without a password, run in a simulated CI job against the real daemon on
native HTTPS (a certificate of the test CA, which the clients are told to
trust the way each reads it).

The job is simulated with the variables the CI systems set: GitHub
Actions' C{GITHUB_ACTIONS}, C{ACTIONS_ID_TOKEN_REQUEST_URL} and
C{ACTIONS_ID_TOKEN_REQUEST_TOKEN}, the URL being the runner's ID token
service played by L{tests.harness.oidc_issuer.CITokenEndpoint}; GitLab CI's
C{GITLAB_CI} and C{<AUDIENCE>_ID_TOKEN}. The ID tokens are signed by the
local issuers the daemon's C{[oidc]} trusts (L{tests.harness.oidc_issuer.HTTPSIssuers}).
The clients find everything else themselves: they ask
C{https://<host>/_/oidc/audience}, get a token for that audience, and
exchange it at C{https://<host>/_/oidc/mint-token}; when pypid refuses,
they must print its reason.

twine (7.0.0 here) tries trusted publishing only when the repository URL
is the public index's: its test says so and is skipped with the line of
twine's code that decides it, for as long as the installed twine does.
"""

import atexit
import inspect
import json
import os
import re

from twisted.trial.unittest import SkipTest

from tests.harness.distributions import make_wheel
from tests.harness.e2e import (
    TWINE,
    UV,
    clean_env,
    run,
)
from tests.harness.e2e_tls import TLSDaemon, TLSDaemonTestCase, https, shared_ca
from tests.harness.oidc_issuer import CITokenEndpoint, HTTPSIssuers

#: The audience this daemon announces ([oidc] audience): not the default,
#: so that a client that asked for it is seen to have read /_/oidc/audience.
AUDIENCE = "pypid-ci-e2e"
#: The variable GitLab CI sets for a token of that audience (id_tokens:
#: PYPID_CI_E2E_ID_TOKEN: aud: pypid-ci-e2e), as the clients look it up.
GITLAB_VARIABLE = "PYPID_CI_E2E_ID_TOKEN"

#: twine colours its log even with NO_COLOR (rich): the escapes, for reading it.
ANSI = re.compile(r"\x1b\[[0-9;]*m")

RELEASE_WORKFLOW = "acme/widgets/.github/workflows/release.yml@refs/heads/main"

_served = []


def serving():
    """The issuers and the runner's token service, started once for the module."""
    if not _served:
        served = HTTPSIssuers(os.path.abspath("tp-issuer"))
        served.issuers.add("github", "rsa")
        served.issuers.add("gitlab", "ec")
        served.runner = CITokenEndpoint(served.issuers["github"])
        atexit.register(served.stop)
        atexit.register(served.runner.stop)
        _served.append(served)
    return _served[0]


class ClientsInCITests(TLSDaemonTestCase):
    """
    One HTTPS daemon trusting the local GitHub-like and GitLab-like
    issuers, publishing C{acme-*} from the release workflow of
    C{acme/widgets} and C{tool} from C{acme/tools}'s main branch.
    """

    @property
    def settings(self):
        served = serving()
        issuers = served.issuers
        return {
            "oidc.issuers": f"github {issuers['github'].url}\ngitlab {issuers['gitlab'].url}",
            "oidc.ca_bundle": served.ca_path,
            "oidc.audience": AUDIENCE,
            "oidc.timeout": "5",
            "publishers.acme-*": (f"issuer:github repository:acme/widgets "
                                  f"job_workflow_ref:{RELEASE_WORKFLOW} environment:release"),
            "publishers.tool": "issuer:gitlab project_path:acme/tools ref:main",
        }

    def make_shared_daemon(self, folder):
        """The shared HTTPS daemon: an EC certificate, the issuers' settings."""
        files = shared_ca().issue("shared", kind="ec", folder=os.path.join(folder, "tls"))
        return TLSDaemon(folder, files, settings=self.settings)

    def setUp(self):
        super().setUp()
        self.runner = serving().runner
        self.runner.claims = {}
        del self.runner.requests[:]
        self.addCleanup(self.runner.claims.clear)

    # -- the clients, as a CI job runs them ------------------------------------------------

    def github_env(self):
        """The variables of a GitHub Actions job allowed ID tokens (id-token: write)."""
        return self.runner.environ()

    def gitlab_env(self, **claims):
        """The variables of a GitLab CI job with an ID token of pypid's audience."""
        token = serving().issuers["gitlab"].gitlab_token(audience=AUDIENCE, **claims)
        return {"GITLAB_CI": "true", "CI": "true", GITLAB_VARIABLE: token}

    def uv_publish(self, paths, ci_env, mode="always"):
        """
        C{uv publish --trusted-publishing <mode>} to the daemon's upload
        URL, trusting the test CA by C{SSL_CERT_FILE}; the finished process.

        @param mode: C{always}, or L{None} for none given (C{automatic}).
        """
        env = clean_env(self.clients.home, UV_NO_CONFIG="1", UV_CACHE_DIR=self.clients.uv_cache,
                        UV_PYTHON_DOWNLOADS="never", SSL_CERT_FILE=shared_ca().root_path,
                        **ci_env)
        return run([UV, "--no-config", "--no-progress", "publish", "--publish-url",
                    self.daemon.url,
                    *(("--trusted-publishing", mode) if mode else ()), *paths],
                   cwd=self.clients.directory, env=env, check=False, what="uv")

    def twine_upload(self, paths, ci_env):
        """
        C{twine upload} to the daemon's upload URL with the user name
        C{__token__} and no password, trusting the test CA by
        C{REQUESTS_CA_BUNDLE} and C{--cert}; the finished process.
        """
        env = clean_env(self.clients.home, REQUESTS_CA_BUNDLE=shared_ca().root_path, **ci_env)
        return run([TWINE, "upload", "--repository-url", self.daemon.url, "-u", "__token__",
                    "--cert", shared_ca().root_path, "--non-interactive",
                    "--disable-progress-bar", "--verbose", *paths],
                   cwd=self.clients.directory, env=env, check=False, what="twine")

    # -- what the daemon says ----------------------------------------------------------------

    def listed(self, project):
        """The filenames of C{/simple/<project>/} (JSON), over HTTPS; none for a 404."""
        response = https("GET", f"{self.daemon.index_url}{project}/",
                         {"Accept": "application/vnd.pypi.simple.v1+json"})
        if response.status == 404:
            return []
        self.assertEqual(response.status, 200, response.body)
        return [entry["filename"] for entry in response.json()["files"]]

    def refusal(self, token):
        """The C{description} of pypid's refusal of C{token} at C{/_/oidc/mint-token}."""
        response = https("POST", self.daemon.url + "_/oidc/mint-token",
                         {"Content-Type": "application/json"},
                         json.dumps({"token": token}).encode())
        self.assertEqual(response.status, 403, response.body)
        [error] = response.json()["errors"]
        self.assertEqual(error["code"], "invalid-publisher")
        return error["description"]

    def assert_asked_for_audience(self):
        """The client asked the runner for a token of the audience pypid announces."""
        self.assertEqual([audience for _path, audience in self.runner.requests], [AUDIENCE])

    # -- uv ------------------------------------------------------------------------------------

    def test_uv_github_actions(self):
        """uv publishes from a GitHub Actions job: audience asked, token minted, file listed."""
        wheel = make_wheel("acme-widgets", "1.0")
        done = self.uv_publish(self.dist_dir(wheel), self.github_env())
        self.assertEqual(done.returncode, 0, done.output)
        self.assert_asked_for_audience()
        self.assertIn(wheel[0], self.listed("acme-widgets"))
        self.assertIn(wheel[0], self.daemon.stored_names())
        # (uv revokes the token once it uploaded: pypid forgets it at once)
        self.assertNotIn("Failed to invalidate", done.output)
        self.assertIn("at its holder's request", self.daemon.log_text())

    def test_uv_github_actions_automatic(self):
        """
        Without C{--trusted-publishing} (uv's C{automatic}) and without
        credentials, uv in a GitHub Actions job uses trusted publishing to
        pypid too: no option in the job's command is needed.
        """
        wheel = make_wheel("acme-widgets", "2.0")
        done = self.uv_publish(self.dist_dir(wheel), self.github_env(), mode=None)
        self.assertEqual(done.returncode, 0, done.output)
        self.assert_asked_for_audience()
        self.assertIn(wheel[0], self.listed("acme-widgets"))

    def test_uv_github_actions_wrong_repository(self):
        """A job of a repository no publisher names: uv fails, printing pypid's reason."""
        self.runner.claims["repository"] = "evil/widgets"
        reason = self.refusal(serving().issuers["github"].github_token(
            repository="evil/widgets", audience=AUDIENCE))
        self.assertIn("evil/widgets", reason)
        wheel = make_wheel("acme-evil", "1.0")
        done = self.uv_publish(self.dist_dir(wheel), self.github_env())
        self.assertNotEqual(done.returncode, 0, done.output)
        self.assert_asked_for_audience()
        self.assertIn(reason, done.output)
        self.assertEqual(self.listed("acme-evil"), [])
        self.assertNotIn(wheel[0], self.daemon.stored_names())

    def test_uv_gitlab_ci(self):
        """uv publishes from a GitLab CI job with the ID token of pypid's audience."""
        wheel = make_wheel("tool", "1.0")
        done = self.uv_publish(self.dist_dir(wheel), self.gitlab_env(project_path="acme/tools"))
        self.assertEqual(done.returncode, 0, done.output)
        self.assertEqual(self.listed("tool"), [wheel[0]])

    def test_uv_gitlab_ci_wrong_project(self):
        """A GitLab job of a project no publisher names: uv fails, printing pypid's reason."""
        ci_env = self.gitlab_env(project_path="evil/tools")
        reason = self.refusal(ci_env[GITLAB_VARIABLE])
        wheel = make_wheel("tool", "2.0")
        done = self.uv_publish(self.dist_dir(wheel), self.gitlab_env(project_path="evil/tools"))
        self.assertNotEqual(done.returncode, 0, done.output)
        self.assertIn(reason, done.output)
        self.assertNotIn(wheel[0], self.listed("tool"))

    # -- twine ---------------------------------------------------------------------------------

    def skip_unless_twine_tries(self, done):
        """
        Skip, with the evidence, when twine did not even ask for an ID
        token: it tries trusted publishing only for the public index.
        """
        if self.runner.requests:
            return
        from twine import __version__
        from twine.auth import Resolver

        source, first = inspect.getsourcelines(Resolver.password_from_keyring_or_trusted_publishing_or_prompt)
        [line] = [first + at for at, text in enumerate(source) if "if self.is_pypi() and" in text]
        where = f"{inspect.getsourcefile(Resolver)}:{line}"
        self.assertIn("Credential not found for password", done.output)
        raise SkipTest(
            f"twine {__version__} tries trusted publishing only when the repository URL "
            f"is the public index's or its test instance's ({where}: "
            f"{source[line - first].strip()!r}, Resolver.is_pypi); against pypid it "
            f"never asked the runner for an ID token and said: "
            f"{ANSI.sub('', done.output).strip().splitlines()[-1]!r}")

    def test_twine_github_actions(self):
        """twine with no password in a GitHub Actions job publishes (when it tries)."""
        wheel = make_wheel("acme-twine", "1.0")
        done = self.twine_upload(self.dist_dir(wheel), self.github_env())
        self.skip_unless_twine_tries(done)
        self.assertEqual(done.returncode, 0, done.output)
        self.assert_asked_for_audience()
        self.assertEqual(self.listed("acme-twine"), [wheel[0]])

    def test_twine_github_actions_wrong_repository(self):
        """A job of a repository no publisher names: twine fails, printing pypid's reason."""
        self.runner.claims["repository"] = "evil/widgets"
        wheel = make_wheel("acme-twine-evil", "1.0")
        done = self.twine_upload(self.dist_dir(wheel), self.github_env())
        self.skip_unless_twine_tries(done)
        reason = self.refusal(serving().issuers["github"].github_token(
            repository="evil/widgets", audience=AUDIENCE))
        self.assertNotEqual(done.returncode, 0, done.output)
        self.assertIn(reason, done.output)
        self.assertEqual(self.listed("acme-twine-evil"), [])
