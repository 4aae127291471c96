"""
The systemd recipe (issue 69), followed on a copy of the shipped
C{etc/pypid.ini} as the README gives it (L{tests.harness.systemd_recipe}):
the real daemon started from it in the unit's working directory, a token
issued with C{pypid-token}, an upload with it, a login to the pages and a
clean stop write nothing outside the unit's state folder, the one folder
C{ProtectSystem=strict} leaves it.
"""

import os
import sys

from pypid.config import load_config
from tests import CHECKOUT
from tests.harness.distributions import make_wheel
from tests.harness.e2e import Daemon, DaemonTestCase, clean_env, form_login, run, watch
from tests.harness.systemd_recipe import follow, read_recipe

#: The shipped user and its shipped password.
ADMIN = ("admin", "admin")


class RecipeDaemon(Daemon):
    """
    A server of the recipe's configuration (C{root/etc/pypid/pypid.ini})
    run in its state folder (C{root/var/lib/pypid}), as the unit runs it;
    its log and C{HOME} are there too, as the unit's user's home is.
    """

    def __init__(self, root):
        config, state = follow(read_recipe(), root)
        super().__init__(state, config_text="")
        os.remove(self.config_path)  # (the harness's own, not used)
        self.config_path = config
        loaded = load_config(config)
        self.storage, self.snapshot = loaded.storage.path, loaded.server.snapshot
        self.tokens = loaded.auth.tokens


def files_under(folder):
    """Every file under C{folder}, as absolute paths."""
    return {os.path.join(where, name) for where, _, names in os.walk(folder) for name in names}


class SystemdRecipeTests(DaemonTestCase):

    def test_nothing_written_outside_the_state_folder(self):
        """A token, an upload, a login and a stop: every file written is in the state folder."""
        root = os.path.abspath(self.mktemp())
        daemon = RecipeDaemon(root)
        watch(daemon)
        self.addCleanup(daemon.kill)
        daemon.start()
        env = clean_env(os.path.abspath(self.mktemp()), PYPID_PASSWORD=ADMIN[1],
                        PYTHONPATH=os.path.join(CHECKOUT, "src"))
        issued = run([sys.executable, "-m", "pypid.cli.token", "--server", daemon.url,
                      "--user", ADMIN[0], "issue", "--actions", "upload"],
                     cwd=self.clients.directory, env=env, what="pypid-token")
        token, = [line for line in issued.output.splitlines() if line.startswith("pypid-")]
        self.assertTrue(os.path.exists(daemon.tokens))
        wheel = make_wheel("recipe-app", "1.0")
        self.clients.twine_upload(daemon, self.dist_dir(wheel), user="__token__",
                                  password=token)
        self.assertIn(wheel[0], daemon.stored_names())
        form_login(daemon.url, *ADMIN)
        daemon.stop_cleanly()
        self.assertTrue(os.path.exists(daemon.snapshot))
        outside = files_under(root) - files_under(daemon.directory)
        self.assertEqual(outside, {daemon.config_path})
