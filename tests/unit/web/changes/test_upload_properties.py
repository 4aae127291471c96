"""
Property-based tests of uploads (hypothesis): valid wheels, sdists and
multipart bodies are mutated at random, sent through the real site and
request classes (in memory, with the in-memory storage), and three things
must hold for every one of them:

  - the server never answers 5xx (only 200, or a 4xx with a reason);
  - a file it accepts passes the upload rules, as checked here by a second,
    independent reading with the standard library (not pypid's code), and is
    stored byte for byte as sent; a file it refuses leaves nothing behind;
  - an example never takes longer than L{DEADLINE} (hypothesis' deadline).

The number of examples is C{PYPID_HYPOTHESIS_EXAMPLES} per test (default
200, derandomized so CI runs the same examples each time); a longer random
run is C{PYPID_HYPOTHESIS_EXAMPLES=20000 PYPID_HYPOTHESIS_RANDOM=1}.
"""

import base64
import datetime
import gzip
import hashlib
import io
import os
import posixpath
import shutil
import tarfile
import tempfile
import zipfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.hashes import hash_password
from pypid.auth.policy import AccessModel
from pypid.auth.verifier import PasswordVerifier
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.storage.base.interface import MemoryFile
from pypid.web.app import build_web
from pypid.web.identity.gates import Gates
from pypid.web.web_inputs import SiteSettings
from tests.harness.distributions import make_sdist_zip, metadata_text, wheel_text
from tests.harness.fakes import (
    FAST,
    multipart_body,
    one_index,
    run_in_pool_now,
    run_now,
    site_treq,
    twine_fields,
)
from tests.harness.memory_storage import MemoryStorage

EXAMPLES = int(os.environ.get("PYPID_HYPOTHESIS_EXAMPLES", "200"))
DEADLINE = datetime.timedelta(seconds=5)
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE,
    derandomize=not os.environ.get("PYPID_HYPOTHESIS_RANDOM"),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PASSWORD = "correct horse"
AUTH = b"Basic " + base64.b64encode(f"alice:{PASSWORD}".encode())
USERS = {"alice": hash_password(PASSWORD, FAST)}


# -- valid archives to start from --------------------------------------------------


def _wheel(tag="py3-none-any", compression=zipfile.ZIP_STORED, extra=()):
    """A valid wheel of holy-grail 1.0, stored (so byte mutations reach its headers)."""
    info = "holy_grail-1.0.dist-info"
    members = [("holy_grail/__init__.py", b"X = 1\n"), *extra,
               (f"{info}/METADATA", metadata_text("Holy-Grail", "1.0").encode()),
               (f"{info}/WHEEL", wheel_text(tag).encode()),
               (f"{info}/RECORD", b"")]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return f"holy_grail-1.0-{tag}.whl", buf.getvalue()


