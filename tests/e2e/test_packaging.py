"""
End-to-end test of packaging: the twistd dropin is found after a real,
non-editable install of a wheel built from the checkout.
"""

import json
import os
import shutil
import sys
import sysconfig
import zipfile

from twisted.trial.unittest import SynchronousTestCase

from tests import CHECKOUT
from tests.harness.e2e import Clients, E2EFailure, clean_env, run

# What is not part of the source tree: copied checkouts leave these out.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", ".ci", "_trial_temp*", "build", "dist", "*.egg-info", "__pycache__",
    "dropin.cache", "*.pyc",
)

# Run with "python -S": no site-packages and no .pth files, so the editable
# install of the checkout is invisible; the path is exactly the install
# folder, the standard library and (without its .pth files) the venv's
# site-packages for Twisted and the other dependencies.
_PROBE = """
import json, sys
target, site_packages = sys.argv[1], sys.argv[2]
sys.path[:] = [target] + [p for p in sys.path if p and "site-packages" not in p] + [site_packages]
from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
import twisted.plugins
found = [(p.tapname, p.module) for p in getPlugins(IServiceMaker, twisted.plugins)]
import pypid, pypid.tap, twisted.plugins.pypid_plugin as dropin
options = pypid.tap.Options()
print(json.dumps({
    "found": found,
    "pypid": pypid.__file__,
    "dropin": dropin.__file__,
    "twisted": sys.modules["twisted"].__file__,
    "path": sys.path,
    "has_make_service": callable(getattr(pypid.tap, "makeService", None)),
}))
"""


class PluginPackagingTests(SynchronousTestCase):
    """The wheel of the project ships the dropin, and twistd finds it."""

    failureException = E2EFailure

    def test_plugin_found_after_non_editable_install(self):
        """A wheel built from the checkout holds the dropin (and no twisted/__init__.py), and once installed getPlugins finds C{pypid}."""
        work = os.path.abspath(self.mktemp())
        source = os.path.join(work, "source")
        # Build from a copy, so the build leaves no build/ or egg-info in the checkout.
        shutil.copytree(CHECKOUT, source, ignore=_NOT_SOURCE)
        clients = Clients(os.path.join(work, "clients"))
        wheels = os.path.join(work, "wheels")
        clients.pip("wheel", "--no-deps", "--no-build-isolation", "--progress-bar", "off",
                    "-w", wheels, source, timeout=180)
        [built] = [n for n in os.listdir(wheels) if n.endswith(".whl")]
        self.assertTrue(built.startswith("pypid-"), built)
        with zipfile.ZipFile(os.path.join(wheels, built)) as zf:
            names = set(zf.namelist())
        self.assertIn("twisted/plugins/pypid_plugin.py", names)
        self.assertNotIn("twisted/__init__.py", names)
        self.assertNotIn("twisted/plugins/__init__.py", names)
        self.assertNotIn("twisted/plugins/dropin.cache", names)
        for module in ("pypid/tap.py", "pypid/storage/folder/local.py", "pypid/web/app.py"):
            self.assertIn(module, names)

        target = os.path.join(work, "installed")
        clients.pip("install", "--no-deps", "--no-compile", "--progress-bar", "off",
                    "--target", target, os.path.join(wheels, built))
        self.assertFalse(os.path.exists(os.path.join(target, "twisted", "__init__.py")))

        site_packages = sysconfig.get_paths()["purelib"]
        done = run([sys.executable, "-S", "-c", _PROBE, target, site_packages],
                   cwd=work, env=clean_env(work), timeout=60, what="python")
        probe = json.loads(done.output.strip().splitlines()[-1])
        self.assertIn(["pypid", "pypid.tap"], probe["found"], probe)
        self.assertTrue(probe["pypid"].startswith(target + os.sep), probe)
        self.assertTrue(probe["dropin"].startswith(target + os.sep), probe)
        self.assertTrue(probe["twisted"].startswith(site_packages + os.sep), probe)
        self.assertTrue(probe["has_make_service"])
        checkout_src = os.path.join(CHECKOUT, "src")
        self.assertFalse([p for p in probe["path"] if p.startswith(checkout_src)], probe)

        usage = run([sys.executable, "-S", "-c",
                     "import sys; target, site = sys.argv[1:3]; "
                     "sys.path[:] = [target] + [p for p in sys.path if p] + [site]; "
                     "sys.argv = ['twistd', 'pypid', '--help']; "
                     "from twisted.scripts.twistd import run; run()",
                     target, site_packages],
                    cwd=work, env=clean_env(work), timeout=60, check=False, what="twistd")
        self.assertIn("--config", usage.output)
        self.assertIn("--listen", usage.output)
        self.assertNotIn("Traceback", usage.output)
