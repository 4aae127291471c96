"""
Tests for L{pypid.web.server.multipart}.
"""

import hashlib
import os
import random
import stat
from itertools import repeat

from twisted.trial.unittest import SynchronousTestCase

from pypid.web.server.multipart import FormSink, boundary_from_content_type
from pypid.web.server.upload_form import Form, MultipartError, UploadTooLarge
from tests.harness.distributions import make_wheel

# What requests_toolbelt (twine) picks: uuid4().hex.
BOUNDARY = b"ff9c4b7c359142b5801e4e1d4634f034"
WHEEL_NAME, WHEEL = make_wheel("holy-grail", "1.0", requires_dist=["attrs"])
SIGNATURE = b"-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n"

# The fields twine sends for a wheel, in its order (repeated keys included).
TWINE_FIELDS = [
    ("name", "holy-grail"),
    ("version", "1.0"),
    ("filetype", "bdist_wheel"),
    ("pyversion", "py3"),
    ("metadata_version", "2.1"),
    ("summary", "Test project holy-grail \N{SNOWMAN}"),
    ("description", "A test project.\r\n\r\n--not a boundary\r\n" * 200),
    ("classifiers", "Programming Language :: Python :: 3"),
    ("classifiers", "License :: OSI Approved :: MIT License"),
    ("classifiers", "Framework :: Twisted"),
    ("requires_dist", "attrs"),
    ("md5_digest", hashlib.md5(WHEEL).hexdigest()),
    ("sha256_digest", hashlib.sha256(WHEEL).hexdigest()),
    ("blake2_256_digest", hashlib.blake2b(WHEEL, digest_size=32).hexdigest()),
    (":action", "file_upload"),
    ("protocol_version", "1"),
]


def text_part(name, value, boundary=BOUNDARY):
    """Return a text part the way requests_toolbelt encodes it, delimiter included."""
    return (
        b"--" + boundary + b"\r\n"
        + b'Content-Disposition: form-data; name="' + name.encode() + b'"\r\n\r\n'
        + value.encode("utf-8") + b"\r\n"
    )


def file_part(name, filename, data, content_type=b"application/octet-stream",
              boundary=BOUNDARY):
    """Return a file part the way requests_toolbelt encodes it, delimiter included."""
    return (
        b"--" + boundary + b"\r\n"
        + b'Content-Disposition: form-data; name="' + name.encode()
        + b'"; filename="' + filename.encode() + b'"\r\n'
        + (b"Content-Type: " + content_type + b"\r\n" if content_type else b"")
        + b"\r\n" + data + b"\r\n"
    )


def close(boundary=BOUNDARY):
    """Return the closing delimiter and the line break requests_toolbelt ends with."""
    return b"--" + boundary + b"--\r\n"


def twine_body(data=WHEEL, filename=WHEEL_NAME, signature=True, fields=TWINE_FIELDS):
    """Return the exact body twine sends to upload C{data}, a signature included if asked."""
    body = b"".join(text_part(name, value) for name, value in fields)
    body += file_part("content", filename, data)
    if signature:
        body += file_part("gpg_signature", filename + ".asc", SIGNATURE, content_type=None)
    return body + close()


def chunks(body, sizes):
    """Split C{body} into pieces of the sizes C{sizes} yields (the last one may be shorter)."""
    pos = 0
    for size in sizes:
        if pos >= len(body):
            return
        yield body[pos:pos + size]
        pos += size
    if pos < len(body):
        yield body[pos:]


def random_sizes(seed, largest):
    """Yield random chunk sizes between 1 and C{largest}, reproducibly."""
    rng = random.Random(seed)
    while True:
        yield rng.randint(1, largest)


def read(path):
    """Return the bytes of the file at C{path}."""
    with open(path, "rb") as f:
        return f.read()


