"""
pypid's container image (issue 30), built from the checkout and run with
Podman as an operator would: twine uploads to it and pip installs from
it; it stops on C{SIGTERM} having written its snapshot and audit log; a
new container on the same volume serves the same files; it runs as a
user that is not root, on a read-only root file system; its health check
turns healthy; its tools work through C{podman exec}; it takes its
configuration from a mounted file or from the environment alone; and it
serves HTTPS with a mounted certificate that C{SIGHUP} reloads.

The image is built once for the run (L{tests.harness.image}: on a base made
from Debian's packages, kept between runs on one machine), in the
background from the moment trial loads this module, so that no worker of
C{trial -j} waits for it while the other builds it
(L{tests.harness.image.build_in_background}), and removed after the last
test.
"""

import json
import os
import socket
import ssl
import tarfile
import time
import types

from twisted.python import log
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.hashes import hash_password
from tests import CHECKOUT
from tests.harness.distributions import make_wheel
from tests.harness.e2e import Clients, free_port, http, installed, write_files
from tests.harness.image import Podman, RunImage, build_in_background
from tests.harness.shared import class_shared
from tests.harness.tlsca import TestCA, serial_of

USER, PASSWORD = "admin", "container-pw"
WHEEL = make_wheel("boxed-app", "1.0")

build_in_background()

#: Seconds a container may take to answer its health check.
HEALTHY_WITHIN = 90


