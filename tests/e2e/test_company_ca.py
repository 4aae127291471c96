"""
Clients of a server on a private CA on a machine whose environment names a
company's CA bundle (C{REQUESTS_CA_BUNDLE}, C{CURL_CA_BUNDLE}), as many
company machines do: pip and twine then ignore C{--cert}, and the commands
the TLS docs give instead work (the README's "Serving HTTPS",
docs/operations.rst's "A private CA"), each run here with the real client
against the real daemon.
"""

import os
import shutil
import sys

import certifi

from tests import CHECKOUT
from tests.harness.distributions import make_wheel
from tests.harness.e2e import PASSWORD, USER, clean_env, installed, run
from tests.harness.e2e_tls import TLSDaemonTestCase, shared_ca

#: The variables a company sets to its bundle (which holds no private CA of
#: pypid's): the public roots stand for it.
COMPANY = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")

#: The docs that give the commands, each the same lines.
DOCS = ("README.rst", os.path.join("docs", "operations.rst"))


def documented(start):
    """
    The one line of the docs' commands that starts with C{start}, the same
    in each of L{DOCS}, split into words (the example host left as it is).
    """
    found = set()
    for name in DOCS:
        with open(os.path.join(CHECKOUT, name), encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip().startswith(start)]
        if len(set(lines)) != 1:
            raise AssertionError(f"{name} gives {len(set(lines))} lines starting {start!r}")
        found.update(lines)
    if len(found) != 1:
        raise AssertionError(f"{DOCS} give different lines starting {start!r}: {found}")
    return found.pop()


class CompanyBundleTests(TLSDaemonTestCase):

    def company(self, variable, **more):
        """The clients' environment with C{variable} naming the company's bundle."""
        return self.clients.env(**{variable: certifi.where(), **more})

    def bundles(self, variable):
        """
        What the docs give C{REQUESTS_CA_BUNDLE} where C{variable} names the
        company's bundle: the private CA alone (C{tls/ca.pem}), and the
        company's bundle with it, made by the docs' C{cat} line run in a
        shell.
        """
        folder = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(folder, "tls"))
        ca = shutil.copy(shared_ca().root_path, os.path.join(folder, "tls", "ca.pem"))
        run(["sh", "-c", documented('cat "${REQUESTS_CA_BUNDLE:-$CURL_CA_BUNDLE}"')],
            cwd=folder, env=self.company(variable), what="cat")
        return ca, os.path.join(folder, "tls", "both.pem")

    def test_twine(self):
        """
        twine upload --cert fails while a company bundle is named; the
        documented REQUESTS_CA_BUNDLE=tls/ca.pem twine upload works.
        """
        self.assertEqual(documented("REQUESTS_CA_BUNDLE=tls/ca.pem twine"),
                         "REQUESTS_CA_BUNDLE=tls/ca.pem twine upload --repository-url "
                         "https://pypi.internal.example:8443/ dist/*")
        ca = shared_ca().root_path
        tried = [(variable, bundle) for variable in COMPANY for bundle in self.bundles(variable)]
        for at, (variable, bundle) in enumerate(tried):
            wheel = make_wheel("company-twine", f"1.{at}")
            paths = self.dist_dir(wheel)
            ignored = self.clients.twine_upload(self.daemon, paths, "--cert", ca,
                                                env=self.company(variable), check=False)
            self.assertNotEqual(ignored.returncode, 0, (variable, ignored.output))
            self.assertIn("CERTIFICATE_VERIFY_FAILED", ignored.output)
            self.clients.twine_upload(self.daemon, paths,
                                      env=self.company(variable, REQUESTS_CA_BUNDLE=bundle))
            self.assertIn(wheel[0], self.daemon.stored_names())

    def test_pip(self):
        """pip install --cert fails the same way; REQUESTS_CA_BUNDLE=tls/ca.pem pip works."""
        for bundle in ("tls/ca.pem", "tls/both.pem"):
            self.assertEqual(documented(f"REQUESTS_CA_BUNDLE={bundle} pip"),
                             f"REQUESTS_CA_BUNDLE={bundle} pip install --index-url "
                             "https://pypi.internal.example:8443/simple/ PROJECT")
        ca = shared_ca().root_path
        wheel = make_wheel("company-pip", "1.0")
        self.clients.twine_upload(self.daemon, self.dist_dir(wheel), "--cert", ca)
        for variable in COMPANY:
            target = os.path.abspath(self.mktemp())
            ignored = self.clients.pip_install(target, self.daemon.index_url, "--cert", ca,
                                               "--retries", "0", "company-pip",
                                               env=self.company(variable), check=False)
            self.assertNotEqual(ignored.returncode, 0, ignored.output)
            self.assertIn("CERTIFICATE_VERIFY_FAILED", ignored.output)
            for bundle in self.bundles(variable):
                target = os.path.abspath(self.mktemp())
                self.clients.pip_install(target, self.daemon.index_url, "company-pip",
                                         env=self.company(variable, REQUESTS_CA_BUNDLE=bundle))
                self.assertEqual(installed(target), {"company-pip": "1.0"})

    def test_uv_and_pypid_tools(self):
        """
        uv (SSL_CERT_FILE) and pypid's tools (--cert) are not swayed by the
        company's bundle; without --cert, a tool names the CA files it
        checked against, and how to give the server's.
        """
        ca = shared_ca().root_path
        wheel = make_wheel("company-uv", "1.0")
        self.clients.twine_upload(self.daemon, self.dist_dir(wheel), "--cert", ca)
        for variable in COMPANY:
            target = os.path.abspath(self.mktemp())
            self.clients.uv_install(target, self.daemon.index_url, "company-uv",
                                    environ={variable: certifi.where(), "SSL_CERT_FILE": ca})
            self.assertEqual(installed(target), {"company-uv": "1.0"})
            env = clean_env(os.path.abspath(self.mktemp()), PYPID_PASSWORD=PASSWORD,
                            PYTHONPATH=os.path.join(CHECKOUT, "src"),
                            **{variable: certifi.where()})
            listed = run([sys.executable, "-m", "pypid.cli.admin", "--server", self.daemon.url,
                          "--user", USER, "--cert", ca, "files", "company-uv"],
                         cwd=self.clients.directory, env=env, what="pypid-admin")
            self.assertIn("1.0", listed.output)
        refused = run([sys.executable, "-m", "pypid.cli.admin", "--server", self.daemon.url,
                       "projects"], cwd=self.clients.directory, env=env, what="pypid-admin",
                      check=False)
        self.assertEqual(refused.returncode, 1, refused.output)
        self.assertIn("CERTIFICATE_VERIFY_FAILED", refused.output)
        self.assertIn("checked against the system's CA certificates (", refused.output)
        self.assertIn("give the server's CA with --cert PEM or PYPID_CERT=PEM", refused.output)
