"""
Tests for L{pypid.core.upload.validate_upload}: every rule of the legacy upload
form, each refusal naming its field.
"""

import hashlib

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.errors import BadRequest
from pypid.core.upload import UploadRequest, validate_upload
from pypid.web.multipart import FilePart, Form

DATA = b"pretend this is a wheel"
WHEEL_NAME = "holy_grail-1.0-py3-none-any.whl"
SDIST_NAME = "holy_grail-1.0.tar.gz"
SHA256 = hashlib.sha256(DATA).hexdigest()
BLAKE2 = hashlib.blake2b(DATA, digest_size=32).hexdigest()
MD5 = hashlib.md5(DATA).hexdigest()


def make_part(filename=WHEEL_NAME, data=DATA):
    """Return the file part the multipart parser would make of C{data}."""
    return FilePart(
        field="content",
        filename=filename,
        content_type="application/octet-stream",
        path="/nonexistent/spooled",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        blake2_256=hashlib.blake2b(data, digest_size=32).hexdigest(),
        md5=hashlib.md5(data).hexdigest(),
    )


def make_form(part=None, drop=(), **fields):
    """
    Return the form twine sends for L{WHEEL_NAME}; C{fields} replace values
    (L{None} removes a field) and C{drop} removes fields.
    """
    values = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": "holy-grail",
        "version": "1.0",
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "metadata_version": "2.1",
        "sha256_digest": SHA256,
        "blake2_256_digest": BLAKE2,
    }
    values.update(fields)
    for name in drop:
        values.pop(name, None)
    files = {} if part is False else {"content": part or make_part()}
    return Form(
        fields={name: [value] for name, value in values.items() if value is not None},
        files=files,
    )


