"""
Programs from the distribution's packages that some end-to-end tests drive
(Chromium and its driver, nginx), installed by the tests themselves.

The README's test command is the whole set-up: a machine that lacks one of
these gets it from Debian's packages the first time a test needs it, when
the tests run as root and C{apt-get} is there (as in CI). Only where it
cannot be installed does the test skip, with a message naming the package.
"""

import os
import shutil
import subprocess
import tempfile
import threading

from twisted.trial.unittest import SkipTest

#: Seconds an C{apt-get} run may take (a first install of Chromium
#: downloads about 100 MB).
APT_TIMEOUT = 900

_lock = threading.Lock()
_updated = False
_failed = {}


def _apt(*argv):
    # (another process may hold dpkg's lock: trial's other worker (-j 2)
    # installing what its test needs, or another checkout's tests: wait
    # for it rather than fail, as apt-get's own option lets us)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(["apt-get", "-o", f"DPkg::Lock::Timeout={APT_TIMEOUT}", *argv],
                          env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=APT_TIMEOUT, check=False)


def _install(packages):
    """Install Debian packages; the reason it failed, or L{None}."""
    global _updated
    if shutil.which("apt-get") is None:
        return "apt-get is not available"
    if os.geteuid() != 0:
        return "the tests do not run as root, so they cannot install it"
    attempt = _apt("install", "-y", "--no-install-recommends", *packages)
    if attempt.returncode != 0 and not _updated:
        _updated = True
        _apt("update")
        attempt = _apt("install", "-y", "--no-install-recommends", *packages)
    if attempt.returncode != 0:
        return "apt-get failed: " + attempt.stdout.decode("utf-8", "replace")[-500:]
    return None


def require(programs):
    """
    The paths of the programs C{programs} (C{{program: Debian package}})
    names, installing the packages of those missing.

    @raise SkipTest: when one cannot be installed here, naming its package.
    """
    with _lock:
        missing = {package for program, package in programs.items()
                   if _find(program) is None and package not in _failed}
        if missing:
            reason = _install(sorted(missing))
            if reason is not None:
                for package in missing:
                    _failed[package] = reason
        found = {}
        for program, package in programs.items():
            path = _find(program)
            if path is None:
                raise SkipTest(f"needs {program} from the Debian package {package}: "
                               f"{_failed.get(package, 'it is not installed')}")
            found[program] = path
        return found


def _find(program):
    """A program on the PATH or in the system folders (C{nginx} is in C{/usr/sbin})."""
    return shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin:/sbin:/bin")


def socket_path(case):
    """
    A fresh path for a socket, in a short directory of its own: an
    C{AF_UNIX} address holds at most 107 bytes, which the trial temp
    directory of a deep checkout exceeds.
    """
    directory = tempfile.mkdtemp(prefix="pypid-")
    case.addCleanup(shutil.rmtree, directory, True)
    return os.path.join(directory, "notify")


def end_process(process, grace=10):
    """Stop a server the tests started: C{SIGTERM}, then C{SIGKILL} after C{grace} seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