class _SinkMixin:
    """Helpers to run a body through a L{FormSink} in a fresh temporary directory."""

    def setUp(self):
        self.tmpdir = os.path.abspath(self.mktemp())
        os.mkdir(self.tmpdir)

    def sink(self, boundary=BOUNDARY, **kwargs):
        """Return a sink writing into this test's temporary directory."""
        kwargs.setdefault("max_file_size", 10 << 20)
        return FormSink(boundary, self.tmpdir, **kwargs)

    def feed(self, body, pieces=None, **kwargs):
        """Write C{body} (whole, or as C{pieces}) into a new sink and return the sink."""
        sink = self.sink(**kwargs)
        for piece in ([body] if pieces is None else pieces):
            sink.write(piece)
        return sink

    def parse(self, body, pieces=None, **kwargs):
        """Return the form parsed from C{body}."""
        form = self.feed(body, pieces, **kwargs).finish()
        self.addCleanup(form.discard)
        return form

    def refused(self, body, pieces=None, error=MultipartError, **kwargs):
        """Assert C{body} is refused with C{error}, leaving no file, and return its message."""
        sink = self.feed(body, pieces, **kwargs)
        raised = self.assertRaises(error, sink.finish)
        self.assertIs(raised, sink.error)
        self.assertEqual(os.listdir(self.tmpdir), [])
        return str(raised)

    def assertFiles(self, count):
        """Assert the temporary directory holds C{count} files."""
        self.assertEqual(len(os.listdir(self.tmpdir)), count)


