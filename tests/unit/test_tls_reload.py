"""
Tests for what L{pypid.tls} reads, when, and what it refuses: only regular
files of at most L{MAX_FILE_SIZE} (a FIFO refused at once, never waited
on), a reload's files read in the pool and installed after (the latest
reload's only), a certificate that has expired or is not valid yet
refused at start and at reload unless C{allow_expired}, the old one kept
in service, and the files' texts a machine's workers serve (L{HeldTests}).
The clock is a L{Clock}; handshakes run in memory.
"""

import datetime
import os
import shutil
import threading
import time

from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from pypid.tls import MAX_FILE_SIZE, ServerTLS, TLSError, held_reader, held_texts
from tests.harness.fakes import QueuedRun, run_now
from tests.harness.tls import (
    client_context,
    exchange,
    handshake,
    now_clock,
    own_files,
    shared_ca,
)

#: How long a read blocked on a FIFO (the defect these tests guard
#: against) waits before L{fifo_at}'s guard opens the other end, so that
#: such a test fails rather than hangs; a FIFO refused at once never meets it.
FIFO_GUARD = 5.0

DAY = datetime.timedelta(days=1)


def fifo_at(case, path):
    """
    Put a FIFO at C{path}, with no writer. Should something open it to
    read and block, the other end is opened and closed after L{FIFO_GUARD}
    seconds: the read ends with nothing and the test fails, not hangs.
    """
    if os.path.lexists(path):
        os.remove(path)
    os.mkfifo(path)

    def release():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass  # (no reader waits on it: nothing to release)
    guard = threading.Timer(FIFO_GUARD, release)
    guard.daemon = True
    guard.start()
    case.addCleanup(guard.cancel)
    return path


def dates(files):
    """C{(not_before, not_after)} of an issued certificate, as the messages write them."""
    from cryptography import x509
    with open(files.certificate, "rb") as f:
        certificate = x509.load_pem_x509_certificate(f.read())
    return (f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M}",
            f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M}")


def lines_of(events, level=None):
    """The formatted log lines of C{events} (of C{level} only, when given)."""
    return [formatEvent(e) for e in events if level is None or e["log_level"] == level]


class FileTests(SynchronousTestCase):
    """Only regular files of at most L{MAX_FILE_SIZE} bytes are read, at start as at reload."""

    def refused(self, certificate, key, chain=None):
        """Loading fails with one line; return it."""
        tls = ServerTLS(certificate, key, chain, now_clock(), run_now)
        message = str(self.assertRaises(TLSError, tls.load))
        self.assertNotIn("\n", message)
        self.assertIsNone(tls.context)
        return message

    def test_fifo_at_each_path(self):
        """A FIFO at the certificate's, the key's or the chain's path is refused at once."""
        for what in ("certificate", "key", "chain"):
            files, chain = own_files(self)
            paths = {"certificate": files.certificate, "key": files.key, "chain": chain}
            fifo_at(self, paths[what])
            started = time.monotonic()
            self.assertEqual(self.refused(paths["certificate"], paths["key"], paths["chain"]),
                             f"cannot read the TLS {what} {paths[what]}: it is a FIFO, not a "
                             "regular file")
            self.assertLess(time.monotonic() - started, FIFO_GUARD, "waited on the FIFO")

    def test_device(self):
        """A device is refused for what it is (/dev/null would read as an empty file)."""
        files, _ = own_files(self)
        self.assertEqual(self.refused("/dev/null", files.key),
                         "cannot read the TLS certificate /dev/null: it is a character device, "
                         "not a regular file")

    def test_directory(self):
        """A folder at the chain's path is refused for what it is."""
        files, _ = own_files(self)
        folder = os.path.dirname(files.key)
        self.assertEqual(self.refused(files.certificate, files.key, folder),
                         f"cannot read the TLS chain {folder}: it is a directory, not a "
                         "regular file")

    def test_size(self):
        """
        A file over L{MAX_FILE_SIZE} is refused, be it a usable certificate
        padded out; one of exactly that size is read.
        """
        files, _ = own_files(self)
        with open(files.certificate, "rb") as f:
            pem = f.read()
        with open(files.certificate, "wb") as f:
            f.write(pem + b"\n" * (MAX_FILE_SIZE - len(pem)))
        ServerTLS(files.certificate, files.key, None, now_clock(), run_now).load()
        with open(files.certificate, "ab") as f:
            f.write(b"\n")
        self.assertEqual(self.refused(files.certificate, files.key),
                         f"cannot read the TLS certificate {files.certificate}: it is larger "
                         "than 1 MiB, which no certificate, chain or key is")


