"""Tests of L{pypid.core.access.credential_syntax.parse_htpasswd}, of reading an htpasswd file, and of htpasswd users logging in."""

import bcrypt
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pypid.auth.hashes import hash_password
from pypid.auth.verifier import PasswordVerifier
from pypid.config.values import text_of
from pypid.core.access.credential_syntax import parse_htpasswd
from tests.harness.fakes import FAST, write_file

BCRYPT = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$", 1)


class ParseTests(SynchronousTestCase):
    """Reading htpasswd files."""

    def test_accepted(self):
        """bcrypt (any prefix) and argon2id entries; comments and blank lines skipped."""
        argon = hash_password("pw", FAST)
        text = f"# users\n\nalice:{BCRYPT}\nbob:{argon}\n"
        self.assertEqual(parse_htpasswd(text, "users.htpasswd"),
                         {"alice": BCRYPT, "bob": argon})

    def test_weak_refused(self):
        """Weak schemes are refused with the file, line and user named, never the hash."""
        for value, words in (("$apr1$abcdefgh$0123456789abcdefghijkl", "Apache MD5"),
                             ("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA-1"),
                             ("$1$abc$def", "MD5 crypt"),
                             ("$6$salt$hash", "SHA-512 crypt"),
                             ("abJnggxhB/yWI", "DES crypt"),
                             ("hunter2", "plaintext"),
                             ("$2y$10$short", "bcrypt")):
            with self.assertRaises(ValueError) as caught:
                parse_htpasswd(f"ok:{BCRYPT}\ncarol:{value}\n", "users.htpasswd")
            message = str(caught.exception)
            self.assertIn("users.htpasswd:2: user 'carol'", message)
            self.assertIn(words, message)
            self.assertNotIn(value, message)

    def test_all_unusable_at_once(self):
        """
        Several entries that cannot be used are named in one refusal, by
        line, each with its user and what is wrong (never a hash), the
        remedy once, last: not one a start-up.
        """
        text = (f"ok:{BCRYPT}\nbob:$apr1$abcdefgh$0123456789abcdefghijkl\ncarol:hunter2\n"
                "nocolon\n")
        message = str(self.assertRaises(ValueError, parse_htpasswd, text, "users.htpasswd"))
        self.assertEqual(message,
                         "users.htpasswd: lines 2 (user 'bob': Apache MD5 hashes are too weak), "
                         "3 (user 'carol': a plaintext password or an unknown scheme is never "
                         "accepted), 4 (expected user:hash, with a user name of 1 to 64 "
                         "letters, digits, '.', '_', '@' or '-') cannot be used; set each "
                         "password again with htpasswd -B (bcrypt) or pypid-passwd (argon2id)")
        self.assertNotIn("hunter2", message)
        many = "".join(f"u{n}:plain{n}\n" for n in range(25))
        message = str(self.assertRaises(ValueError, parse_htpasswd, many, "f"))
        self.assertIn("10 (user 'u9': a plaintext", message)
        self.assertIn(" and 15 more cannot be used; ", message)
        self.assertNotIn("'u10'", message)

    def test_names_nobody(self):
        """
        A file that names no user (empty, blank, or comments alone: read
        while it is rewritten) is refused, not taken as nobody, whose
        tokens would all end.
        """
        for text in ("", "\n\n", "# the team\n"):
            message = str(self.assertRaises(ValueError, parse_htpasswd, text, "users.htpasswd"))
            self.assertEqual(message, "users.htpasswd names no user (a file read while it is "
                             "written would end every user's tokens); to have none, leave "
                             "[auth] htpasswd empty")

    def test_malformed(self):
        """Lines without a colon, bad names and repeated users are refused."""
        for text in ("nocolon\n", "bad name:x\n", f"a:{BCRYPT}\na:{BCRYPT}\n"):
            self.assertRaises(ValueError, parse_htpasswd, text, "f")


def read_htpasswd(path):
    """An htpasswd file read from disk and parsed, as the configuration reads it."""
    return parse_htpasswd(text_of(path, {}), path)


class ReadTests(SynchronousTestCase):
    """Reading an htpasswd file from disk."""

    def test_read(self):
        """The users of a readable UTF-8 file, with its path named in errors."""
        path = write_file(self.mktemp(), f"alice:{BCRYPT}\n".encode())
        self.assertEqual(read_htpasswd(path), {"alice": BCRYPT})
        write_file(path, b"alice\n")
        self.assertIn(path, str(self.assertRaises(ValueError, read_htpasswd, path)))

    def test_unreadable(self):
        """A missing file, or one that is not UTF-8, is a ValueError naming the file."""
        missing = self.mktemp()
        self.assertIn(f"cannot read {missing}",
                      str(self.assertRaises(ValueError, read_htpasswd, missing)))
        binary = write_file(self.mktemp(), b"alice:\xff\n")
        self.assertEqual(str(self.assertRaises(ValueError, read_htpasswd, binary)),
                         f"{binary} is not UTF-8 text")

    def test_held_as_bytes_refused_as_text(self):
        """
        A file held as it is (a bundle's Latin-1 comments) is refused as
        text all the same, when a key that needs text names it too.
        """
        binary = write_file(self.mktemp(), b"alice:\xff\n")
        files: dict[str, str] = {}
        self.assertEqual(text_of(binary, files, strict=False).encode("utf-8", "surrogateescape"),
                         b"alice:\xff\n")
        self.assertEqual(str(self.assertRaises(ValueError, text_of, binary, files)),
                         f"{binary} is not UTF-8 text")


class BcryptLoginTests(TestCase):
    """A bcrypt user logs in through the verifier (in its thread pool)."""

    def setUp(self):
        self.pool = ThreadPool(1, 1)
        self.pool.start()
        self.addCleanup(self.pool.stop)

    def test_dummy_is_a_real_hash(self):
        """With mostly bcrypt users, an unknown user is checked against a real bcrypt hash."""
        from twisted.internet import reactor
        verifier = PasswordVerifier({"alice": BCRYPT}, reactor, self.pool)
        dummy = verifier._dummy_hash
        self.assertTrue(dummy.startswith("$2b$04$"))
        self.assertFalse(bcrypt.checkpw(b"anything", dummy.encode()))

    async def test_login(self):
        """The right password matches; a wrong one and an unknown user do not."""
        from twisted.internet import reactor
        verifier = PasswordVerifier({"alice": BCRYPT}, reactor, self.pool)
        self.assertIsNotNone(await verifier.authenticate("alice", "s3cret"))
        self.assertIsNone(await verifier.authenticate("alice", "wrong"))
        self.assertIsNone(await verifier.authenticate("nobody", "s3cret"))