class TwineBodyTests(_SinkMixin, SynchronousTestCase):
    """A body exactly as twine sends it, fed in every way Twisted might."""

    def check_twine_form(self, form):
        """Assert C{form} is the one twine's body describes."""
        expected = {}
        for name, value in TWINE_FIELDS:
            expected.setdefault(name, []).append(value)
        self.assertEqual(form.fields, expected)
        self.assertEqual(list(form.files), ["content"])
        part = form.files["content"]
        self.assertEqual(part.field, "content")
        self.assertEqual(part.filename, WHEEL_NAME)
        self.assertEqual(part.content_type, "application/octet-stream")
        self.assertEqual(part.size, len(WHEEL))
        self.assertEqual(part.sha256, hashlib.sha256(WHEEL).hexdigest())
        self.assertEqual(part.blake2_256, hashlib.blake2b(WHEEL, digest_size=32).hexdigest())
        self.assertEqual(part.md5, hashlib.md5(WHEEL).hexdigest())
        self.assertEqual(read(part.path), WHEEL)
        self.assertEqual(os.path.dirname(part.path), self.tmpdir)
        [signature] = form.inline_files["gpg_signature"]
        self.assertEqual(signature.filename, WHEEL_NAME + ".asc")
        self.assertIsNone(signature.content_type)
        self.assertEqual(signature.data, SIGNATURE)

    def test_whole(self):
        """A body written in one piece gives every field, the file and its digests."""
        self.check_twine_form(self.parse(twine_body()))
        self.assertFiles(1)

    def test_byte_by_byte(self):
        """A body written one byte at a time gives the same form."""
        body = twine_body()
        self.check_twine_form(self.parse(body, [body[i:i + 1] for i in range(len(body))]))

    def test_random_chunks(self):
        """Bodies split at random places, small and large, give the same form."""
        body = twine_body()
        for seed, largest in [(1, 3), (2, 17), (3, 100), (4, 1000), (5, 70000)]:
            self.check_twine_form(self.parse(body, chunks(body, random_sizes(seed, largest))))

    def test_every_split(self):
        """Splitting the body in two at any point gives the same form."""
        fields = [(name, value) for name, value in TWINE_FIELDS if name != "description"]
        body = twine_body(data=WHEEL[:50], fields=fields)
        whole = self.parse(body)
        self.assertEqual(read(whole.files["content"].path), WHEEL[:50])
        for split in range(len(body) + 1):
            form = self.feed(body, [body[:split], body[split:]]).finish()
            form.discard()
            self.assertEqual(form.fields, whole.fields)
            self.assertEqual(form.inline_files, whole.inline_files)
            self.assertEqual(form.files["content"].sha256, whole.files["content"].sha256)

    def test_repeated_keys(self):
        """Repeated fields keep every value in order; get returns the first."""
        form = self.parse(twine_body())
        self.assertEqual(form.get("classifiers"), "Programming Language :: Python :: 3")
        self.assertEqual(form.fields["classifiers"][2], "Framework :: Twisted")
        self.assertIsNone(form.get("keywords"))
        self.assertNotIn("keywords", form.fields)
        self.assertIsNone(form.get("gpg_signature"))

    def test_repr(self):
        """A form's repr names its fields but holds none of their values."""
        text = repr(self.parse(twine_body()))
        self.assertIn("'classifiers'", text)
        self.assertIn(WHEEL_NAME, text)
        self.assertNotIn("A test project", text)
        self.assertNotIn("PGP", text)

    def test_file_mode(self):
        """The temporary file is readable and writable by its owner only."""
        form = self.parse(twine_body())
        mode = stat.S_IMODE(os.stat(form.files["content"].path).st_mode)
        self.assertEqual(mode, 0o600)

    def test_counts(self):
        """tell counts the bytes written; seek (a rewind) does nothing."""
        body = twine_body()
        sink = self.feed(body, chunks(body, random_sizes(6, 500)))
        self.assertEqual(sink.tell(), len(body))
        sink.seek(0, 0)
        self.assertEqual(sink.tell(), len(body))
        self.assertIsNone(sink.error)
        self.addCleanup(sink.finish().discard)

    def test_discard(self):
        """Form.discard removes the temporary file and may be called again."""
        form = self.feed(twine_body()).finish()
        form.discard()
        self.assertFiles(0)
        form.discard()

    def test_close_after_finish(self):
        """close after finish leaves the handed-out file in place."""
        sink = self.feed(twine_body())
        form = sink.finish()
        self.addCleanup(form.discard)
        sink.close()
        sink.close()
        self.assertEqual(read(form.files["content"].path), WHEEL)

    def test_finish_twice(self):
        """finish called again returns the same form."""
        sink = self.feed(twine_body())
        form = sink.finish()
        self.addCleanup(form.discard)
        self.assertIs(sink.finish(), form)

    def test_close_without_finish(self):
        """close before finish removes the temporary file, and finish then refuses."""
        sink = self.feed(twine_body())
        self.assertFiles(1)
        sink.close()
        self.assertFiles(0)
        self.assertRaises(MultipartError, sink.finish)

    def test_close_mid_file(self):
        """close while the file part is being written closes and removes it."""
        body = twine_body()
        sink = self.feed(body[:-500])
        self.assertFiles(1)
        sink.close()
        self.assertFiles(0)
        sink.write(body[-500:])
        self.assertFiles(0)

    def test_empty_file(self):
        """An empty file part gives an empty file with the digests of no bytes."""
        form = self.parse(twine_body(data=b"", signature=False))
        part = form.files["content"]
        self.assertEqual(part.size, 0)
        self.assertEqual(part.sha256, hashlib.sha256(b"").hexdigest())
        self.assertEqual(read(part.path), b"")

    def test_no_file(self):
        """A form without a file part has no files and leaves no temporary file."""
        form = self.parse(text_part(":action", "submit") + close())
        self.assertEqual(form, Form(fields={":action": ["submit"]}))
        self.assertFiles(0)


