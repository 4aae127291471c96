"""
Tests for L{pypid.core.dists.upload.validate_upload}: every rule of the legacy upload
form, each refusal naming its field.
"""

import hashlib

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.upload import (
    DEFAULT_FIELD_LIMIT,
    FIELD_LIMITS,
    MAX_VALUES,
    MAX_VALUES_PER_FIELD,
    UploadRequest,
    validate_upload,
)
from pypid.core.util.http_errors import BadRequest
from pypid.web.server.upload_form import FilePart, Form, InlineFile

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
        """
        Assert C{form} is refused naming C{field} first (L{None}: what is
        wrong with the file itself, which names no field); return the message.
        """
        e = self.assertRaises(BadRequest, validate_upload, form)
        self.assertEqual(e.code, 400)
        if field is None:
            self.assertFalse(e.message.startswith("content: "), e.message)
        else:
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

    def test_whitespace_refused(self):
        """Surrounding whitespace in the name or version is refused, not stripped."""
        for field, value in (("name", " holy-grail"), ("name", "holy-grail "),
                             ("version", " 1.0"), ("version", "1.0\u00a0")):
            message = self.refused(make_form(**{field: value}), field)
            self.assertIn("leading or trailing whitespace", message)
        self.assertIn("one line", self.refused(make_form(sha256_digest=SHA256 + "\n"),
                                               "sha256_digest"))

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
        self.refused(make_form(name=""), "name")

    def test_invalid_name(self):
        """A name that is not a valid project name is refused."""
        for name in ("-holy", "holy grail", "holy\u017fgrail"):
            self.assertIn("not a valid project name", self.refused(make_form(name=name), "name"))
        self.assertIn("NUL", self.refused(make_form(name="holy-grail\x00"), "name"))

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
        self.assertIn("empty", self.refused(make_form(make_part(data=b"")), None))

    def test_bad_filenames(self):
        """Path separators, control characters, dot files and foreign extensions are refused."""
        for filename in ("../holy_grail-1.0.tar.gz", "sub\\holy_grail-1.0.tar.gz",
                         "holy_grail-1.0\n.tar.gz", ".holy_grail-1.0.tar.gz",
                         "holy_grail-1.0-py3.8.egg", "holy_grail-1.0.win32.exe",
                         "holy_grail-1.0.tar.bz2", "", "holy_grail.whl"):
            self.refused(make_form(make_part(filename), drop=("filetype",)), None)

    def test_bad_filename_named_once(self):
        """
        A filename that cannot be read is refused as the filename (not
        the form's C{name}, which may be right), named once as uploaded,
        with what is wrong with it.
        """
        for filename, why in (
                ("bad name-1.0-py3-none-any.whl",
                 "its project name 'bad name' may hold only ASCII letters, digits and ._-"),
                ("holy_grail-1.0.whl",
                 "a wheel's filename has 5 or 6 parts between dashes "
                 "(name-version[-build]-python-abi-platform.whl), not 2")):
            message = self.refused(make_form(make_part(filename)), None)
            self.assertEqual(message, f"the filename {filename!r} is not valid: {why}")
        message = self.refused(make_form(make_part(""), drop=("filetype",)), None)
        self.assertEqual(message, "the uploaded file has no filename")

    def test_project_mismatch(self):
        """The filename must be for the project the form names."""
        message = self.refused(make_form(name="other"), None)
        self.assertIn("'holy-grail'", message)
        self.assertIn("'other'", message)

    def test_version_mismatch(self):
        """The filename must be for the version the form names."""
        message = self.refused(make_form(version="2.0"), None)
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


def form_with(pairs, part=None, inline=()):
    """A form of L{make_form}'s fields, with C{pairs} (name, value) added in order."""
    form = make_form(part)
    for name, value in pairs:
        form.fields.setdefault(name, []).append(value)
    for name, data in inline:
        form.inline_files.setdefault(name, []).append(InlineFile(name, "x.txt", "text/plain", data))
    return form


