"""
Tests that the refusals C{docs/http-api.rst} shows as examples are what the
code answers: each example, its placeholders (C{<filename>}) and elisions
(C{...}) standing for any text, is matched against the message the code
builds for it, so that a message reworded without its example (or an
example written from memory) fails here.
"""

import hashlib
import os
import re

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel

from pypid.core.dists.upload import validate_upload
from pypid.core.dists.wheelfile import InvalidWheelFile, WheelInfo, check_matches_filename
from pypid.core.util.http_errors import BadRequest, HTTPError
from pypid.web.changes.upload_store import _deleted, tag_mismatch_hint
from pypid.web.server.respond import simple_post_error
from pypid.web.server.upload_form import FilePart, Form
from pypid.web.serving.index_root import ReadOnlyPublish
from tests import CHECKOUT
from tests.harness.indexes import Server

HTTP_API = os.path.join(CHECKOUT, "docs", "http-api.rst")


def examples(start):
    """The examples (C{``...``} literals) of the HTTP API that start with C{start}."""
    with open(HTTP_API, encoding="utf-8") as f:
        text = f.read()
    found = [" ".join(literal.split()) for literal in re.findall(r"``(.+?)``", text, re.S)]
    return [literal for literal in found if literal.startswith(start)]


def pattern(example):
    """A regular expression of C{example}: C{<...>} and C{...} match any text."""
    parts = re.split(r"<[^<>]+>|\.\.\.", example)
    return "".join(re.escape(part) + ".*?" for part in parts[:-1]) + re.escape(parts[-1])


def answer(error: HTTPError) -> str:
    """An error's status and whole message, as the docs show most of them."""
    return f"{error.code} {error.detail}"


class RefusalExampleTests(SynchronousTestCase):
    """The refusals shown in the HTTP API are the code's."""

    def assertShown(self, start, error):
        """Some example starting with C{start} is C{error}'s answer; assert it."""
        shown = examples(start)
        self.assertTrue(shown, f"no example starts with {start!r}")
        real = answer(error)
        # (an example in a sentence that gave the status already shows the message alone)
        self.assertTrue(any(re.fullmatch(pattern(example), text) for example in shown
                            for text in (real, error.detail)), (real, shown))

    def test_tag_mismatch(self):
        """The Tag lines' refusal: what is wrong first, the member in it, the key last."""
        member = "decord-0.6.0.dist-info/WHEEL"
        with self.assertRaises(InvalidWheelFile) as caught:
            check_matches_filename(WheelInfo(frozenset({"cp312-cp312-win_amd64"}), None),
                                   "decord-0.6.0-cp312-cp312-manylinux_2_17_x86_64.whl", member)
        error = BadRequest(str(caught.exception), remedy=tag_mismatch_hint(None, "decord"))
        self.assertShown("400 the Tag lines", error)

    def test_bad_filename(self):
        """A filename that is not valid is named once, with what is wrong with it."""
        filename = "bad name-1.1-py3-none-any.whl"
        part = FilePart("content", filename, "application/octet-stream", "/nonexistent", 4,
                        hashlib.sha256(b"data").hexdigest(), "0" * 64, "0" * 32)
        form = Form(fields={":action": ["file_upload"], "metadata_version": ["2.1"],
                            "name": ["example"], "version": ["1.1"],
                            "sha256_digest": [part.sha256]},
                    files={"content": part})
        with self.assertRaises(BadRequest) as caught:
            validate_upload(form)
        self.assertShown("the filename 'bad name", caught.exception)

    def test_deleted_filename(self):
        """A deleted filename's refusal ends with what to do instead."""
        self.assertShown("400 File already exists ('<filename>'): this filename",
                         _deleted("idna-3.20-py3-none-any.whl"))

    def test_view(self):
        """A view's refusal names the hosted index it reads."""
        server = Server(self)
        error = ReadOnlyPublish("prod", server.access, ("release",))._refusal(
            Request(DummyChannel()), "upload to")
        self.assertShown("405 prod is a view", error)

    def test_upload_to_simple(self):
        """An upload sent to the simple pages is told the index's root URL."""
        request = Request(DummyChannel())
        request.requestHeaders.setRawHeaders(b"host", [b"host"])
        self.assertShown("405 this URL does not take POST", simple_post_error(request, "/"))