class DelimiterTests(_SinkMixin, SynchronousTestCase):
    """Only a whole delimiter at the start of a line ends a part."""

    def lookalikes(self):
        """Return file data full of near-delimiters, ending in one."""
        return (
            b"--" + BOUNDARY + b"\r\n"          # the boundary without its CRLF
            + b"\r\n--" + BOUNDARY[:-1] + b"\r\n"  # a cut boundary
            + b"\r\n-" + b"\r\n--" + b"\r\r\n--" + BOUNDARY[:10]
            + b"\n--" + BOUNDARY + b"\r\n"      # a bare LF does not start a line here
            + b"\r--" + BOUNDARY + b"--"
            + b"\r\n" * 40 + b"\r\n--" + BOUNDARY[:-1]
        )

    def test_lookalikes(self):
        """Data holding partial and CRLF-less delimiters is kept byte for byte, however split."""
        data = self.lookalikes()
        body = twine_body(data=data, signature=False)
        for size in range(1, len(BOUNDARY) + 8):
            form = self.parse(body, chunks(body, repeat(size)))
            self.assertEqual(read(form.files["content"].path), data)
            self.assertEqual(form.files["content"].sha256, hashlib.sha256(data).hexdigest())
        for seed in range(20):
            form = self.parse(body, chunks(body, random_sizes(seed, 60)))
            self.assertEqual(read(form.files["content"].path), data)

    def test_data_ending_like_a_delimiter(self):
        """Data ending in CR, CRLF or CRLF-dash keeps those bytes."""
        for tail in [b"\r", b"\r\n", b"\r\n-", b"\r\n--", b"\r\n--" + BOUNDARY[:5]]:
            data = b"x" * 100 + tail
            body = twine_body(data=data, signature=False)
            start = body.index(data) + 90
            for split in range(start, start + len(tail) + len(BOUNDARY) + 20):
                form = self.parse(body, [body[:split], body[split:]])
                self.assertEqual(read(form.files["content"].path), data)

    def test_lookalikes_in_text(self):
        """A text field holding near-delimiters is kept whole."""
        value = "--" + BOUNDARY.decode() + "\r\n\r\n--" + BOUNDARY.decode()[:-1]
        body = text_part("description", value) + close()
        self.assertEqual(self.parse(body, [body[i:i + 3] for i in range(0, len(body), 3)])
                         .get("description"), value)

    def test_preamble_and_epilogue(self):
        """Bytes before the first delimiter and after the closing one are ignored."""
        body = (b"This is the preamble.\r\n--" + BOUNDARY[:-1] + b"\r\n"
                + text_part("name", "x") + close() + b"This is the epilogue.\r\n")
        for size in (1, 7, len(body)):
            form = self.parse(body, chunks(body, repeat(size)))
            self.assertEqual(form.fields, {"name": ["x"]})

    def test_closing_without_line_break(self):
        """A closing delimiter at the very end of the body, with no CRLF, is enough."""
        self.assertEqual(self.parse(text_part("a", "b") + close()[:-2]).fields, {"a": ["b"]})

    def test_no_parts(self):
        """A body that is only the closing delimiter gives an empty form."""
        self.assertEqual(self.parse(close()), Form())

    def test_transport_padding(self):
        """Spaces and tabs after a delimiter, before its line break, are allowed."""
        body = (b"--" + BOUNDARY + b" \t \r\n" + b'Content-Disposition: form-data; name="a"'
                + b"\r\n\r\nb\r\n" + close())
        self.assertEqual(self.parse(body, [body[i:i + 1] for i in range(len(body))]).fields,
                         {"a": ["b"]})

    def test_empty_value(self):
        """An empty text field gives an empty string."""
        self.assertEqual(self.parse(text_part("keywords", "") + close()).get("keywords"), "")

    def test_bare_lf_headers(self):
        """Part headers ending in bare LF are accepted."""
        body = (b"--" + BOUNDARY + b"\n" + b'Content-Disposition: form-data; name="a"\n\n'
                + b"b\r\n" + close())
        self.assertEqual(self.parse(body).fields, {"a": ["b"]})

    def test_junk_after_boundary(self):
        """A line that starts with the boundary but goes on is refused."""
        body = text_part("a", "b") + b"--" + BOUNDARY + b"X\r\n" + close()
        self.assertIn("boundary", self.refused(body))
        body = text_part("a", "b") + b"--" + BOUNDARY + b"-X"
        self.assertIn("boundary", self.refused(body))
        body = text_part("a", "b") + b"--" + BOUNDARY + b"\rX"
        self.assertIn("boundary", self.refused(body))

    def test_long_padding(self):
        """Endless padding after a delimiter is refused."""
        self.assertIn("boundary", self.refused(b"--" + BOUNDARY + b" " * 1000))


