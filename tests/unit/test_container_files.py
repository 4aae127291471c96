"""
The container image's configuration files and examples (issue 30): what
the image reads, and what the Compose and Kubernetes examples give it,
is configuration pypid takes. (The image itself: L{tests.e2e.test_image}.)
"""

import os
import re

from twisted.trial.unittest import SynchronousTestCase

from pypid.config import load_config
from tests import CHECKOUT

FOLDER = os.path.join(CHECKOUT,
                      "etc", "container")


class ContainerFilesTests(SynchronousTestCase):
    """The files of C{etc/container/}."""

    def test_image_configuration(self):
        """The image's own configuration: the volume's paths, port 8080 on every address."""
        config = load_config(os.path.join(FOLDER, "container.ini"))
        self.assertEqual(config.server.listen, ("tcp:8080:interface=0.0.0.0",))
        self.assertEqual(config.server.snapshot, "/var/lib/pypid/index.json")
        self.assertEqual(config.storage.path, "/var/lib/pypid/packages")

    def test_example_configuration(self):
        """The configuration to mount loads, with the same paths and port."""
        config = load_config(os.path.join(FOLDER, "pypid.ini"))
        self.assertEqual(config.server.listen, ("tcp:8080:interface=0.0.0.0",))
        self.assertEqual(config.storage.path, "/var/lib/pypid/packages")

    def test_compose_environment(self):
        """Every variable the Compose file sets, and every one it shows commented, is taken."""
        with open(os.path.join(FOLDER, "compose.yaml")) as f:
            text = f.read()
        variables = dict(re.findall(r"^\s*#?\s*(PYPID_[A-Z0-9_]+):\s*(\S+)", text, re.M))
        self.assertIn("PYPID_AUTH_READ", variables)
        self.assertIn("PYPID_S3_BUCKET", variables)
        # (the placeholders of secrets, and an S3 backend without a reachable
        # bucket, are values the loader takes: it checks shapes, not buckets)
        environ = {k: ("x" if v == "..." else v) for k, v in variables.items()}
        config = load_config(os.path.join(FOLDER, "pypid.ini"), environ=environ)
        self.assertEqual(config.storage.backend, "s3")
        self.assertEqual(config.auth.read, "everyone")

    def test_kubernetes_probes(self):
        """The Kubernetes example probes /health on the port the image listens on."""
        with open(os.path.join(FOLDER, "kubernetes.yaml")) as f:
            text = f.read()
        self.assertEqual(len(re.findall(r"httpGet: \{path: /health, port: http\}", text)), 3)
        self.assertIn("containerPort: 8080", text)
        self.assertIn("runAsUser: 10001", text)
        self.assertIn("readOnlyRootFilesystem: true", text)

    def test_front_nginx(self):
        """
        The Compose file's front (nginx terminating TLS with HTTP/2, issue
        61) has a configuration nginx takes (C{nginx -t}, with this
        machine's paths), proxying to pypid's port; tests/bench/bench_install.py
        --servers h2proxy runs that set-up and measures it.
        """
        with open(os.path.join(FOLDER, "compose.yaml")) as f:
            compose = f.read()
        self.assertIn("./nginx.conf:/etc/nginx/nginx.conf:ro", compose)
        with open(os.path.join(FOLDER, "nginx.conf")) as f:
            conf = f.read()
        self.assertIn("listen 443 ssl http2;", conf)
        self.assertIn("server pypid:8080;", conf)
        from tests.harness import system
        from tests.harness.tlsca import TestCA
        [nginx] = system.require({"nginx": "nginx"}).values()
        folder = os.path.abspath(self.mktemp())
        tls = os.path.join(folder, "tls")
        os.makedirs(tls)
        files = TestCA(os.path.join(folder, "ca")).issue(name="front")
        with open(os.path.join(tls, "fullchain.pem"), "wb") as out:
            for path in (files.certificate, files.chain):
                with open(path, "rb") as f:
                    out.write(f.read())
        with open(files.key, "rb") as f, open(os.path.join(tls, "privkey.pem"), "wb") as out:
            out.write(f.read())
        # (the container's paths and the service's name, for this machine)
        local = (conf.replace("/etc/nginx/tls", tls).replace("server pypid:8080;",
                                                             "server 127.0.0.1:8080;")
                 .replace("events {", f"pid {folder}/nginx.pid;\nerror_log {folder}/error.log;"
                          "\nevents {", 1))
        path = os.path.join(folder, "nginx.conf")
        with open(path, "w") as f:
            f.write(local)
        import subprocess
        checked = subprocess.run([nginx, "-t", "-p", folder, "-c", path], capture_output=True,
                                 check=False)
        self.assertEqual(checked.returncode, 0, checked.stderr.decode("utf-8", "replace"))
