"""
The container image's configuration files and examples (issue 30): what
the image reads, and what the Compose and Kubernetes examples give it,
is configuration pypid takes. (The image itself: L{tests.test_e2e_image}.)
"""

import os
import re

from twisted.trial.unittest import SynchronousTestCase

from pypid.config import load_config

FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
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
