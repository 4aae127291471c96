"""
Podman, and pypid's container image built by the tests (issue 30).

No image registry can be reached from the machines the tests run on, so
the base the image is built on is made here from Debian's packages: a
minimal Debian (its Python 3, venv and CA certificates) written by
C{mmdebstrap} from the machine's own apt sources, and taken in by C{podman
import}. It is kept in Podman's store under a tag naming what it holds, so
a later run on the same machine reuses it. Measured here
(C{tests/bench/bench_image.py}): a cold build of the base takes 53 s, the
wheels 12 s and the image 34 to 38 s; so the image tests take about 2
minutes on a fresh machine and 1 minute on one that ran them before. pypid and its dependencies go in as
wheels built on the host from the checkout (C{pip wheel}, which reaches
the package registry), passed to the build as its C{WHEELS} argument, so
the build reaches nothing either. Users build from the official Python
image, the Containerfile's default C{BASE}.

Podman runs as root with settings of the tests' own, in a
C{containers.conf} that L{Podman} points C{CONTAINERS_CONF} at (never the
user's or the machine's):

  - C{runtime = "runc"}: crun, Podman's default, fails on this machine's
    cgroup hybrid mode and on C{setrlimit};
  - C{default_ulimits = []}: no C{nofile} limit set in containers (the one
    Podman sets by default is refused here);
  - C{cgroup_manager = "cgroupfs"} and C{events_logger = "file"}: there is
    no systemd to manage cgroups or to take the events.
"""

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from twisted.python import log

from pypid.config.store_backends import BACKENDS
from tests import CHECKOUT
from tests.harness.shared import run_folder
from tests.harness.system import require

#: The packages of the base image: a Python with its venv module, and the
#: CA certificates (the official slim image has the equivalents).
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")

#: The programs the image tests need, by Debian package: Podman, the
#: runtime it is told to use, mmdebstrap for the base; and what publishing
#: a port takes (netavark, Podman's network stack here, and iptables),
#: which are only recommended or suggested by Podman's package, so not
#: installed with C{--no-install-recommends}.
PROGRAMS = {"podman": "podman", "mmdebstrap": "mmdebstrap", "runc": "runc",
            "iptables": "iptables", "/usr/lib/podman/netavark": "netavark"}

CONTAINERS_CONF = """\
# The tests' own Podman settings (tests/harness/image.py says why each is here).
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


#: Seconds a build may take (a cold one of the base and the image: about
#: two minutes here).
BUILD_TIMEOUT = 900

#: The clouds' extras the image is built with (its C{EXTRAS} build
#: argument), and so the wheels built for it: every one, as by default.
EXTRAS = ",".join(BACKENDS)


class Podman:
    """
    The C{podman} command with the tests' settings.

    @ivar folder: where its C{containers.conf} is.
    """

    def __init__(self, folder):
        paths = require(PROGRAMS)
        self.binary = paths["podman"]
        self.mmdebstrap = paths["mmdebstrap"]
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        self.conf = os.path.join(folder, "containers.conf")
        with open(self.conf, "w") as f:
            f.write(CONTAINERS_CONF)
        self.env = dict(os.environ, CONTAINERS_CONF=self.conf)

    def __call__(self, *args, check=True, timeout=120, input=None):
        """Run C{podman args}; the finished process (text output)."""
        done = subprocess.run([self.binary, *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout, input=input, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {done.returncode}:\n"
                                 f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        return done

    def exists(self, image):
        """Whether Podman's store has C{image}."""
        return self("image", "exists", image, check=False).returncode == 0


def apt_sources():
    """The machine's own apt sources file (deb822 or one-line), for mmdebstrap."""
    for path in ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"):
        if os.path.exists(path) and os.path.getsize(path) > 0:
            return path
    raise AssertionError("no apt sources file on this machine for mmdebstrap")


class BaseImage:
    """
    The base image made from Debian's packages, built once per machine.

    @ivar tag: its name in Podman's store.
    @ivar seconds: how long this run took to have it (a cold build, or the
        look-up of the one kept).
    @ivar cold: whether it was built by this run.
    """

    def __init__(self, podman, suite="bookworm", fresh=False):
        """
        @param fresh: build it even when one is kept (the kept one is
            removed first), to measure a cold build.
        """
        digest = hashlib.sha256(" ".join((suite, *BASE_PACKAGES)).encode()).hexdigest()[:12]
        self.tag = f"localhost/pypid-test-base:{suite}-{digest}"
        if fresh:
            podman("rmi", "--force", self.tag, check=False)
        started = time.monotonic()
        self.cold = not podman.exists(self.tag)
        if self.cold:
            tar = os.path.join(podman.folder, "base.tar")
            done = subprocess.run(
                [podman.mmdebstrap, "--variant=apt", "--include=" + ",".join(BASE_PACKAGES),
                 "--dpkgopt=path-exclude=/usr/share/doc/*",
                 "--dpkgopt=path-exclude=/usr/share/man/*",
                 "--dpkgopt=path-exclude=/usr/share/locale/*",
                 suite, tar, apt_sources()],
                capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
            if done.returncode != 0:
                raise AssertionError(f"mmdebstrap failed:\n{done.stderr[-3000:]}")
            podman("import", "--change", 'CMD ["/bin/sh"]', tar, self.tag,
                   timeout=BUILD_TIMEOUT)
            os.remove(tar)
        self.seconds = time.monotonic() - started


def copy_sources(folder):
    """
    Copy the checkout's files a build reads (C{setup.py}, C{README.rst},
    C{pypid.tac}, C{src/}) into C{folder}, made anew; its path.
    """
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for name in ("setup.py", "README.rst", "pypid.tac"):
        shutil.copy2(os.path.join(CHECKOUT, name), folder)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "dropin.cache")
    shutil.copytree(os.path.join(CHECKOUT, "src"), os.path.join(folder, "src"), ignore=ignore)
    return folder