def _tar(members):
    """An uncompressed tar stream of C{(name, data, type, linkname)} members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, data, kind, link in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tf.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return buf.getvalue()


SDIST_MEMBERS = [
    ("holy_grail-1.0/PKG-INFO", metadata_text("Holy-Grail", "1.0", metadata_version="2.2").encode(),
     tarfile.REGTYPE, ""),
    ("holy_grail-1.0/setup.py", b"from setuptools import setup\nsetup()\n", tarfile.REGTYPE, ""),
    ("holy_grail-1.0/holy_grail", b"", tarfile.DIRTYPE, ""),
    ("holy_grail-1.0/holy_grail/__init__.py", b"X = 1\n", tarfile.REGTYPE, ""),
]

WHEELS = [_wheel(), _wheel("py2.py3-none-any"), _wheel(compression=zipfile.ZIP_DEFLATED),
          _wheel("cp312-cp312-manylinux_2_17_x86_64")]
SDIST_TAR = _tar(SDIST_MEMBERS)
SDIST_ZIP = make_sdist_zip("Holy-Grail", "1.0")


# -- mutations ------------------------------------------------------------------------

def _mutation():
    """One change to a byte string, as a function of it."""
    position = st.floats(0, 1, allow_nan=False)

    def at(data, where):
        return min(int(where * len(data)), len(data))

    flip = st.tuples(position, st.integers(0, 255)).map(
        lambda t: lambda d: d[:at(d, t[0])] + bytes([t[1]]) + d[at(d, t[0]) + 1:])
    delete = st.tuples(position, st.integers(1, 64)).map(
        lambda t: lambda d: d[:at(d, t[0])] + d[at(d, t[0]) + t[1]:])
    insert = st.tuples(position, st.binary(min_size=1, max_size=64)).map(
        lambda t: lambda d: d[:at(d, t[0])] + t[1] + d[at(d, t[0]):])
    truncate = position.map(lambda p: lambda d: d[:at(d, p)])
    append = st.binary(min_size=1, max_size=600).map(lambda b: lambda d: d + b)
    prepend = st.binary(min_size=1, max_size=64).map(lambda b: lambda d: b + d)
    # a slice copied elsewhere: duplicated headers, overlapping entries
    copy = st.tuples(position, position, st.integers(1, 200)).map(
        lambda t: lambda d: (d[:at(d, t[1])] + d[at(d, t[0]):at(d, t[0]) + t[2]] + d[at(d, t[1]):]))
    # a 16- or 32-bit field set to a boundary value: sizes, counts, offsets
    field = st.tuples(position, st.sampled_from([0, 1, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF]),
                      st.sampled_from([2, 4])).map(
        lambda t: lambda d: (d[:at(d, t[0])] + (t[1] & ((1 << (8 * t[2])) - 1)).to_bytes(t[2], "little")
                             + d[at(d, t[0]) + t[2]:]))
    return st.one_of(flip, delete, insert, truncate, append, prepend, copy, field)


MUTATIONS = st.lists(_mutation(), min_size=1, max_size=4)
# (none at all too: hostile members alone)
SOME_MUTATIONS = st.lists(_mutation(), min_size=0, max_size=3)


def _apply(data, mutations):
    for mutate in mutations:
        data = mutate(data)
    return data


# tar members an attacker would write: links, devices, odd names
_NAMES = st.sampled_from([
    "holy_grail-1.0/x", "holy_grail-1.0/PKG-INFO", "holy_grail-1.0/../x", "/etc/x", "../x",
    "other-1.0/x", "holy_grail-1.0/a/../../x", "./holy_grail-1.0/setup.py", "holy_grail-1.0//setup.py",
    "holy_grail-1.0/d\\..\\x", "holy_grail-1.0/\x00x",
])
_LINKS = st.sampled_from(["", "x", "../x", "/etc/passwd", "..", "holy_grail-1.0/setup.py",
                          "setup.py", "../../holy_grail-1.0/setup.py", "other-1.0/x"])
_TYPES = st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                          tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
TAR_EXTRAS = st.lists(st.tuples(_NAMES, st.binary(max_size=20), _TYPES, _LINKS), max_size=3)

# zip members an attacker would add to a wheel
_ZIP_NAMES = st.sampled_from([
    "holy_grail/__init__.py", "holy_grail-1.0.dist-info/WHEEL", "holy_grail-1.0.dist-info/METADATA",
    # (no NUL: zipfile cuts a name there when writing; tests/unit/core/dists/test_zipcheck.py has one)
    "../evil.py", "/abs.py", "holy_grail\\win.py", "other-1.0.dist-info/METADATA",
    "HOLY_GRAIL/__init__.py", "holy_grail/__init__.py/",
])
WHEEL_TEXTS = st.sampled_from([
    None, wheel_text("py3-none-any"), wheel_text("cp312-cp312-win_amd64"),
    "Wheel-Version: 2.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n folded\n",
    "garbage", "",
])


# -- the server, fresh for each example -------------------------------------------------

class Server:
    """pypid's site over in-memory storage, with one user who may upload."""

    def __init__(self, spool):
        self.clock = Clock()
        self.clock.advance(1767225600)
        self.storage = MemoryStorage(spool, self.clock)
        self.storage.prepare()
        self.index = Index(file_url_for(None))
        verifier = PasswordVerifier(USERS, self.clock, None, run_in_pool=run_in_pool_now)
        self.access = Gates(AccessModel(read="everyone"), verifier)
        self.web = build_web(one_index(self.index, self.storage, self.clock), self.access, run_now,
                             self.clock,
                             SiteSettings(max_upload_size=1 << 20))
        self.client = site_treq(self.web.site)

    def post(self, content_type, body, testcase):
        """POST C{body} to /legacy/ and return C{(code, body)}."""
        response = testcase.successResultOf(self.client.request(
            "POST", "http://pypi.test/legacy/", data=body,
            headers={"Content-Type": content_type, "Authorization": AUTH}))
        return response.code, testcase.successResultOf(response.content())