class DatesTests(SynchronousTestCase):
    """At start, a certificate that has expired or is not valid yet is refused, unless allowed."""

    def test_expired(self):
        """An expired certificate: one line naming the file, its dates and the key to set."""
        files, _ = own_files(self, (-30 * DAY, -DAY))
        tls = ServerTLS(files.certificate, files.key, None, now_clock(), run_now)
        start, end = dates(files)
        self.assertEqual(str(self.assertRaises(TLSError, tls.load)),
                         f"the TLS certificate {files.certificate} has expired: it is valid "
                         f"from {start} to {end} UTC, and clients refuse it (renew it, or set "
                         "[tls] allow_expired = yes to serve it anyway)")
        self.assertIsNone(tls.context)

    def test_not_valid_yet(self):
        """A certificate valid only from tomorrow is refused the same way."""
        files, _ = own_files(self, (DAY, 30 * DAY))
        tls = ServerTLS(files.certificate, files.key, None, now_clock(), run_now)
        start, end = dates(files)
        self.assertIn(f"the TLS certificate {files.certificate} is not valid yet: it is valid "
                      f"from {start} to {end} UTC", str(self.assertRaises(TLSError, tls.load)))

    def test_by_the_clock(self):
        """The clock given decides: a fresh certificate is refused at a time after its end."""
        files, _ = own_files(self)
        late, early = now_clock(), Clock()
        late.advance(40 * 24 * 3600)
        early.advance(time.time() - 2 * 3600)
        self.assertIn("has expired", str(self.assertRaises(
            TLSError, ServerTLS(files.certificate, files.key, None, late, run_now).load)))
        self.assertIn("is not valid yet", str(self.assertRaises(
            TLSError, ServerTLS(files.certificate, files.key, None, early, run_now).load)))

    def test_allowed(self):
        """With allow_expired, an expired certificate is served, with a warning saying so."""
        files, _ = own_files(self, (-30 * DAY, -DAY))
        tls = ServerTLS(files.certificate, files.key, None, now_clock(), run_now,
                        allow_expired=True)
        with capturedLogs() as events:
            tls.load()
        self.assertIsNotNone(tls.context)
        self.assertEqual(lines_of(events, LogLevel.warn), [
            f"Serving it anyway ([tls] allow_expired = yes): the TLS certificate "
            f"{files.certificate} has expired: it is valid from {dates(files)[0]} to "
            f"{dates(files)[1]} UTC, and clients refuse it"])


