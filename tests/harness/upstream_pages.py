"""
Upstream project pages as warehouse writes them, PEP 691 JSON
(L{json_body}, L{json_file}) and PEP 503 HTML (L{html_body}, L{anchor}),
for the tests that read them (they were L{tests.unit.upstream.test_upstream_page}'s).
"""

import hashlib
import json

PROJECT = "sample-project"
PAGE_URL = "https://upstream.example/simple/sample-project/"
FILES = "https://files.upstream.example/packages/"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "text/html; charset=utf-8"

WHEEL_NAME = "sample_project-1.0-py3-none-any.whl"


SHA_WHEEL = hashlib.sha256(b"the 1.0 wheel").hexdigest()


SHA = SHA_WHEEL


def json_body(files, name="sample-project", meta=None):
    """Return a PEP 691 project page as warehouse shapes it."""
    if meta is None:
        meta = {"api-version": "1.4", "_last-serial": 27182818}
    page = {"meta": meta, "name": name, "versions": ["0.9", "1.0"], "files": files}
    return json.dumps(page).encode("utf-8")


def json_file(filename=WHEEL_NAME, url=None, sha256=SHA, **fields):
    """Return one JSON file entry, with C{fields} added under their JSON names."""
    entry = {
        "filename": filename,
        "url": FILES + filename if url is None else url,
        "hashes": {"sha256": sha256},
    }
    for key, value in fields.items():
        entry[key.replace("_", "-")] = value
    return entry


def html_body(anchors, title="sample-project", head="", tail=""):
    """Return a PEP 503 project page as warehouse's template writes it."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n  <head>\n"
        '    <meta name="pypi:repository-version" content="1.4">\n'
        f"    <title>Links for {title}</title>\n{head}  </head>\n  <body>\n"
        f"    <h1>Links for {title}</h1>\n{anchors}\n  </body>\n</html>\n{tail}"
    ).encode()


def anchor(href, attributes="", text=None):
    """Return one file anchor; C{attributes} are written as given."""
    if text is None:
        text = href.split("#")[0].rsplit("/", 1)[-1]
    return f'    <a href="{href}"{attributes}>{text}</a><br />\n'
