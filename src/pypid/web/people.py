"""
The pages for people: what a browser shows at C{/} and C{/project/<name>/}.

Installers never read these; they are rendered on the first request and
kept with the project's index pages (see L{pypid.web.routes.kept_page}), so
a browser costs what a page of the simple index does.
"""

import html

import attrs
from klein import Klein

from pypid.core.errors import NotFound
from pypid.core.index import Page
from pypid.core.names import is_valid_name, normalize
from pypid.web.respond import send_page
from pypid.web.routes import answer_errors, kept_page
from pypid.web.site import SECURITY_HEADERS

_HTML = b"text/html; charset=utf-8"


@attrs.define(slots=False)
class PeoplePages:
    """
    The landing page and a page per project.

    @ivar _index: the L{pypid.core.index.Index}.
    @ivar _access: the L{pypid.web.access.Access} gate.
    @ivar _base_url: the configured public URL, or L{None}.
    """

    _index: object
    _access: object
    #: C{file_url(record)}: a file's absolute link (these pages are not
    #: under C{/simple/<project>/}, so the index's relative links would not do)
    _file_url: object
    _base_url: str | None = None
    _landing: tuple | None = attrs.field(default=None, init=False)

    app = Klein()
    answer_errors(app)

    @app.route("/", methods=["GET", "HEAD"])
    async def landing(self, request):
        """A page saying what this server is and how to use it."""
        return await self._human_page(request, self._landing_page)

    @app.route("/project/<string:name>/", methods=["GET", "HEAD"])
    async def project(self, request, name):
        """A page about one project: its releases and files."""
        return await self._human_page(request, lambda: self._project_page(request, name))

    async def _human_page(self, request, make):
        # (set by the site for every answer too; here for any other server)
        for header, value in SECURITY_HEADERS:
            request.responseHeaders.setRawHeaders(header, value)
        gate = self._access.gate_read(request)
        if gate is not None:
            await gate
        return send_page(request, await make())

    async def _landing_page(self):
        serial = self._index.serial
        if self._landing is None or self._landing[0] != serial:
            body = _LANDING.format(
                base=html.escape(self._base_url or "http://<this server>/"),
                projects=len(self._index.projects()),
                files=len(self._index),
            ).encode("utf-8")
            self._landing = (serial, Page.of(body, _HTML))
        return self._landing[1]

    async def _project_page(self, request, name):
        if not is_valid_name(name) or not self._access.may_read(request, name):
            raise NotFound("no such project")
        project = self._index.project(normalize(name))
        if project is None:
            raise NotFound("no such project")
        return await kept_page(self._index, project, ("people",),
                               lambda: self._render_project(project))

    async def _render_project(self, project):
        rows = []
        for record in reversed(project.sorted_files()):
            yanked = (f' <em>yanked{": " + html.escape(record.yanked) if record.yanked else ""}</em>'
                      if record.yanked is not None else "")
            rows.append(
                f'<tr><td>{html.escape(record.version)}</td>'
                f'<td><a href="{html.escape(self._file_url(record))}">'
                f'{html.escape(record.filename)}</a>{yanked}</td>'
                f'<td>{record.size}</td><td>{html.escape(record.upload_time_iso[:19])}</td>'
                f'<td><code>{record.sha256}</code></td></tr>'
            )
        body = _PROJECT.format(
            name=html.escape(project.display_name),
            normalized=html.escape(project.name),
            base=html.escape(self._base_url or "http://<this server>/"),
            rows="\n".join(rows) or '<tr><td colspan="5">No files.</td></tr>',
        ).encode("utf-8")
        return Page.of(body, _HTML)


_PROJECT = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{name} - pypid</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{padding:.2em .6em;text-align:left;border-bottom:1px solid #ddd}}
code{{font-size:.8em}}pre{{background:#f4f4f4;padding:.6em}}</style></head>
<body><p><a href="../../">pypid</a></p><h1>{name}</h1>
<pre>pip install --index-url {base}simple/ {normalized}</pre>
<table><tr><th>version</th><th>file</th><th>bytes</th><th>uploaded (UTC)</th><th>sha256</th></tr>
{rows}
</table></body></html>
"""

_LANDING = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pypid package index</title>
<style>body{{font-family:sans-serif;max-width:46em;margin:2em auto;padding:0 1em;line-height:1.5}}
pre{{background:#f4f4f4;padding:.6em;overflow-x:auto}}</style></head>
<body><h1>pypid</h1>
<p>This is a private Python package index: {projects} projects, {files} files.
Browse the <a href="simple/">simple index</a>.</p>
<h2>Install with pip or uv</h2>
<pre>pip install --index-url {base}simple/ PROJECT
uv pip install --index-url {base}simple/ PROJECT</pre>
<h2>Publish with twine or uv</h2>
<pre>twine upload --repository-url {base} dist/*
uv publish --publish-url {base} --check-url {base}simple/ dist/*</pre>
</body></html>
"""