class HeaderTests(_SinkMixin, SynchronousTestCase):
    """Part headers are read as RFC 7578 and the HTTP rules say."""

    def part(self, headers, data=b"data"):
        """Return a body of one part with the given raw header lines."""
        return b"--" + BOUNDARY + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + data + \
            b"\r\n" + close()

    def test_escaped_quote(self):
        """A quoted filename with escaped quotes and backslashes is unquoted."""
        body = self.part([
            b'Content-Disposition: form-data; name="content"; filename="a\\"b\\\\c.whl"'])
        self.assertEqual(self.parse(body).files["content"].filename, 'a"b\\c.whl')

    def test_filename_as_sent(self):
        """A filename with slashes, dots and a semicolon is reported as sent."""
        body = self.part([
            b'Content-Disposition: form-data; name="content"; filename="../x/;y.whl"'])
        self.assertEqual(self.parse(body).files["content"].filename, "../x/;y.whl")

    def test_extended_filename(self):
        """An RFC 5987 filename* is decoded and wins over a plain filename."""
        body = self.part([
            b"Content-Disposition: form-data; name=content; filename=\"plain.whl\"; "
            b"filename*=UTF-8''%E2%82%ACuro.whl"])
        self.assertEqual(self.parse(body).files["content"].filename, "\N{EURO SIGN}uro.whl")

    def test_utf8_filename(self):
        """A raw UTF-8 filename, as browsers send it, is decoded."""
        body = self.part(['Content-Disposition: form-data; name="content"; '
                          'filename="caf\N{LATIN SMALL LETTER E WITH ACUTE}.whl"'.encode()])
        self.assertEqual(self.parse(body).files["content"].filename,
                         "caf\N{LATIN SMALL LETTER E WITH ACUTE}.whl")

    def test_case_and_spacing(self):
        """Header and parameter names are case-insensitive and spacing is free."""
        body = self.part([
            b"CONTENT-TYPE:application/x-wheel",
            b"content-disposition :  Form-Data ;NAME = \"content\" ;  FileName=x.whl ;",
        ])
        part = self.parse(body).files["content"]
        self.assertEqual((part.filename, part.content_type), ("x.whl", "application/x-wheel"))

    def test_folded_header(self):
        """A header continued on an indented line is joined."""
        body = self.part([b"Content-Disposition: form-data;", b'  name="a"'])
        self.assertEqual(self.parse(body).fields, {"a": ["data"]})

    def test_other_headers_ignored(self):
        """Unknown headers and an identity transfer encoding are ignored."""
        body = self.part([b'Content-Disposition: form-data; name="a"', b"X-Thing: 1",
                          b"Content-Transfer-Encoding: binary"])
        self.assertEqual(self.parse(body).fields, {"a": ["data"]})

    def test_no_name(self):
        """A part without a name, or with an empty one, is refused."""
        for line in [b"Content-Disposition: form-data", b'Content-Disposition: form-data; name=""',
                     b'Content-Disposition: form-data; filename="x.whl"']:
            self.assertEqual(self.refused(self.part([line])), "a part has no name")

    def test_no_disposition(self):
        """A part without Content-Disposition, or with no headers at all, is refused."""
        self.assertIn("no Content-Disposition", self.refused(self.part([b"Content-Type: x/y"])))
        body = b"--" + BOUNDARY + b"\r\n\r\ndata\r\n" + close()
        self.assertIn("no Content-Disposition", self.refused(body))

    def test_not_form_data(self):
        """A disposition other than form-data is refused."""
        self.assertIn("form-data", self.refused(self.part([b'Content-Disposition: inline; name="a"'])))

    def test_malformed_disposition(self):
        """An unterminated quote, a bare parameter or a repeated name is refused."""
        for line in [b'Content-Disposition: form-data; name="a', b"Content-Disposition: form-data; a",
                     b'Content-Disposition: form-data; name="a"; name="b"',
                     b"Content-Disposition: form-data; name*=koi8-r''a",
                     b'Content-Disposition: form-data; name="a"x']:
            self.assertIn("Content-Disposition", self.refused(self.part([line])))

    def test_malformed_header_line(self):
        """A header line without a colon is refused."""
        self.assertIn("header", self.refused(self.part([
            b'Content-Disposition: form-data; name="a"', b"nonsense"])))

    def test_repeated_header(self):
        """Two Content-Disposition headers in a part are refused."""
        self.assertIn("two", self.refused(self.part([
            b'Content-Disposition: form-data; name="a"',
            b'Content-Disposition: form-data; name="b"'])))

    def test_non_utf8_headers(self):
        """Part headers that are not UTF-8 are refused."""
        self.assertIn("UTF-8", self.refused(self.part([
            b'Content-Disposition: form-data; name="a"; filename="\xff"'])))

    def test_encoded_part(self):
        """A base64 part is refused rather than stored encoded."""
        self.assertIn("Content-Transfer-Encoding", self.refused(self.part([
            b'Content-Disposition: form-data; name="a"', b"Content-Transfer-Encoding: base64"])))


