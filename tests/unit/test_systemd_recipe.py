"""
The systemd recipe (issue 69): followed on a copy of the shipped
C{etc/pypid.ini}, as the README, C{docs/operations.rst} and the unit give
it, every path the server writes is in the unit's state folder, the one
C{ReadWritePaths=} lets it write under C{ProtectSystem=strict}.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from pypid.config import NAMED_SECTIONS, SCHEMA, load_config
from pypid.config.values import PATH_PARSERS
from pypid.web.identity.identity_part import sessions_path
from tests.harness.systemd_recipe import follow, read_recipe


def under(path, folder):
    """Whether C{path} is C{folder} or inside it."""
    return os.path.commonpath([path, folder]) == folder


class SystemdRecipeTests(SynchronousTestCase):

    def test_every_written_path_in_the_state_folder(self):
        """
        Every path-valued key the recipe's configuration holds (given in the
        file or defaulted against the unit's working directory), and the
        sessions' file beside the snapshot, is under the state folder.
        """
        root = os.path.abspath(self.mktemp())
        config_path, state = follow(read_recipe(), root)
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(state)  # (the unit's WorkingDirectory=)
        config = load_config(config_path)
        paths = {f"[{section}] {key}": config.keys[section, key]
                 for section, keys in {**SCHEMA, **NAMED_SECTIONS}.items()
                 for key, (_, parse) in keys.items()
                 if parse in PATH_PARSERS and (section, key) in config.keys}
        paths["sessions"] = sessions_path(config)
        given = {name: path for name, path in paths.items() if path is not None}
        self.assertTrue({"[pypid] snapshot", "[storage] path", "[auth] tokens",
                         "sessions"} <= set(given), given)
        outside = {name: path for name, path in given.items() if not under(path, state)}
        self.assertEqual(outside, {}, f"paths outside the state folder {state}")
