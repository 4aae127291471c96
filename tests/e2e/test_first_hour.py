"""
The first hour (issue 60), as a new user walks it: the shipped
C{etc/pypid.ini} with no edit but C{[upstream] mode} and C{url}, the
server started from another folder than the checkout, the README's first
upload and install, the upstream check, an install through the cache, and
the shipped admin's admin commands.
"""

import os
import re
import sys

from tests import CHECKOUT
from tests.harness.distributions import make_wheel
from tests.harness.e2e import (
    UV,
    Daemon,
    DaemonTestCase,
    clean_env,
    http,
    installed,
    run,
    watch,
    write_files,
)
from tests.harness.upstream_server import UpstreamProcess

#: The shipped user and its shipped password, as the README gives them.
ADMIN = ("admin", "admin")


def readme_text():
    """The README, as a new user reads it."""
    with open(os.path.join(CHECKOUT, "README.rst"), encoding="utf-8") as f:
        return f.read()


def readme_uv_index(url):
    """The README's C{uv.toml} index, as C{pyproject.toml}'s table, for the server at C{url}."""
    block = re.search(r"\.\. code-block:: toml\n\n((?:   .*\n|\n)+)", readme_text()).group(1)
    toml = "\n".join(line[3:] for line in block.splitlines())
    return ('[project]\nname = "my-project"\nversion = "1.1"\n\n'
            + toml.replace("[[index]]", "[[tool.uv.index]]")
            .replace("http://127.0.0.1:8080/", url))


def readme_uv_publish():
    """The README's C{uv publish --index} command, as arguments after C{uv}."""
    found = re.search(r"``uv (publish --index pypid[^`]*)``", readme_text()).group(1)
    return found.split()


class ShippedDaemon(Daemon):
    """
    A server of the shipped configuration, in a copy of the checkout's
    layout (C{clone/etc/pypid.ini}, C{clone/var/}), started from another
    folder, on a free port (the only thing the test gives it).
    """

    def __init__(self, root, config_text):
        super().__init__(os.path.join(root, "elsewhere"), config_text="")
        os.remove(self.config_path)  # (the harness's own, not used)
        self.clone = os.path.join(root, "clone")
        os.makedirs(os.path.join(self.clone, "etc"))
        self.config_path = os.path.join(self.clone, "etc", "pypid.ini")
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write(config_text)
        self.storage = os.path.join(self.clone, "var", "packages")
        self.snapshot = os.path.join(self.clone, "var", "index.json")


class FirstHourTests(DaemonTestCase):
    """The README's path, from a fresh clone to caching the public index."""

    def shipped_with_upstream(self, url):
        """The shipped file, with the two lines the README says to change."""
        with open(os.path.join(CHECKOUT, "etc", "pypid.ini"), encoding="utf-8") as f:
            text = f.read()
        edited = text.replace("\nmode = none\n", "\nmode = cache\n").replace(
            "\n#url = https://upstream.example/simple/\n", f"\nurl = {url}\n")
        self.assertEqual(len(edited.splitlines()), len(text.splitlines()))
        self.assertNotEqual(edited, text)
        return edited

    def cli(self, tool, daemon, *args, check=True):
        """Run one of pypid's tools as the shipped admin."""
        env = clean_env(os.path.abspath(self.mktemp()), PYPID_PASSWORD=ADMIN[1])
        return run([sys.executable, "-m", f"pypid.cli.{tool}", "--server", daemon.url,
                    "--user", ADMIN[0], *args], cwd=CHECKOUT, env=env, what=tool, check=check)

    def test_the_first_hour(self):
        """From the shipped files to an install through the public index's cache."""
        upstream = UpstreamProcess(os.path.abspath(self.mktemp()))
        upstream.add_wheel("public-app", "1.0", requires_dist=["public-lib"])
        upstream.add_wheel("public-lib", "2.0")
        upstream.start()
        self.addCleanup(upstream.kill)
        root = os.path.abspath(self.mktemp())
        daemon = ShippedDaemon(root, self.shipped_with_upstream(upstream.url))
        watch(daemon)
        self.addCleanup(daemon.kill)
        daemon.start()
        log = daemon.log_since_start().decode()
        # The start log: the URL to open, where the data is, the password.
        self.assertIn(f"open http://127.0.0.1:{daemon.port}/", log)
        var = os.path.join(root, "clone", "var")
        self.assertIn(f"Storage: local folder {var}/packages; snapshot: {var}/index.json", log)
        self.assertIn("The user admin still has the password etc/pypid.ini ships (admin)", log)
        # The README's first upload and install.
        wheel = make_wheel("my-project", "1.0")
        self.clients.twine_upload(daemon, self.dist_dir(wheel), user=ADMIN[0],
                                  password=ADMIN[1])
        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, daemon.index_url, "my-project")
        self.assertEqual(installed(target), {"my-project": "1.0"})
        # The README's uv configuration: uv publish --index uploads at once
        # (without -u, uv first tries trusted publishing over https://).
        second = make_wheel("my-project", "1.1")
        project = os.path.abspath(self.mktemp())
        write_files(os.path.join(project, "dist"), second)
        with open(os.path.join(project, "pyproject.toml"), "w", encoding="utf-8") as f:
            f.write(readme_uv_index(daemon.url))
        env = self.clients.env(UV_CACHE_DIR=self.clients.uv_cache, UV_PUBLISH_PASSWORD=ADMIN[1])
        published = run([UV, "-v", "--no-progress", *readme_uv_publish()], cwd=project,
                        env=env, what="uv")
        self.assertNotIn("trusted publishing", published.output)
        self.assertIn(second[0], http("GET", daemon.index_url + "my-project/").body.decode())
        # The upstream works with only mode and url set, and says so.
        said = self.cli("upstream", daemon, "check", "public-lib").output
        self.assertRegex(said, r"^default: works: the page of public-lib lists 1 file")
        through = os.path.abspath(self.mktemp())
        self.clients.pip_install(through, daemon.index_url, "public-app")
        self.assertEqual(installed(through), {"public-app": "1.0", "public-lib": "2.0"})
        # The shipped admin is an admin: the README's admin commands answer.
        self.cli("admin", daemon, "bin")
        self.cli("admin", daemon, "audit")
        # Nothing was written where the server was started but its log.
        self.assertEqual(sorted(os.listdir(daemon.directory)), ["home", "server.log"])
        self.assertTrue(os.path.isdir(os.path.join(var, "packages")))
        self.assertTrue(re.search(r"my_project-1\.0-py3-none-any\.whl",
                                  " ".join(os.listdir(os.path.join(var, "packages")))))