def upload_body(filename, data, **fields):
    """The multipart body twine sends for C{filename}."""
    extra = {} if filename.endswith(".whl") else {"filetype": "sdist", "pyversion": "source"}
    extra.update(fields)
    return multipart_body(twine_fields("Holy-Grail", "1.0", data, **extra),
                          [("content", filename, data)])


# -- the independent check of an accepted file ---------------------------------------

def independent_check(testcase, filename, data):
    """
    Assert, with the standard library and packaging only, that C{data}
    follows the upload rules: what pypid's own checks enforce, read another
    way.
    """
    if filename.endswith((".whl", ".zip")):
        _check_zip_independently(testcase, filename, data)
    else:
        _check_tar_independently(testcase, data)


def _check_zip_independently(testcase, filename, data):
    zf = zipfile.ZipFile(io.BytesIO(data))
    infos = zf.infolist()
    names = [i.filename for i in infos]
    testcase.assertEqual(len(names), len(set(names)), "duplicate names")
    testcase.assertEqual(zf.comment, b"", "a comment")
    # bytes before the first entry, or between entries, or after the end record
    testcase.assertEqual(min(i.header_offset for i in infos), 0)
    for info in infos:
        testcase.assertFalse(info.flag_bits & 1, "encrypted")
        testcase.assertIn(info.compress_type, (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED))
        testcase.assertNotIn("\\", info.filename)
        testcase.assertNotIn("\x00", info.filename)
        testcase.assertFalse(info.filename.startswith("/"))
        testcase.assertNotIn("..", info.filename.split("/"))
        # the local header agrees with the central directory
        local = data[info.header_offset:info.header_offset + 30]
        testcase.assertEqual(local[:4], b"PK\x03\x04")
        name_length = int.from_bytes(local[26:28], "little")
        testcase.assertEqual(data[info.header_offset + 30:info.header_offset + 30 + name_length],
                             info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437"))
        testcase.assertEqual(int.from_bytes(local[8:10], "little"), info.compress_type)
        # every entry reads back whole with its CRC
        zf.read(info)
    if filename.endswith(".whl"):
        _, _, _, tags = parse_wheel_filename(filename)
        info_dirs = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        testcase.assertEqual(len(info_dirs), 1)
        (info_dir,) = info_dirs
        wheel = zf.read(f"{info_dir}/WHEEL").decode("utf-8")
        declared = {line[5:].strip().lower() for line in wheel.splitlines() if line.startswith("Tag: ")}
        testcase.assertEqual(declared, {str(t) for t in tags})
        testcase.assertIn("Wheel-Version: 1.", wheel)
        metadata = zf.read(f"{info_dir}/METADATA").decode("utf-8", "replace")
        _check_metadata_names_holy_grail(testcase, metadata)
        testcase.assertIn(f"{info_dir}/RECORD", names)
    else:
        tops = {n.split("/")[0] for n in names}
        testcase.assertEqual(tops, {"holy_grail-1.0"})


def _check_tar_independently(testcase, data):
    raw = gzip.decompress(data)
    tf = tarfile.open(fileobj=io.BytesIO(raw), mode="r:")
    members = tf.getmembers()
    seen = set()
    for m in members:
        path = posixpath.normpath(m.name)
        testcase.assertFalse(path.startswith(("/", "..")), m.name)
        testcase.assertEqual(path.split("/")[0], "holy_grail-1.0", m.name)
        testcase.assertNotIn(path, seen, "repeated path")
        seen.add(path)
        testcase.assertTrue(m.isreg() or m.isdir() or m.issym() or m.islnk(), m.name)
        if m.issym():
            target = posixpath.normpath(posixpath.join(posixpath.dirname(path), m.linkname))
            testcase.assertEqual(target.split("/")[0], "holy_grail-1.0", m.linkname)
            testcase.assertFalse(m.linkname.startswith("/"))
        if m.islnk():
            testcase.assertEqual(posixpath.normpath(m.linkname).split("/")[0], "holy_grail-1.0")
    # nothing but zeros after the last member, and at least the end marker
    end = max((m.offset_data + ((m.size + 511) // 512) * 512 for m in members), default=0)
    testcase.assertGreaterEqual(len(raw) - end, 1024)
    testcase.assertEqual(raw[end:].strip(b"\0"), b"")
    metadata = tf.extractfile("holy_grail-1.0/PKG-INFO").read().decode("utf-8", "replace")
    _check_metadata_names_holy_grail(testcase, metadata)


REPEATABLE = {"classifiers", "requires_dist"}


def independent_form_check(testcase, pairs):
    """Assert that an accepted form followed the form rules, read here in a second way."""
    values = {}
    for name, value in pairs:
        values.setdefault(name, set()).add(value)
        testcase.assertFalse(any(ord(c) < 32 and c not in "\t\n\r" or 0x7F <= ord(c) <= 0x9F
                                 for c in value), (name, value))
        if name not in ("description", "license"):
            testcase.assertFalse(set(value) & set("\t\n\r"), (name, value))
    for name, seen in values.items():
        if name not in REPEATABLE:
            testcase.assertEqual(len(seen), 1, name)
    testcase.assertEqual(values["name"], {"Holy-Grail"})
    testcase.assertEqual(values["version"], {"1.0"})
    testcase.assertLessEqual(max(len(v) for v in values.get("summary", {""})), 512)


def _check_metadata_names_holy_grail(testcase, text):
    headers = dict(line.split(": ", 1) for line in text.split("\n\n")[0].splitlines()
                   if ": " in line and not line.startswith((" ", "\t")))
    testcase.assertEqual(canonicalize_name(headers["Name"]), "holy-grail")
    testcase.assertEqual(Version(headers["Version"]), Version("1.0"))


# -- the properties ------------------------------------------------------------------------

class UploadPropertyTests(SynchronousTestCase):
    """Random mutations of valid uploads never give a 5xx, a bad stored file, or a slow answer."""

    def setUp(self):
        self.spool_root = tempfile.mkdtemp(prefix="pypid-prop-")
        self.addCleanup(shutil.rmtree, self.spool_root, ignore_errors=True)
        self.examples = 0
        self.accepted = 0

    def send(self, filename, data, content_type=None, body=None):
        """Upload to a fresh server; check the three properties; return the status."""
        self.examples += 1
        server = Server(os.path.join(self.spool_root, str(self.examples)))
        if body is None:
            content_type, body = upload_body(filename, data)
        code, text = server.post(content_type, body, self)
        self.assertLess(code, 500, text)
        self.assertIn(code, (200, 400, 413), text)
        stored = list(server.index.all_files()) if hasattr(server.index, "all_files") else None
        if code == 200:
            self.accepted += 1
            record = server.index.get_file(filename)
            self.assertIsNotNone(record)
            location = server.storage.locate(record)
            self.assertIsInstance(location, MemoryFile)
            self.assertEqual(location.data, data)
            self.assertEqual(record.sha256, hashlib.sha256(data).hexdigest())
            independent_check(self, filename, data)
        else:
            self.assertTrue(text.strip(), "a refusal without a reason")
            self.assertEqual(len(server.index), 0, stored)
            self.assertEqual(server.storage.objects, {})
        self.assertEqual(os.listdir(server.storage.temp_dir), [])
        return code

    @SETTINGS
    @given(base=st.sampled_from(WHEELS), mutations=MUTATIONS)
    def test_mutated_wheels(self, base, mutations):
        """Wheels with random byte-level damage."""
        filename, data = base
        self.send(filename, _apply(data, mutations))

    @SETTINGS
    @given(base=st.sampled_from(WHEELS), extra=st.lists(st.tuples(_ZIP_NAMES, st.binary(max_size=20)),
                                                         max_size=3),
           wheel=WHEEL_TEXTS, comment=st.sampled_from([b"", b"x", b"PK\x05\x06"]))
    def test_structurally_odd_wheels(self, base, extra, wheel, comment):
        """Wheels with added members (repeats, traversal, other dist-info), odd WHEEL files, comments."""
        filename, _ = base
        tag = filename[len("holy_grail-1.0-"):-len(".whl")]
        info = "holy_grail-1.0.dist-info"
        members = [("holy_grail/__init__.py", b"X = 1\n"), *extra,
                   (f"{info}/METADATA", metadata_text("Holy-Grail", "1.0").encode()),
                   (f"{info}/RECORD", b"")]
        if wheel is not None:
            members.append((f"{info}/WHEEL", (wheel or "").encode()))
        if wheel is None:
            members.append((f"{info}/WHEEL", wheel_text(tag).encode()))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "Duplicate name"
                for name, content in members:
                    zf.writestr(name, content)
            zf.comment = comment
        code = self.send(filename, buf.getvalue())
        if comment or any(name for name, _ in extra):
            self.assertEqual(code, 400)

    @SETTINGS
    @given(mutations=SOME_MUTATIONS, extra=TAR_EXTRAS, compress_after=st.booleans())
    def test_mutated_sdists(self, mutations, extra, compress_after):
        """Tarball sdists with hostile members and random damage to the tar or the gzip stream."""
        raw = _tar(SDIST_MEMBERS + extra)
        if compress_after:
            data = gzip.compress(_apply(raw, mutations), mtime=0)
        else:
            data = _apply(gzip.compress(raw, mtime=0), mutations)
        self.send("holy_grail-1.0.tar.gz", data)

    @SETTINGS
    @given(mutations=MUTATIONS)
    def test_mutated_zip_sdists(self, mutations):
        """Zip sdists with random damage."""
        filename, data = SDIST_ZIP
        self.send(filename, _apply(data, mutations))

    @SETTINGS
    @given(base=st.sampled_from(WHEELS[:1] + [("holy_grail-1.0.tar.gz", gzip.compress(SDIST_TAR))]),
           mutations=MUTATIONS)
    def test_mutated_multipart_bodies(self, base, mutations):
        """Whole multipart bodies with random damage: headers, boundaries, fields and file alike."""
        filename, data = base
        content_type, body = upload_body(filename, data)
        self.send(filename, data, content_type, _apply(body, mutations))

    @SETTINGS
    @given(fields=st.lists(st.tuples(
        st.sampled_from(["name", "version", "summary", "description", "metadata_version",
                         "classifiers", "sha256_digest", ":action", "filetype", "license",
                         "requires_dist", "made_up"]),
        st.text(max_size=40)), max_size=6))
    def test_hostile_form_fields(self, fields):
        """Random extra or repeated text fields, any characters: never a 5xx, never a bad store."""
        filename, data = WHEELS[0]
        pairs = twine_fields("Holy-Grail", "1.0", data) + fields
        content_type, body = multipart_body(pairs, [("content", filename, data)])
        if self.send(filename, data, content_type, body) == 200:
            independent_form_check(self, pairs)