class ValidateUploadTests(SynchronousTestCase):
    """Tests for L{validate_upload}."""

    def refused(self, form, field):
        """Assert C{form} is refused naming C{field} first; return the message."""
        e = self.assertRaises(BadRequest, validate_upload, form)
        self.assertEqual(e.code, 400)
        self.assertTrue(e.message.startswith(field + ": "), e.message)
        return e.message

    def test_wheel(self):
        """A complete wheel upload gives what to store."""
        part = make_part()
        upload = validate_upload(make_form(part))
        self.assertEqual(upload, UploadRequest(
            project="holy-grail", name="holy-grail", version="1.0",
            filename=WHEEL_NAME, packagetype="bdist_wheel", part=part,
        ))

    def test_sdist(self):
        """An sdist upload is accepted with C{filetype=sdist}."""
        upload = validate_upload(make_form(make_part(SDIST_NAME), filetype="sdist",
                                           pyversion="source"))
        self.assertEqual(upload.packagetype, "sdist")
        self.assertEqual(upload.filename, SDIST_NAME)

    def test_name_spellings(self):
        """The form's name is kept as sent, the project is its normalized form."""
        upload = validate_upload(make_form(name="Holy.Grail"))
        self.assertEqual((upload.name, upload.project), ("Holy.Grail", "holy-grail"))

    def test_version_normalized(self):
        """The form's version is compared in its normalized form."""
        self.assertEqual(validate_upload(make_form(version="01.0")).version, "1.0")

    def test_whitespace_stripped(self):
        """Surrounding whitespace in fields is ignored."""
        upload = validate_upload(make_form(name=" holy-grail\r\n", version=" 1.0 ",
                                           sha256_digest=SHA256 + "\n"))
        self.assertEqual(upload.project, "holy-grail")

    def test_optional_fields(self):
        """protocol_version and filetype may be left out."""
        upload = validate_upload(make_form(drop=("protocol_version", "filetype")))
        self.assertEqual(upload.packagetype, "bdist_wheel")

    def test_missing_action(self):
        """An upload without C{:action} is refused."""
        self.assertIn("required", self.refused(make_form(drop=(":action",)), ":action"))

    def test_unknown_action(self):
        """Actions other than C{file_upload} are refused, quoting the action."""
        message = self.refused(make_form(**{":action": "doc_upload"}), ":action")
        self.assertIn("'doc_upload'", message)
        self.assertIn("expected file_upload", message)

    def test_protocol_version(self):
        """A protocol version other than 1 is refused."""
        message = self.refused(make_form(protocol_version="2"), "protocol_version")
        self.assertIn("unknown protocol version", message)

    def test_missing_name(self):
        """The name is required."""
        self.refused(make_form(drop=("name",)), "name")
        self.refused(make_form(name="  "), "name")

    def test_invalid_name(self):
        """A name that is not a valid project name is refused."""
        for name in ("-holy", "holy grail", "holy-grail\x00"):
            self.assertIn("not a valid project name", self.refused(make_form(name=name), "name"))

    def test_missing_version(self):
        """The version is required."""
        self.refused(make_form(drop=("version",)), "version")

    def test_invalid_version(self):
        """A version that is not PEP 440 is refused."""
        message = self.refused(make_form(version="one point oh"), "version")
        self.assertIn("not a valid PEP 440 version", message)

    def test_unknown_filetype(self):
        """Only C{bdist_wheel} and C{sdist} are accepted file types."""
        message = self.refused(make_form(filetype="bdist_egg"), "filetype")
        self.assertIn("expected bdist_wheel or sdist", message)

    def test_filetype_mismatch(self):
        """The file type must match the file's extension."""
        message = self.refused(make_form(filetype="sdist"), "filetype")
        self.assertIn(WHEEL_NAME, message)
        self.refused(make_form(make_part(SDIST_NAME), filetype="bdist_wheel"), "filetype")

    def test_missing_content(self):
        """An upload with no C{content} file part is refused."""
        self.assertIn("no file part", self.refused(make_form(False), "content"))

    def test_empty_file(self):
        """An empty file is refused."""
        self.assertIn("empty", self.refused(make_form(make_part(data=b"")), "content"))

    def test_bad_filenames(self):
        """Path separators, control characters, dot files and foreign extensions are refused."""
        for filename in ("../holy_grail-1.0.tar.gz", "sub\\holy_grail-1.0.tar.gz",
                         "holy_grail-1.0\n.tar.gz", ".holy_grail-1.0.tar.gz",
                         "holy_grail-1.0-py3.8.egg", "holy_grail-1.0.win32.exe",
                         "holy_grail-1.0.tar.bz2", "", "holy_grail.whl"):
            self.refused(make_form(make_part(filename), drop=("filetype",)), "content")

    def test_project_mismatch(self):
        """The filename must be for the project the form names."""
        message = self.refused(make_form(name="other"), "content")
        self.assertIn("'holy-grail'", message)
        self.assertIn("'other'", message)

    def test_version_mismatch(self):
        """The filename must be for the version the form names."""
        message = self.refused(make_form(version="2.0"), "content")
        self.assertIn("version 1.0, not 2.0", message)

    def test_sha256_mismatch(self):
        """A wrong sha256 digest is refused."""
        message = self.refused(make_form(sha256_digest="0" * 64), "sha256_digest")
        self.assertIn("does not match", message)

    def test_blake2_mismatch(self):
        """A wrong blake2_256 digest is refused even when the sha256 one is right."""
        self.refused(make_form(blake2_256_digest="0" * 64), "blake2_256_digest")

    def test_md5_mismatch(self):
        """A wrong md5 digest is refused even when the others are right."""
        self.refused(make_form(md5_digest="0" * 32), "md5_digest")

    def test_md5_right(self):
        """A right md5 digest is accepted, and is enough on its own."""
        validate_upload(make_form(md5_digest=MD5))
        validate_upload(make_form(md5_digest=MD5, drop=("sha256_digest", "blake2_256_digest")))

    def test_uppercase_hex(self):
        """Digests may be written in upper-case hex."""
        validate_upload(make_form(sha256_digest=SHA256.upper(), blake2_256_digest=BLAKE2.upper()))

    def test_not_hex(self):
        """A digest that is not hex of the right length is refused as such."""
        for field, value in (("sha256_digest", "z" * 64), ("sha256_digest", SHA256[:-1]),
                             ("blake2_256_digest", BLAKE2 + "0"), ("md5_digest", "g" * 32),
                             ("md5_digest", SHA256)):
            message = self.refused(make_form(**{field: value}), field)
            self.assertIn("expected a hex digest", message)

    def test_no_digest(self):
        """At least one digest is required."""
        message = self.refused(make_form(drop=("sha256_digest", "blake2_256_digest")),
                               "sha256_digest")
        self.assertIn("at least one digest", message)

    def test_blake2_alone(self):
        """A blake2_256 digest alone is enough."""
        validate_upload(make_form(drop=("sha256_digest",)))

    def test_order(self):
        """Problems are reported in the public index's order: the action before the name."""
        self.refused(make_form(**{":action": "nope", "name": "-bad"}), ":action")
        self.refused(make_form(name="-bad", version="bad version"), "name")