class ImageTests(SynchronousTestCase):
    """The image, built once, run several ways."""

    def setUp(self):
        image = class_shared(self, "image", self._image, RunImage.remove)
        self.addCleanup(image.hold().close)
        self.podman = image.podman
        self.image = image
        self.clients = Clients(os.path.abspath(self.mktemp()))

    def _image(self):
        folder = os.path.abspath("image-build")
        return RunImage(Podman(folder), folder)

    # -- helpers ---------------------------------------------------------------------------

    def volume(self):
        """A new named volume (removed after the test); its name and host folder."""
        name = f"pypid-test-{os.getpid()}-{time.monotonic_ns()}"
        self.podman("volume", "create", name)
        self.addCleanup(self.podman, "volume", "rm", "--force", name, check=False)
        path = self.podman("volume", "inspect", "--format", "{{.Mountpoint}}", name).stdout
        return name, path.strip()

    def config(self, text):
        """A folder holding C{pypid.ini} with C{text}, to mount at /etc/pypid."""
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        with open(os.path.join(folder, "pypid.ini"), "w") as f:
            f.write(text)
        os.chmod(folder, 0o755)
        os.chmod(os.path.join(folder, "pypid.ini"), 0o644)
        return folder

    def start(self, volume, port, *options, container_port=8080):
        """
        C{podman run} the image detached, its port published on loopback;
        the container's name and when C{podman run} began.
        """
        name = f"pypid-test-{os.getpid()}-{time.monotonic_ns()}"
        began = time.monotonic()
        self.podman("run", "--detach", "--name", name, "--read-only",
                    "--read-only-tmpfs=false", "--volume", f"{volume}:/var/lib/pypid",
                    "--publish", f"127.0.0.1:{port}:{container_port}", *options,
                    self.image.tag)
        self.addCleanup(self.podman, "rm", "--force", "--volumes", "--time", "0", name,
                       check=False)
        return name, began

    def healthy(self, name, began):
        """Wait until the image's own health check passes; the seconds since C{began}."""
        deadline = time.monotonic() + HEALTHY_WITHIN
        while time.monotonic() < deadline:
            if self.podman("healthcheck", "run", name, check=False).returncode == 0:
                return time.monotonic() - began
            time.sleep(0.2)
        logs = self.podman("logs", name, check=False)
        self.fail(f"{name} not healthy within {HEALTHY_WITHIN} s:\n{logs.stdout[-2000:]}"
                  f"{logs.stderr[-2000:]}")

    def users_ini(self, extra=""):
        """A mounted configuration: the image's paths and port, and the admin."""
        return ("[pypid]\nlisten = tcp:8080:interface=0.0.0.0\n"
                "snapshot = /var/lib/pypid/index.json\nsnapshot_interval = 3600\n"
                "[storage]\npath = /var/lib/pypid/packages\n"
                f"[auth]\nupload = authenticated\nadmins = {USER}\n"
                f"[users]\n{USER} = {hash_password(PASSWORD)}\n" + extra)

    # -- tests -----------------------------------------------------------------------------

    def test_lifecycle(self):
        """
        Upload with twine, install with pip, run the tools with exec; stop
        with SIGTERM (snapshot and audit log written, exit 0); a new
        container on the volume installs again. Not root, read-only root.
        """
        volume, data = self.volume()
        config = self.config(self.users_ini())
        port = free_port()
        name, began = self.start(volume, port, "--volume", f"{config}:/etc/pypid:ro")
        seconds = self.healthy(name, began)
        log.msg(f"pypid image: healthy {seconds:.1f} s after podman run")
        url = f"http://127.0.0.1:{port}/"
        [path] = write_files(os.path.abspath(self.mktemp()), WHEEL)
        self.clients.twine_upload(types.SimpleNamespace(url=url), [path],
                                  user=USER, password=PASSWORD)
        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, url + "simple/", "boxed-app")
        self.assertEqual(installed(target), {"boxed-app": "1.0"})

        # Not root, on a read-only root file system.
        status = self.podman("exec", name, "cat", "/proc/1/status").stdout
        uid = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
        self.assertEqual(set(uid), {"10001"})
        self.assertIn("twistd", self.podman("exec", name, "cat", "/proc/1/cmdline").stdout)
        self.assertNotEqual(self.podman("exec", name, "touch", "/opt/x", check=False)
                            .returncode, 0)
        # No compiler, no pip, no cache left in the image.
        found = self.podman("exec", name, "sh", "-c",
                            "command -v cc gcc pip pip3; ls -A /root/.cache ~/.cache",
                            check=False).stdout
        self.assertEqual(found, "")

        # The tools, through exec.
        hashed = self.podman("exec", "-i", name, "pypid-passwd", input="s3cret\n").stdout
        self.assertTrue(hashed.startswith("$argon2id$"), hashed)
        files = self.podman("exec", "--env", f"PYPID_PASSWORD={PASSWORD}", name,
                            "pypid-admin", "--server", "http://127.0.0.1:8080/", "--user",
                            USER, "files", "boxed-app").stdout
        self.assertIn(WHEEL[0], files)
        token = self.podman("exec", "--env", f"PYPID_PASSWORD={PASSWORD}", name,
                            "pypid-token", "--server", "http://127.0.0.1:8080/", "--user",
                            USER, "issue", "--actions", "upload", "--expires", "1d",
                            "--description", "ci").stdout.strip()
        self.assertTrue(token.startswith("pypid-"), token)

        # A backup, from inside the running container, onto the volume.
        self.podman("exec", name, "pypid-admin", "--config", "/etc/pypid/pypid.ini", "export",
                    "--to", "/var/lib/pypid/backup.tar.gz", timeout=300)
        with tarfile.open(os.path.join(data, "backup.tar.gz")) as bundle:
            self.assertIn(f"files/{WHEEL[0]}", bundle.getnames())

        # SIGTERM: the snapshot and the audit log are written before exit.
        stopped = time.monotonic()
        self.podman("stop", "--time", "30", name)
        log.msg(f"pypid image: stopped in {time.monotonic() - stopped:.1f} s")
        state = json.loads(self.podman("inspect", name).stdout)[0]["State"]
        self.assertEqual(state["ExitCode"], 0, state)
        with open(os.path.join(data, "index.json"), "rb") as f:
            self.assertIn(WHEEL[0].encode(), f.read())
        audit = os.path.join(data, "packages", ".pypid", "audit")
        written = b"".join(open(os.path.join(audit, n), "rb").read() for n in os.listdir(audit))
        self.assertIn(WHEEL[0].encode(), written)
        self.assertIn(b"token", written)
        logs = self.podman("logs", name).stdout + self.podman("logs", name).stderr
        self.assertIn("Server Shut Down", logs)

        # A new container on the same volume.
        name, began = self.start(volume, port, "--volume", f"{config}:/etc/pypid:ro")
        self.healthy(name, began)
        again = os.path.abspath(self.mktemp())
        self.clients.pip_install(again, url + "simple/", "boxed-app")
        self.assertEqual(installed(again), {"boxed-app": "1.0"})
        logs = self.podman("logs", name).stdout + self.podman("logs", name).stderr
        self.assertIn("(from the snapshot", logs)

        # The documented restore, into a new volume, by the image's own
        # Python (Debian 12's 3.11.2 when built from Debian: its tarfile
        # has no extraction filters).
        self.podman("stop", "--time", "30", name)
        restored, _ = self.volume()
        self.podman("run", "--rm", "-v", f"{restored}:/var/lib/pypid", "-v", f"{data}:/backup:ro",
                    "--entrypoint", "pypid-admin", self.image.tag, "--config",
                    "/usr/local/share/pypid/container.ini", "import", "/backup/backup.tar.gz",
                    timeout=300)
        name, began = self.start(restored, port, "--volume", f"{config}:/etc/pypid:ro")
        self.healthy(name, began)
        back = os.path.abspath(self.mktemp())
        self.clients.pip_install(back, url + "simple/", "boxed-app")
        self.assertEqual(installed(back), {"boxed-app": "1.0"})

    def test_documented_start(self):
        """
        docs/container.rst's start: a copy of etc/container/pypid.ini (its
        [users] empty), a user added with the hash the image's pypid-passwd
        prints, and that user uploads to the container it configures.
        """
        with open(os.path.join(CHECKOUT, "docs", "container.rst"), encoding="utf-8") as f:
            docs = f.read()
        self.assertIn("cp etc/container/pypid.ini pypid.ini", docs)
        self.assertIn("docker run --rm -i --entrypoint pypid-passwd pypid < ", docs)
        with open(os.path.join(CHECKOUT, "etc", "container", "pypid.ini"),
                  encoding="utf-8") as f:
            shipped = f.read()
        hashed = self.podman("run", "--rm", "-i", "--entrypoint", "pypid-passwd",
                             self.image.tag, input=PASSWORD + "\n").stdout.strip()
        self.assertTrue(hashed.startswith("$argon2id$"), hashed)
        self.assertIn("\n[users]\n", shipped)
        config = self.config(shipped.replace("\n[users]\n", f"\n[users]\nalice = {hashed}\n"))
        volume, _ = self.volume()
        port = free_port()
        name, began = self.start(volume, port, "--volume", f"{config}:/etc/pypid:ro")
        self.healthy(name, began)
        [path] = write_files(os.path.abspath(self.mktemp()), WHEEL)
        self.clients.twine_upload(types.SimpleNamespace(url=f"http://127.0.0.1:{port}/"),
                                  [path], user="alice", password=PASSWORD)

    def test_environment_only(self):
        """
        Without a mounted file, the image's own configuration and
        PYPID_<SECTION>_<KEY> variables: data on the volume, port 8080.
        """
        volume, data = self.volume()
        port = free_port()
        name, began = self.start(volume, port, "--env", "PYPID_AUTH_READ=authenticated",
                                 "--env", "PYPID_PYPID_BASE_URL=https://pypi.internal.example/")
        self.healthy(name, began)
        self.assertEqual(http("GET", f"http://127.0.0.1:{port}/simple/").status, 401)
        self.assertTrue(os.path.isdir(os.path.join(data, "packages")))

    def test_https_reload(self):
        """HTTPS from a mounted certificate and key; SIGHUP takes a renewed one."""
        volume, _ = self.volume()
        ca = TestCA(os.path.abspath(self.mktemp()))
        config = self.config(self.users_ini(
            "[tls]\ncertificate = /etc/pypid/tls/server.fullchain\n"
            "key = /etc/pypid/tls/server.key\n").replace(
            "listen = tcp:8080:interface=0.0.0.0", "listen = https:8443:interface=0.0.0.0"))
        # (the files must be readable by the image's user, uid 10001)
        tls = os.path.join(config, "tls")
        first = ca.issue("server", folder=tls)
        for path in os.listdir(tls):
            os.chmod(os.path.join(tls, path), 0o644)
        os.chmod(tls, 0o755)
        port = free_port()
        name, began = self.start(volume, port, "--volume", f"{config}:/etc/pypid:ro",
                                 "--env", "PYPID_HEALTH_URL=https://127.0.0.1:8443/health",
                                 container_port=8443)
        self.healthy(name, began)
        context = ssl.create_default_context(cafile=ca.root_path)

        def served_serial():
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                with context.wrap_socket(sock, server_hostname="localhost") as tls_sock:
                    return serial_of(tls_sock.getpeercert(binary_form=True))
        self.assertEqual(served_serial(), first.serial)
        renewed = ca.issue("server", folder=tls)
        for path in os.listdir(tls):
            os.chmod(os.path.join(tls, path), 0o644)
        self.podman("kill", "--signal", "HUP", name)
        deadline = time.monotonic() + 30
        while served_serial() != renewed.serial and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(served_serial(), renewed.serial)
