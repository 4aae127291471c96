"""
bandersnatch, the public index's mirroring tool, as the tests run it
against pypid: release 8.2 from the package registry, in a virtual
environment of its own (it needs Python 3.12 or later, which the tests'
own environment may not be), made once per machine under the temporary
folder (L{bandersnatch}), and a mirror's configuration and run
(L{Mirror}).
"""

import fcntl
import glob
import os
import shutil
import subprocess
import tempfile

from tests.harness.e2e import run

#: The release the tests mirror with.
VERSION = "8.2.0"


def _python():
    """A Python of 3.12 or later on this machine (the first found), or L{None}."""
    found = [shutil.which(name) for name in ("python3.13", "python3.12")]
    found += sorted(glob.glob("/root/.pyenv/versions/3.1[23].*/bin/python3"), reverse=True)
    found += sorted(glob.glob("/usr/local/bin/python3.1[23]"), reverse=True)
    # (without this process's PYTHONPATH, which trial's workers point at
    # their own Python's library)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for python in found:
        if python and subprocess.run([python, "-c", "import venv"], env=env,
                                     capture_output=True).returncode == 0:
            return python
    return None


def bandersnatch():
    """
    The path of the C{bandersnatch} command, installed once per machine;
    L{None} when no Python of 3.12 or later is here (the caller skips,
    saying so).
    """
    python = _python()
    if python is None:
        return None
    folder = os.path.join(tempfile.gettempdir(), f"pypid-tests-bandersnatch-{VERSION}")
    command = os.path.join(folder, "bin", "bandersnatch")
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    with open(folder + ".lock", "w") as lock:
        # (trial's two workers may both ask at once: one installs)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(command):
            shutil.rmtree(folder, ignore_errors=True)
            home = tempfile.mkdtemp()
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home}
            run([python, "-m", "venv", folder], cwd=home, env=env, what="venv")
            run([os.path.join(folder, "bin", "pip"), "install", "-q",
                 f"bandersnatch=={VERSION}"], cwd=home, env=env, what="pip install",
                timeout=600)
    return command


class Mirror:
    """
    A bandersnatch mirror of one pypid index, in C{folder}: its
    configuration names C{master} (no trailing slash, as bandersnatch
    joins it), and L{sync} runs it.
    """

    def __init__(self, command, folder, master, **options):
        self.command = command
        self.folder = folder
        self.config = os.path.join(folder, "bandersnatch.conf")
        settings = {"directory": os.path.join(folder, "mirror"), "master": master,
                    "allow-non-https": "true", "json": "true", "workers": "2",
                    "stop-on-error": "true", "delete_missing_packages": "true",
                    "timeout": "30", "global-timeout": "120", **options}
        os.makedirs(folder, exist_ok=True)
        with open(self.config, "w", encoding="utf-8") as f:
            f.write("[mirror]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))

    def sync(self):
        """Run C{bandersnatch mirror} once, without the machine's proxies; its output."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.folder}
        return run([self.command, "--config", self.config, "mirror"], cwd=self.folder,
                   env=env, what="bandersnatch").output

    @property
    def web(self):
        """Where the mirror serves from."""
        return os.path.join(self.folder, "mirror", "web")

    def serial(self):
        """The serial the mirror reached (its C{status}), or L{None}."""
        try:
            with open(os.path.join(self.folder, "mirror", "status"), encoding="ascii") as f:
                return int(f.read())
        except FileNotFoundError:
            return None

    def page(self, project):
        """The mirror's PEP 691 page of C{project} (a dict), or L{None}."""
        import json
        path = os.path.join(self.web, "simple", project, "index.v1_json")
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def projects(self):
        """The projects the mirror serves pages of."""
        simple = os.path.join(self.web, "simple")
        return sorted(name for name in os.listdir(simple)
                      if os.path.isdir(os.path.join(simple, name)))