def build_context(folder, wheels):
    """
    A build context of the checkout's files the Containerfile copies, and
    C{wheels} (a folder of wheels) as C{wheels/}; its path.
    """
    context = copy_sources(os.path.join(folder, "context"))
    shutil.copytree(os.path.join(CHECKOUT, "etc", "container"),
                    os.path.join(context, "etc", "container"))
    shutil.copytree(wheels, os.path.join(context, "wheels"))
    return context


def host_wheels(folder):
    """
    Wheels of pypid (from a copy of the checkout: pip builds a project in
    its own folder, and the checkout is not the tests' to write in) and of
    all its dependencies, the clouds' extras the image installs included,
    built on the host with this interpreter's pip; the folder.
    """
    wheels = os.path.join(folder, "wheels")
    shutil.rmtree(wheels, ignore_errors=True)
    source = copy_sources(os.path.join(folder, "source"))
    with tempfile.TemporaryDirectory() as build:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "wheel",
             "--quiet", "--wheel-dir", wheels, f"{source}[{EXTRAS}]"],
            capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False,
            env=dict(os.environ, TMPDIR=build))
    shutil.rmtree(source, ignore_errors=True)
    if done.returncode != 0:
        raise AssertionError(f"pip wheel failed:\n{done.stderr[-3000:]}")
    return wheels


class Image:
    """
    pypid's image, built from the checkout on L{BaseImage}.

    @ivar tag: its name.
    @ivar seconds: how long the build took (the wheels and the base not
        counted).
    @ivar size: its size in bytes, as Podman counts it.
    """

    def __init__(self, podman, base, folder, tag=None):
        """@param tag: its name; default: one of this process's."""
        self.podman = podman
        self.tag = tag or f"localhost/pypid-test:{os.getpid()}"
        context = build_context(folder, host_wheels(folder))
        dangling = set(podman("images", "--quiet", "--filter", "dangling=true").stdout.split())
        started = time.monotonic()
        podman("build", "--format", "docker", "--pull=never",
               "--build-arg", f"BASE={base.tag}", "--build-arg", "WHEELS=wheels",
               "--build-arg", f"EXTRAS={EXTRAS}",
               "-f", os.path.join(context, "etc", "container", "Containerfile"),
               "-t", self.tag, context, timeout=BUILD_TIMEOUT)
        self.seconds = time.monotonic() - started
        # (the build stage's image, untagged: this build's alone are removed)
        made = set(podman("images", "--quiet", "--filter", "dangling=true").stdout.split())
        if made - dangling:
            podman("rmi", "--force", *(made - dangling), check=False)
        shutil.rmtree(context, ignore_errors=True)
        self.size = int(podman("image", "inspect", "--format", "{{.Size}}", self.tag)
                        .stdout.strip())

    def remove(self):
        """Take the image out of Podman's store (the base stays)."""
        self.podman("rmi", "--force", self.tag, check=False)

    def summary(self, base, by):
        """One line of what was built, how long it took, and C{by} whom."""
        return (f"pypid image: {self.size / 1e6:.0f} MB, built {by}; base "
                f"{'built' if base.cold else 'reused'} in {base.seconds:.1f} s; "
                f"image built in {self.seconds:.1f} s")


def _started(pid):
    """When process C{pid} started (clock ticks since boot, from C{/proc}), or C{"0"}."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "0"


def run_owner():
    """
    The process that holds this trial run's lock: the one that runs the
    tests without C{-j}, their parent with it (trial's C{.lock} names it);
    this process when no run is under way yet (trial loads the tests
    before it makes the run's folder).
    """
    try:
        return int(os.readlink(run_folder() + ".lock"))
    except (OSError, ValueError):
        return os.getpid()


def run_key(owner):
    """
    The name of the image of the run C{owner} holds, and of its lock: the
    owner's pid and start time, so that neither another run nor a later
    one with the same pid takes it for its own.
    """
    return f"{owner}-{_started(owner)}"


def _tag(key):
    """The name in Podman's store of the image of the run of C{key} (L{run_key})."""
    return f"localhost/pypid-test:{key}"


#: A run's lock file, or the builder's log beside it (L{_lock_path}).
_LOCK_NAME = re.compile(r"pypid-test-image-(?P<key>(?P<owner>[0-9]+)-[0-9]+)\.lock(\.log)?")


def _lock_path(key):
    """The lock file of a run's image (outside the run's folder, which trial empties)."""
    return os.path.join(tempfile.gettempdir(), f"pypid-test-image-{key}.lock")


def _forget_ended_runs():
    """Remove the lock files (and logs) of the runs whose owner no longer runs."""
    folder = tempfile.gettempdir()
    for name in os.listdir(folder):
        found = _LOCK_NAME.fullmatch(name)
        if found and run_key(int(found["owner"])) != found["key"]:
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder, name))


