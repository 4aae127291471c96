"""
Tests for L{pypid.cli.passwd}, the C{pypid-passwd} command.
"""

import io

from argon2 import PasswordHasher
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth import basic as credentials
from pypid.auth import hashes
from pypid.auth.basic import MAX_PASSWORD_BYTES
from pypid.cli import passwd
from pypid.core.access.credential_syntax import parse_hash
from tests.harness.fakes import FAST


class FakeTerminal(io.StringIO):
    """A standard input that claims to be a terminal."""

    def isatty(self):
        """Say this is a terminal, so the password is asked for with getpass."""
        return True


class FakeBinaryStdin(io.TextIOWrapper):
    """A standard input with bytes underneath, as C{sys.stdin} has."""

    def __init__(self, data):
        super().__init__(io.BytesIO(data), encoding="utf-8")


class PasswdTests(SynchronousTestCase):
    """Tests for L{passwd.main}."""

    def setUp(self):
        self.patch(passwd, "hash_password", lambda p: hashes.hash_password(p, FAST))
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()

    def run_main(self, stdin, argv=()):
        """Run the command with C{stdin}, returning its exit code."""
        return passwd.main(list(argv), stdin, self.stdout, self.stderr)

    def assert_hash_of(self, password):
        """Assert stdout holds exactly one line: a hash of C{password}."""
        output = self.stdout.getvalue()
        self.assertTrue(output.endswith("\n"))
        [line] = output.splitlines()
        parse_hash(line)
        self.assertTrue(PasswordHasher().verify(line, password))

    def test_pipe(self):
        """A password piped in gives one hash line that verifies it, and nothing else."""
        self.assertEqual(self.run_main(io.StringIO("s3cret pass \n")), 0)
        self.assert_hash_of("s3cret pass ")
        self.assertEqual(self.stderr.getvalue(), "")

    def test_pipe_without_newline(self):
        """A password without a trailing newline is taken whole."""
        self.assertEqual(self.run_main(io.StringIO("s3cret")), 0)
        self.assert_hash_of("s3cret")

    def test_pipe_first_line_only(self):
        """Only the first line is read, with a Windows line ending removed."""
        self.assertEqual(self.run_main(io.StringIO("first\r\nsecond\n")), 0)
        self.assert_hash_of("first")

    def test_pipe_bytes_decoded_like_the_server(self):
        """Bytes that are not UTF-8 are decoded as latin-1, as the server does."""
        self.assertEqual(self.run_main(FakeBinaryStdin(b"p\xe4ss\n")), 0)
        self.assert_hash_of("p\xe4ss")
        self.assertEqual(credentials.parse_basic(b"Basic YWxpY2U6cORzcw==")[1], "p\xe4ss")

    def test_pipe_utf8_bytes(self):
        """UTF-8 bytes on standard input are decoded as UTF-8."""
        self.assertEqual(self.run_main(FakeBinaryStdin("pässwörd\n".encode())), 0)
        self.assert_hash_of("pässwörd")

    def test_empty(self):
        """
        An empty password is refused with exit code 1 and no output; no
        line at all says how to give one, with exit code 2.
        """
        self.assertEqual(self.run_main(io.StringIO("\n")), 1)
        self.assertIn("empty", self.stderr.getvalue())
        self.assertEqual(self.run_main(io.StringIO("")), 2)
        self.assertIn("give it as one line on standard input", self.stderr.getvalue())
        self.assertEqual(self.stdout.getvalue(), "")

    def test_too_long(self):
        """A password over the limit is refused with exit code 1."""
        self.assertEqual(self.run_main(io.StringIO("x" * (MAX_PASSWORD_BYTES + 1))), 1)
        self.assertEqual(self.stdout.getvalue(), "")
        self.assertIn("longer", self.stderr.getvalue())

    def fake_getpass(self, *answers):
        """Patch getpass to give C{answers} in turn, recording the prompts."""
        prompts = []
        replies = iter(answers)

        def getpass(prompt, stream=None):
            prompts.append(prompt)
            return next(replies)

        self.patch(passwd, "getpass", getpass)
        return prompts

    def test_terminal_match(self):
        """On a terminal the password is asked twice and, when both match, hashed."""
        prompts = self.fake_getpass("s3cret", "s3cret")
        self.assertEqual(self.run_main(FakeTerminal()), 0)
        self.assertEqual(prompts, ["Password: ", "Repeat password: "])
        self.assert_hash_of("s3cret")

    def test_terminal_mismatch(self):
        """On a terminal two different answers are refused with exit code 1."""
        self.fake_getpass("s3cret", "s3creT")
        self.assertEqual(self.run_main(FakeTerminal()), 1)
        self.assertEqual(self.stdout.getvalue(), "")
        self.assertIn("do not match", self.stderr.getvalue())

    def test_terminal_empty(self):
        """On a terminal an empty password is refused with exit code 1."""
        self.fake_getpass("", "")
        self.assertEqual(self.run_main(FakeTerminal()), 1)
        self.assertIn("empty", self.stderr.getvalue())

    def test_terminal_interrupted(self):
        """Ctrl-D (no password given: 2) or Ctrl-C (1) at the prompt: no traceback."""
        for error, status in ((EOFError, 2), (KeyboardInterrupt, 1)):
            def getpass(prompt, stream=None, error=error):
                raise error()

            self.patch(passwd, "getpass", getpass)
            self.assertEqual(self.run_main(FakeTerminal()), status)
        self.assertEqual(self.stdout.getvalue(), "")

    def test_help(self):
        """C{--help} exits 0 and shows how to use the hash in the configuration."""
        self.assertEqual(self.run_main(io.StringIO(), ["--help"]), 0)
        text = self.stdout.getvalue()
        self.assertIn("pypid-passwd", text)
        self.assertIn("[users]\n    alice = <the hash>", text)

    def test_bad_argument(self):
        """An unknown argument is a usage error, exit code 2, on stderr."""
        self.assertEqual(self.run_main(io.StringIO("x\n"), ["--frobnicate"]), 2)
        self.assertEqual(self.stdout.getvalue(), "")
        self.assertIn("--frobnicate", self.stderr.getvalue())
