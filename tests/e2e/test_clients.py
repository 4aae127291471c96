"""
End-to-end tests of the clients beyond pip, uv and twine that people point
at an index (issue 60): pypi-simple, pipx, uv's tools (C{uvx}, C{uv tool}),
Poetry and PDM, each isolated from the machine's configuration, against
the real daemon on loopback.
"""

import os
import sys
import warnings

from tests.harness.distributions import make_wheel
from tests.harness.e2e import (
    PASSWORD,
    USER,
    UV,
    VENV_BIN,
    DaemonTestCase,
    clean_env,
    files_by_name,
    run,
    upload,
)

#: A console script in a wheel, for the tools that install applications.
APP_MODULE = "def main():\n    print('demo-app says hello')\n"


def app_wheel(version="1.0"):
    """A wheel of C{demo-app} with its C{demo-app} command, needing C{demo-lib}."""
    return make_wheel(
        "demo-app", version, requires_dist=["demo-lib>=1"], module_text=APP_MODULE,
        extra_files=[(f"demo_app-{version}.dist-info/entry_points.txt",
                      b"[console_scripts]\ndemo-app = demo_app:main\n")])


class ClientMatrixTests(DaemonTestCase):
    """Each client finds, installs and (where it can) publishes through pypid alone."""

    def prepare(self, daemon):
        for filename, data in (make_wheel("demo-lib", "1.0"), make_wheel("demo-lib", "1.1"),
                               app_wheel()):
            answer = upload(daemon, filename, data)
            self.assertEqual(answer.status, 200, answer.body)

    def env(self, **extra):
        """A clean environment in a folder of this test, with no pip configuration."""
        home = os.path.abspath(self.mktemp())
        os.makedirs(home)
        return home, clean_env(home, PIP_CONFIG_FILE=os.devnull, XDG_CONFIG_HOME=home + "/.config",
                               XDG_CACHE_HOME=home + "/.cache", XDG_DATA_HOME=home + "/.local",
                               **extra)

    def test_pypi_simple(self):
        """pypi-simple reads the pages with its default Accept, with no version warning."""
        from pypi_simple import PyPISimple
        with warnings.catch_warnings(record=True) as caught, PyPISimple(
                endpoint=self.daemon.index_url) as client:
            warnings.simplefilter("always")
            page = client.get_project_page("demo-lib")
            index = client.get_index_page()
        self.assertEqual(sorted(p.version for p in page.packages), ["1.0", "1.1"])
        self.assertTrue(all(p.digests.get("sha256") for p in page.packages))
        self.assertIn("demo-lib", index.projects)
        self.assertEqual([str(w.message) for w in caught], [])

    def test_pipx(self):
        """pipx installs an application and its dependency from pypid, and runs it."""
        home, env = self.env()
        env.update(PIPX_HOME=os.path.join(home, "pipx"), PIPX_BIN_DIR=os.path.join(home, "bin"),
                   PIPX_MAN_DIR=os.path.join(home, "man"), PIP_INDEX_URL=self.daemon.index_url,
                   PIP_NO_CACHE_DIR="1")
        run([os.path.join(VENV_BIN, "pipx"), "install", "--index-url", self.daemon.index_url,
             "--python", sys.executable, "demo-app"], cwd=home, env=env, what="pipx")
        said = run([os.path.join(home, "bin", "demo-app")], cwd=home, env=env, what="demo-app")
        self.assertIn("demo-app says hello", said.output)

    def test_uv_tool_and_uvx(self):
        """C{uv tool install} and C{uvx} install and run an application from pypid."""
        home, env = self.env(UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never")
        env.update(UV_TOOL_DIR=os.path.join(home, "tools"),
                   UV_TOOL_BIN_DIR=os.path.join(home, "bin"),
                   UV_CACHE_DIR=os.path.join(home, "uv-cache"))
        run([UV, "tool", "install", "--no-config", "--python", sys.executable,
             "--index-url", self.daemon.index_url, "demo-app"], cwd=home, env=env, what="uv tool")
        said = run([os.path.join(home, "bin", "demo-app")], cwd=home, env=env, what="demo-app")
        self.assertIn("demo-app says hello", said.output)
        said = run([UV, "tool", "run", "--no-config", "--python", sys.executable,
                    "--index-url", self.daemon.index_url, "demo-app"], cwd=home, env=env,
                   what="uvx")
        self.assertIn("demo-app says hello", said.output)

    def test_poetry(self):
        """Poetry locks and installs against pypid as its only source, and publishes to it."""
        home, env = self.env(POETRY_VIRTUALENVS_IN_PROJECT="true")
        env["POETRY_CACHE_DIR"] = os.path.join(home, "poetry-cache")
        env["POETRY_CONFIG_DIR"] = os.path.join(home, "poetry-config")
        env["POETRY_HTTP_BASIC_PYPID_USERNAME"] = USER
        env["POETRY_HTTP_BASIC_PYPID_PASSWORD"] = PASSWORD
        env["POETRY_REPOSITORIES_PYPID_URL"] = self.daemon.url
        project = os.path.join(home, "poetry-user")
        os.makedirs(os.path.join(project, "poetry_user"))
        with open(os.path.join(project, "poetry_user", "__init__.py"), "w") as f:
            f.write("")
        with open(os.path.join(project, "pyproject.toml"), "w", encoding="utf-8") as f:
            f.write(f"""
[project]
name = "poetry-user"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["demo-app"]

[[tool.poetry.source]]
name = "pypid"
url = "{self.daemon.index_url}"
priority = "primary"

[build-system]
requires = ["poetry-core>=2"]
build-backend = "poetry.core.masonry.api"
""")
        poetry = os.path.join(VENV_BIN, "poetry")
        run([poetry, "lock", "--no-interaction"], cwd=project, env=env, what="poetry lock")
        with open(os.path.join(project, "poetry.lock"), encoding="utf-8") as f:
            lock = f.read()
        self.assertIn('name = "demo-lib"\nversion = "1.1"', lock)
        run([poetry, "install", "--no-root", "--no-interaction"], cwd=project, env=env,
            what="poetry install")
        said = run([os.path.join(project, ".venv", "bin", "demo-app")], cwd=project, env=env,
                   what="demo-app")
        self.assertIn("demo-app says hello", said.output)
        run([poetry, "build", "--no-interaction"], cwd=project, env=env, what="poetry build")
        run([poetry, "publish", "-r", "pypid", "--no-interaction"], cwd=project, env=env,
            what="poetry publish")
        self.assertIn("poetry_user-0.1.0-py3-none-any.whl",
                      files_by_name(self.daemon, "poetry-user"))

    def test_pdm(self):
        """PDM locks and installs against pypid as its only source, and publishes to it."""
        home, env = self.env(PDM_CHECK_UPDATE="false", PDM_NON_INTERACTIVE="1")
        env["PDM_CACHE_DIR"] = os.path.join(home, "pdm-cache")
        env["PDM_CONFIG_FILE"] = os.path.join(home, "pdm-config.toml")
        project = os.path.join(home, "pdm-user")
        os.makedirs(os.path.join(project, "src", "pdm_user"))
        with open(os.path.join(project, "src", "pdm_user", "__init__.py"), "w") as f:
            f.write("")
        with open(os.path.join(project, "pyproject.toml"), "w", encoding="utf-8") as f:
            f.write(f"""
[project]
name = "pdm-user"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["demo-app"]

[[tool.pdm.source]]
name = "pypi"
url = "{self.daemon.index_url}"

[tool.pdm]
distribution = true

[build-system]
requires = ["pdm-backend"]
build-backend = "pdm.backend"
""")
        pdm = os.path.join(VENV_BIN, "pdm")
        run([pdm, "use", "-f", sys.executable], cwd=project, env=env, what="pdm use")
        run([pdm, "lock"], cwd=project, env=env, what="pdm lock")
        with open(os.path.join(project, "pdm.lock"), encoding="utf-8") as f:
            lock = f.read()
        self.assertIn('name = "demo-lib"\nversion = "1.1"', lock)
        run([pdm, "install", "--prod", "--no-self"], cwd=project, env=env, what="pdm install")
        said = run([pdm, "run", "demo-app"], cwd=project, env=env, what="pdm run")
        self.assertIn("demo-app says hello", said.output)