def build_in_background():
    """
    Start building the run's image at once, in a process of its own, when
    trial loads the image tests: with C{-j 2}, the first image test then
    finds it built (or waits for less), where one worker used to build it
    (about 2 minutes on a fresh machine) while the other, given the next
    image test, waited for it doing nothing. The builder holds the run's
    lock exclusively from before this returns until it is done, as a test
    that builds does (L{RunImage.hold}); a builder that fails leaves no
    image, and the first test builds it again and says why it fails.

    Only trial's loading process starts one (not a worker, not a test run
    already under way, not an import by anything but trial).
    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    by_trial = (getattr(spec, "name", "") in ("twisted.trial", "twisted.trial.__main__")
                or os.path.basename(sys.argv[0] if sys.argv else "") == "trial")
    # (a test's process works in the run's folder, which trial locks;
    # the loading process does not yet)
    if not by_trial or os.path.lexists(run_folder() + ".lock"):
        return
    _forget_ended_runs()
    builder = subprocess.Popen(
        [sys.executable, "-m", "tests.harness.image", str(os.getpid())], cwd=CHECKOUT,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        start_new_session=True)
    # (its lock taken before any test can look for the image)
    builder.stdout.readline()
    builder.stdout.close()


def _build_for(owner):
    """
    The background builder's work (L{build_in_background}): the image of
    the run C{owner} holds, under its exclusive lock; what it did, in a
    log beside the lock that the first test to use the image repeats.
    """
    key = run_key(owner)
    lock_path = _lock_path(key)
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        print("locked", flush=True)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        folder = tempfile.mkdtemp(prefix="pypid-image-build-")
        try:
            podman = Podman(folder)
            base = BaseImage(podman)
            image = Image(podman, base, folder, tag=_tag(key))
        except BaseException as e:
            message = f"the build in the background failed: {e!r}"[:2000]
        else:
            message = image.summary(base, "in the background")
            if run_key(owner) != key:
                # (the run ended meanwhile: no test will remove it)
                image.remove()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        with open(lock_path + ".log", "w") as f:
            f.write(message)


class RunImage:
    """
    pypid's image shared by the processes of one trial run (with C{-j},
    each worker runs some of the image tests): built in the background
    from the moment trial loads the tests (L{build_in_background}), or by
    the first test that needs it, and removed by the last.

    A lock file of the run (L{_lock_path}) says who does what: a test holds
    it shared while it uses the image; a build holds it exclusively, so
    the others wait and then use what was built; a removal takes it
    exclusively without waiting, and when it cannot (another process is
    using the image), leaves the image to that process, which removes it
    when it is done in turn.

    @ivar tag: the image's name (L{run_key}).
    @ivar error: why this process could not build it, or L{None}.
    """

    def __init__(self, podman, folder):
        self.podman = podman
        self.folder = folder
        key = run_key(run_owner())
        self.tag = _tag(key)
        self.error = None
        self._lock_path = _lock_path(key)

    def hold(self):
        """
        The image, for a test: built if no process of the run has it yet;
        an open file whose shared lock keeps it, to close when done.
        """
        if self.error is not None:
            raise AssertionError(f"the image could not be built: {self.error}")
        held = open(self._lock_path, "a")
        try:
            fcntl.flock(held, fcntl.LOCK_SH)
            self._tell_background()
            if not self.podman.exists(self.tag):
                # (a conversion is not atomic: the other process may build
                # meanwhile, hence the second look)
                fcntl.flock(held, fcntl.LOCK_EX)
                if not self.podman.exists(self.tag):
                    try:
                        base = BaseImage(self.podman)
                        built = Image(self.podman, base, self.folder, tag=self.tag)
                    except Exception as e:
                        # (the next tests fail at once, without building again)
                        self.error = str(e).splitlines()[0] if str(e) else repr(e)
                        raise
                    log.msg(built.summary(base, "by this test"))
                fcntl.flock(held, fcntl.LOCK_SH)
        except BaseException:
            held.close()
            raise
        return held

    def _tell_background(self):
        """Log what the background builder said (built, or why not): the first test to look does."""
        said = self._lock_path + ".log"
        try:
            with open(said) as f:
                text = f.read()
            os.remove(said)
        except FileNotFoundError:
            return  # (none, or another process told it)
        log.msg(text)

    def remove(self):
        """Remove the image, unless another process of the run is using it now."""
        with open(self._lock_path, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return
            self.podman("rmi", "--force", self.tag, check=False)


if __name__ == "__main__":
    _build_for(int(sys.argv[1]))