class FormRulesTests(SynchronousTestCase):
    """Tests for L{check_form}: the rules on the form as a whole."""

    def refused(self, form, field):
        """Assert C{form} is refused naming C{field} first; return the message."""
        e = self.assertRaises(BadRequest, validate_upload, form)
        self.assertTrue(e.message.startswith(field + ": ") or field == "", e.message)
        return e.message

    def test_twine_form(self):
        """Every field twine and uv send, repeatable ones repeated, is accepted."""
        form = form_with([
            ("summary", "The Holy Grail"), ("description", "# Title\r\n\tIndented\n"),
            ("description_content_type", "text/markdown"), ("keywords", "grail, quest"),
            ("author", "Arthur"), ("author_email", "arthur@camelot.example"),
            ("license", "Line one\nline two"), ("license_expression", "MIT"),
            ("requires_python", ">=3.9"), ("home_page", "https://camelot.example/"),
            ("classifiers", "Programming Language :: Python :: 3"),
            ("classifiers", "License :: OSI Approved :: MIT License"),
            ("requires_dist", "attrs>=23"), ("requires_dist", 'pytest; extra == "test"'),
            ("provides_extra", "test"), ("project_urls", "Source, https://camelot.example/src"),
            ("project_urls", "Issues, https://camelot.example/issues"),
            ("license_file", "LICENSE"), ("license_file", "NOTICE"), ("dynamic", "Classifier"),
            ("import_names", "grail"), ("import_names", "holy"), ("import_namespaces", "ns"),
            ("import_namespaces", "ns2"),
            ("platform", "linux"), ("supported_platform", "x86_64"),
            ("comment", "built by CI"), ("attestations", "[]"),
        ], inline=[("gpg_signature", b"-----BEGIN PGP SIGNATURE-----")])
        self.assertEqual(validate_upload(form).project, "holy-grail")

    def test_single_field_repeated_with_different_values(self):
        """A single-use field sent twice with different values is refused, naming it."""
        for field, other in (("name", "other"), ("version", "2.0"), ("summary", "b"),
                             ("sha256_digest", "0" * 64), (":action", "remove_pkg"),
                             ("metadata_version", "2.4")):
            form = make_form()
            form.fields.setdefault(field, ["a"])
            form.fields[field].append(other)
            message = self.refused(form, field)
            self.assertIn("sent more than once with different values", message)

    def test_single_field_repeated_with_same_value(self):
        """A single-use field repeated with the same value changes nothing and is accepted."""
        form = make_form()
        form.fields["name"].append("holy-grail")
        form.fields["version"].append("1.0")
        self.assertEqual(validate_upload(form).version, "1.0")

    def test_file_part_for_a_text_field(self):
        """A text field sent as a file part is refused, and so is any unknown file part."""
        for field in ("name", "version", "summary", "sha256_digest", "description", "attachment"):
            form = form_with([], inline=[(field, b"x")])
            self.assertIn("expected a text field, not a file part", self.refused(form, field))

    def test_metadata_version(self):
        """metadata_version is required and must be one the index supports."""
        self.assertIn("required", self.refused(make_form(metadata_version=None), "metadata_version"))
        for bad in ("3.0", "2.7", "1.3", "2", "latest"):
            message = self.refused(make_form(metadata_version=bad), "metadata_version")
            self.assertIn("not a metadata version the index supports", message)
        for good in ("1.0", "1.1", "1.2", "2.0", "2.1", "2.2", "2.3", "2.4", "2.5"):
            validate_upload(make_form(metadata_version=good))

    def test_nul_and_controls(self):
        """NUL and other control characters are refused in every field, description included."""
        for field in ("summary", "description", "license", "author", "classifiers", "unknown_field"):
            for bad in ("a\x00b", "a\x1bb", "a\x7fb", "a\x85b", "a\x0bb"):
                self.refused(form_with([(field, bad)]), field)

    def test_line_breaks_only_where_allowed(self):
        """TAB, LF and CR are taken in description (and license), and refused elsewhere."""
        for field in ("summary", "author", "keywords", "requires_dist", "classifiers", "home_page"):
            for bad in ("a\nb", "a\rb", "a\tb", "a\u2028b", "a\u202eb", "a\u2066b"):
                self.assertIn("one line", self.refused(form_with([(field, bad)]), field))
        validate_upload(form_with([("summary", "\u05e9\u05dc\u05d5\u05dd \u200f\U0001f468\u200d\U0001f4bb")]))
        for field in ("description", "license"):
            validate_upload(form_with([(field, "a\r\n\tb\n\x0c\n")]))
        self.refused(form_with([("summary", "a\x0cb")]), "summary")

    def test_summary_length(self):
        """summary may have 512 characters, not 513."""
        validate_upload(form_with([("summary", "\u00e9" * 512)]))
        message = self.refused(form_with([("summary", "x" * 513)]), "summary")
        self.assertIn("longer than 512 characters", message)

    def test_field_caps(self):
        """Every field has a cap: the defaults, and the larger ones of long fields."""
        self.refused(form_with([("author", "x" * (DEFAULT_FIELD_LIMIT + 1))]), "author")
        self.refused(form_with([("made_up", "x" * (DEFAULT_FIELD_LIMIT + 1))]), "made_up")
        validate_upload(form_with([("description", "x" * 100_000)]))
        validate_upload(form_with([("license", "x" * 80_000)]))
        self.refused(form_with([("license", "x" * (FIELD_LIMITS["license"] + 1))]), "license")

    def test_number_of_values(self):
        """A multi-use field has at most MAX_VALUES_PER_FIELD values, and a form MAX_VALUES."""
        validate_upload(form_with([("classifiers", f"C :: {i}") for i in range(MAX_VALUES_PER_FIELD)]))
        self.refused(form_with([("classifiers", f"C :: {i}") for i in range(MAX_VALUES_PER_FIELD + 1)]),
                     "classifiers")
        pairs = [(f"f{i}", "v") for i in range(MAX_VALUES)]
        self.assertIn(f"more than {MAX_VALUES} fields", self.refused(form_with(pairs), ""))

    def test_field_name_shown_safely(self):
        """A hostile field name is shown short and without control characters."""
        message = self.refused(form_with([("evil\r\nname" + "x" * 100, "a\x00")]), "")
        self.assertNotIn("\r", message)
        self.assertNotIn("\n", message)
        self.assertLess(len(message), 120)
