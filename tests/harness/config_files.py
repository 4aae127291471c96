"""
Configuration files written in a test's own folder, and the check that
one is refused with a one-line message naming the file.
"""

import os
import textwrap

from pypid.config import ConfigError, load_config


class ConfigFiles:
    """Helpers that write a configuration file in the test's own folder."""

    def write(self, text):
        """Write C{text} (dedented) to a new file and return its absolute path."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(text))
        return path

    def refused(self, text=None, path=None, **kwargs):
        """Assert the configuration is refused; return the path and the message."""
        if path is None:
            path = self.write(text)
        e = self.assertRaises(ConfigError, load_config, path, **kwargs)
        message = str(e)
        self.assertNotIn("\n", message)
        self.assertTrue(message.startswith(path + ": "), message)
        return message