class LimitTests(_SinkMixin, SynchronousTestCase):
    """Every limit refuses the body as soon as it is passed, naming what passed it."""

    def test_too_many_parts(self):
        """More than max_parts parts is refused."""
        body = b"".join(text_part("n", str(i)) for i in range(4)) + close()
        self.assertEqual(len(self.parse(body, max_parts=4).fields["n"]), 4)
        self.assertEqual(self.refused(body, max_parts=3), "more than 3 parts")

    def test_header_too_large(self):
        """A header block larger than max_part_header_size is refused, even unfinished."""
        line = b'Content-Disposition: form-data; name="a"\r\nX-Pad: ' + b"p" * 100
        body = b"--" + BOUNDARY + b"\r\n" + line + b"\r\n\r\nb\r\n" + close()
        size = len(line) + 2
        self.assertEqual(self.parse(body, max_part_header_size=size).get("a"), "b")
        pieces = [body[i:i + 1] for i in range(len(body))]
        self.assertEqual(self.parse(body, pieces, max_part_header_size=size).get("a"), "b")
        message = self.refused(body, max_part_header_size=size - 1)
        self.assertIn(f"larger than {size - 1} bytes", message)
        self.refused(body, pieces, max_part_header_size=size - 1)
        endless = b"--" + BOUNDARY + b"\r\nX-Pad: " + b"p" * 10000
        self.refused(endless, [endless[i:i + 10] for i in range(0, len(endless), 10)],
                     max_part_header_size=100)

    def test_field_too_large(self):
        """A text field larger than max_field_size is refused, naming it."""
        body = text_part("description", "d" * 100) + close()
        self.assertEqual(self.parse(body, max_field_size=100).get("description"), "d" * 100)
        self.assertEqual(self.refused(body, max_field_size=99),
                         "field 'description' is larger than 99 bytes")

    def test_fields_too_large_together(self):
        """Text fields larger than max_fields_total together are refused."""
        body = b"".join(text_part(f"f{i}", "v" * 10) for i in range(10)) + close()
        self.parse(body, max_fields_total=100)
        self.assertEqual(self.refused(body, max_fields_total=99),
                         "the fields together are larger than 99 bytes")

    def test_inline_file_too_large(self):
        """A file part outside file_fields larger than max_field_size is refused, naming it."""
        body = file_part("gpg_signature", "x.asc", b"s" * 101) + close()
        self.assertEqual(self.refused(body, max_field_size=100),
                         "file part 'gpg_signature' is larger than 100 bytes")
        self.assertFiles(0)

    def test_second_content(self):
        """A second content file part is refused and the first file removed."""
        body = file_part("content", "a.whl", b"a") + file_part("content", "b.whl", b"b") + close()
        self.assertEqual(self.refused(body), "more than one 'content' file part")

    def test_content_without_filename(self):
        """A content part without a filename is refused."""
        body = text_part("content", "abc") + close()
        self.assertEqual(self.refused(body), "the 'content' part has no filename")

    def test_non_utf8_field(self):
        """A text field that is not UTF-8 is refused, naming it."""
        body = (b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="summary"\r\n\r\n'
                + b"caf\xe9\r\n" + close())
        self.assertEqual(self.refused(body), "field 'summary' is not valid UTF-8")

    def test_name_quoted_in_message(self):
        """A field name with control characters is escaped in the message."""
        body = text_part("a\x1bb", "x" * 10) + close()
        self.assertEqual(self.refused(body, max_field_size=5),
                         "field 'a\\x1bb' is larger than 5 bytes")

    def test_file_at_limit(self):
        """A file exactly max_file_size bytes long is accepted."""
        form = self.parse(twine_body(), max_file_size=len(WHEEL))
        self.assertEqual(form.files["content"].size, len(WHEEL))

    def test_upload_too_large(self):
        """A file passing max_file_size is refused mid-stream and its temporary file removed."""
        data = os.urandom(100000)
        body = twine_body(data=data, signature=False)
        sink = self.sink(max_file_size=50000)
        offset = body.index(data)
        pieces = list(chunks(body, iter(lambda: 1000, None)))
        written = 0
        for piece in pieces:
            sink.write(piece)
            written += len(piece)
            if sink.error is not None:
                break
        self.assertIsInstance(sink.error, UploadTooLarge)
        self.assertEqual(str(sink.error), "the 'content' file is larger than 50000 bytes")
        self.assertLess(written, offset + 50000 + 1000 + len(BOUNDARY) + 4)
        self.assertFiles(0)
        for piece in pieces[written // 1000:]:
            sink.write(piece)
        self.assertEqual(sink.tell(), len(body))
        self.assertFiles(0)
        self.assertRaises(UploadTooLarge, sink.finish)

    def test_preamble_too_large(self):
        """A body with no boundary in its first max_preamble_size bytes is refused early."""
        garbage = b"x" * 5000
        sink = self.feed(garbage, max_preamble_size=4096)
        self.assertIn("no multipart boundary", str(sink.error))
        body = b"p" * 100 + b"\r\n" + text_part("a", "b") + close()
        self.assertEqual(self.parse(body, max_preamble_size=100).get("a"), "b")
        self.refused(body, max_preamble_size=99)

    def test_epilogue_too_large(self):
        """A body going on past the closing boundary beyond max_epilogue_size is refused."""
        body = text_part("a", "b") + close() + b"e" * 98
        self.assertEqual(self.parse(body, max_epilogue_size=100).get("a"), "b")
        self.refused(body + b"e", max_epilogue_size=100)


class BrokenBodyTests(_SinkMixin, SynchronousTestCase):
    """Bodies that end early or are not multipart are refused without leaving files."""

    def test_truncated(self):
        """A body cut anywhere before its closing delimiter is refused and its file removed."""
        body = twine_body(data=WHEEL[:200], signature=False)
        for cut in range(len(BOUNDARY) + 2, len(body) - 2, 7):
            sink = self.feed(body[:cut])
            self.assertIsNone(sink.error)
            self.assertRaises(MultipartError, sink.finish)
            self.assertFiles(0)
            self.assertEqual(str(sink.error), "the body ended before the closing boundary")

    def test_missing_closing_boundary(self):
        """A body whose last part is followed by a plain delimiter, not a closing one, is refused."""
        body = twine_body(signature=False)[:-len(close())] + b"--" + BOUNDARY + b"\r\n"
        self.assertEqual(self.refused(body), "the body ended before the closing boundary")

    def test_garbage(self):
        """A body that is not multipart at all is refused."""
        message = "the body holds no multipart boundary"
        self.assertEqual(self.refused(b'{"name": "holy-grail"}'), message)
        self.assertEqual(self.refused(b""), message)
        self.assertEqual(self.refused(b"--" + BOUNDARY[:-1]), message)

    def test_other_boundary(self):
        """A body using another boundary than the header's is refused."""
        self.refused(twine_body(), boundary=b"other")

    def test_write_after_error(self):
        """Writes after an error are ignored but counted, and the first error stays."""
        sink = self.feed(text_part("a", "b") + b"--" + BOUNDARY + b"X")
        first = sink.error
        self.assertIsInstance(first, MultipartError)
        sink.write(b"more")
        self.assertIs(sink.error, first)
        self.assertIs(self.assertRaises(MultipartError, sink.finish), first)

    def test_missing_tmpdir(self):
        """A temporary directory that does not exist gives the OSError at finish."""
        sink = FormSink(BOUNDARY, os.path.join(self.tmpdir, "missing"), max_file_size=1000)
        sink.write(twine_body())
        self.assertIsInstance(sink.error, FileNotFoundError)
        self.assertRaises(FileNotFoundError, sink.finish)

    def test_invalid_boundary(self):
        """A sink refuses a boundary RFC 2046 does not allow."""
        self.assertRaises(MultipartError, FormSink, b"", self.tmpdir, max_file_size=1)
        self.assertRaises(MultipartError, FormSink, b"a" * 71, self.tmpdir, max_file_size=1)


class BoundaryTests(SynchronousTestCase):
    """boundary_from_content_type accepts what clients send and refuses the rest."""

    def test_twine(self):
        """The Content-Type requests_toolbelt sends gives its boundary."""
        self.assertEqual(boundary_from_content_type(b"multipart/form-data; boundary=" + BOUNDARY),
                         BOUNDARY)

    def test_uv(self):
        """The Content-Type reqwest (uv) sends gives its boundary."""
        boundary = b"1b2c3d4e5f607182-1b2c3d4e5f607182-1b2c3d4e5f607182-1b2c3d4e5f607182"
        self.assertEqual(boundary_from_content_type(b"multipart/form-data; boundary=" + boundary),
                         boundary)

    def test_quoted(self):
        """A quoted boundary, spaces and specials included, is unquoted."""
        self.assertEqual(boundary_from_content_type(b'multipart/form-data; boundary="a b:c?"'),
                         b"a b:c?")

    def test_case_and_parameters(self):
        """The type and parameter names are case-insensitive and other parameters are ignored."""
        self.assertEqual(
            boundary_from_content_type(b"Multipart/Form-Data ; charset=utf-8;BOUNDARY=xyz"),
            b"xyz")

    def test_longest(self):
        """A boundary of 70 characters is accepted."""
        self.assertEqual(boundary_from_content_type(b"multipart/form-data; boundary=" + b"a" * 70),
                         b"a" * 70)

    def test_refused(self):
        """Other types, missing, empty, long or invalid boundaries and bad syntax are refused."""
        for value in [
            b"application/x-www-form-urlencoded",
            b"multipart/mixed; boundary=abc",
            b"multipart/form-data",
            b"multipart/form-data; boundary=",
            b'multipart/form-data; boundary=""',
            b"multipart/form-data; boundary=" + b"a" * 71,
            b'multipart/form-data; boundary="abc "',
            b'multipart/form-data; boundary="a\\"b"',
            b"multipart/form-data; boundary=a\xffb",
            b'multipart/form-data; boundary="abc',
            b"multipart/form-data; boundary=a; boundary=b",
            b"",
        ]:
            self.assertRaises(MultipartError, boundary_from_content_type, value)