class ReloadTests(SynchronousTestCase):
    """
    Tests for L{ServerTLS.reload}: new connections get new files, read in
    the pool; files that cannot be used, or a certificate out of its
    dates, change nothing.
    """

    def setUp(self):
        self.files, self.chain = own_files(self)
        self.folder = os.path.dirname(self.files.key)
        self.tls = self.server()

    def server(self, run=run_now, allow_expired=False):
        """A loaded L{ServerTLS} of the test's files, reading in C{run}."""
        tls = ServerTLS(self.files.certificate, self.files.key, self.chain, now_clock(), run,
                        allow_expired)
        tls.load()
        return tls

    def serial_seen(self, tls=None):
        """The serial of the certificate a new connection gets."""
        client, _, errors = handshake(tls or self.tls, client_context())
        self.assertEqual(errors, {})
        return client.get_peer_certificate(as_cryptography=True).serial_number

    def renew(self, valid=None):
        """Issue a new certificate and key at the test's paths."""
        now = datetime.datetime.now(datetime.UTC)
        return shared_ca().issue("server", kind="ec", folder=self.folder,
                                 valid=None if valid is None else (now + valid[0],
                                                                   now + valid[1]))

    def reload(self, tls=None):
        """Reload (in C{run_now}); return whether it took the files and the log lines."""
        with capturedLogs() as events:
            took = self.successResultOf((tls or self.tls).reload())
        return took, events

    def assert_kept(self, *words):
        """A reload keeps the old certificate, with one warning line holding C{words}."""
        context = self.tls.context
        took, events = self.reload()
        self.assertFalse(took)
        self.assertIs(self.tls.context, context)
        self.assertEqual(self.serial_seen(), self.files.serial)
        lines = lines_of(events)
        self.assertEqual(len(lines), 1, lines)
        self.assertEqual(events[0]["log_level"], LogLevel.warn)
        self.assertIn("Cannot reload TLS, still using the certificate loaded before: ", lines[0])
        for word in words:
            self.assertIn(word, lines[0])
        return lines[0]

    def test_new_files_for_new_connections(self):
        """After a reload new connections get the new certificate; an open one keeps working."""
        old_client, old_server, _ = handshake(self.tls, client_context())
        renewed = self.renew()
        self.assertNotEqual(renewed.serial, self.files.serial)
        took, events = self.reload()
        self.assertTrue(took)
        self.assertEqual(self.serial_seen(), renewed.serial)
        self.assertEqual(exchange(old_client, old_server), b"ping")
        lines = lines_of(events)
        self.assertEqual(len(lines), 1)
        self.assertIn(f"Reloaded the TLS certificate {self.files.certificate}", lines[0])
        self.assertIn(f"serial {renewed.serial:x}", lines[0])

    def test_read_in_the_pool(self):
        """
        The files are read when the pool runs the reload's work, not when
        it is asked for; the new context is installed once it is built.
        """
        run = QueuedRun()
        tls = self.server(run)
        reloaded = tls.reload()
        self.assertNoResult(reloaded)
        self.assertEqual(len(run.pending), 1)
        renewed = self.renew()
        self.assertEqual(self.serial_seen(tls), self.files.serial)
        with capturedLogs():
            run.run_all()
        self.assertTrue(self.successResultOf(reloaded))
        self.assertEqual(self.serial_seen(tls), renewed.serial)

    def test_latest_reload_wins(self):
        """A reload whose reading ends after a later one's is not installed over it."""
        run = QueuedRun()
        tls = self.server(run)
        first = tls.reload()
        d, build, args = run.pending.pop(0)
        older = build(*args)  # (the first reload reads the files as they are)
        renewed = self.renew()
        second = tls.reload()
        with capturedLogs():
            run.run_all()
            self.assertTrue(self.successResultOf(second))
            d.callback(older)
        self.assertFalse(self.successResultOf(first))
        self.assertEqual(self.serial_seen(tls), renewed.serial)

    def test_bad_key_keeps_old_context(self):
        """A key that does not match keeps the old context in use, with one warning line."""
        shared_ca().issue("other", kind="ec", folder=self.folder)
        shutil.copy(os.path.join(self.folder, "other.key"), self.files.key)
        self.assert_kept(f"the TLS key {self.files.key} does not match")

    def test_missing_files_keep_old_context(self):
        """A certificate removed (half-way through a renewal) keeps the old context."""
        os.remove(self.files.certificate)
        self.assert_kept(f"cannot read the TLS certificate {self.files.certificate}")

    def test_fifo_keeps_old_context(self):
        """A FIFO at the certificate's, key's or chain's path: refused at once, the old kept."""
        for path in (self.files.certificate, self.files.key, self.chain):
            kept = os.path.join(self.folder, "kept")
            shutil.copy(path, kept)
            fifo_at(self, path)
            self.assert_kept(f"{path}: it is a FIFO, not a regular file")
            os.replace(kept, path)

    def test_expired_keeps_old_context(self):
        """A renewal to an expired certificate is refused, naming its dates; the old is kept."""
        expired = self.renew((-30 * DAY, -DAY))
        start, end = dates(expired)
        self.assert_kept(f"the TLS certificate {self.files.certificate} has expired: it is "
                         f"valid from {start} to {end} UTC")

    def test_not_valid_yet_keeps_old_context(self):
        """A renewal to a certificate valid only from tomorrow is refused too."""
        self.renew((DAY, 30 * DAY))
        self.assert_kept(f"the TLS certificate {self.files.certificate} is not valid yet")

    def test_allowed_expired_taken(self):
        """With allow_expired, a reload takes an expired certificate, with a warning."""
        tls = self.server(allow_expired=True)
        expired = self.renew((-30 * DAY, -DAY))
        took, events = self.reload(tls)
        self.assertTrue(took)
        # (no client takes it: what is served is read from the server's side)
        self.assertEqual(tls.material.certificate.serial_number, expired.serial)
        self.assertIn("Serving it anyway ([tls] allow_expired = yes)",
                      lines_of(events, LogLevel.warn)[0])

    def test_reload_before_load(self):
        """A reload before the listener loaded anything does nothing (the listener will)."""
        tls = ServerTLS(self.files.certificate, self.files.key, None, now_clock(), run_now)
        self.assertFalse(self.successResultOf(tls.reload()))
        self.assertIsNone(tls.context)


class HeldTests(SynchronousTestCase):
    """
    Tests for L{held_texts} and L{held_reader}: a machine's workers serve
    the C{[tls]} files as its supervisor took them, a file renewed on disk
    and not reloaded only at the next C{SIGHUP}, and files it could not
    serve never.
    """

    def setUp(self):
        self.files, self.chain = own_files(self)
        self.folder = os.path.dirname(self.files.key)

    def held(self, before=None):
        """What the supervisor takes of the files as they are now."""
        return held_texts(self.files.certificate, self.files.key, self.chain, False,
                          time.time(), before or {})

    def test_taken_then_served(self):
        """
        The three files are taken when they can be served; a worker started
        after the files were renewed on disk serves those taken, and at a
        reload whatever was taken then.
        """
        texts, refused = self.held()
        self.assertIsNone(refused)
        self.assertEqual(set(texts), {self.files.certificate, self.files.key, self.chain})
        with open(self.files.key, "rb") as f:
            self.assertEqual(texts[self.files.key].encode("latin-1"), f.read())
        in_force = dict(texts)
        renewed = shared_ca().issue("server", kind="ec", folder=self.folder)
        tls = ServerTLS(self.files.certificate, self.files.key, self.chain, now_clock(), run_now,
                        held=lambda: in_force)
        tls.load()
        self.assertEqual(tls.material.certificate.serial_number, self.files.serial)
        self.assertTrue(self.successResultOf(tls.reload()))
        self.assertEqual(tls.material.certificate.serial_number, self.files.serial)
        in_force.update(self.held()[0])  # (the next SIGHUP's)
        self.assertTrue(self.successResultOf(tls.reload()))
        self.assertEqual(tls.material.certificate.serial_number, renewed.serial)

    def test_refused_keeps_before(self):
        """
        Files that cannot be served (a key that is not the certificate's,
        one missing, an expired certificate) leave the texts taken before,
        with the reason; with none before, none.
        """
        before, _ = self.held()
        other = shared_ca().issue("other", kind="ec", folder=self.folder)
        shutil.copy(other.key, self.files.key)
        self.assertEqual(self.held(before),
                         (before, f"the TLS key {self.files.key} does not match the "
                                  f"certificate {self.files.certificate}"))
        self.assertEqual(self.held()[0], {})
        os.remove(self.chain)
        self.assertIn(f"cannot read the TLS chain {self.chain}", self.held(before)[1])
        now = datetime.datetime.now(datetime.UTC)
        shared_ca().issue("server", kind="ec", folder=self.folder,
                          valid=(now - 30 * DAY, now - DAY))
        shutil.copy(self.files.chain, self.chain)
        texts, refused = self.held(before)
        self.assertEqual(texts, before)
        self.assertIn("has expired", refused)

    def test_weak_key_refused(self):
        """
        Files OpenSSL would refuse to serve with (an RSA key of 1,024 bits)
        are refused like the others, not taken for the workers to fail on.
        """
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
        before, _ = self.held()
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak.example")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                       .public_key(key.public_key()).serial_number(7)
                       .not_valid_before(now - DAY).not_valid_after(now + DAY)
                       .sign(key, hashes.SHA256()))
        with open(self.files.certificate, "wb") as f:
            f.write(certificate.public_bytes(serialization.Encoding.PEM))
        with open(self.files.key, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        texts, refused = self.held(before)
        self.assertEqual(texts, before)
        self.assertIn(f"cannot use the TLS certificate {self.files.certificate}: ", refused)

    def test_not_held_read_from_disk(self):
        """A file the machine holds no text of is read as it is (a FIFO still refused)."""
        tls = ServerTLS(self.files.certificate, self.files.key, self.chain, now_clock(), run_now,
                        held=dict)
        tls.load()
        self.assertEqual(tls.material.certificate.serial_number, self.files.serial)
        fifo_at(self, self.chain)
        self.assertRaises(TLSError, held_reader({}), self.chain, "chain")
