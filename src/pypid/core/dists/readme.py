"""
A project's description rendered to HTML as the public index renders it,
for the pages for people: Markdown (GitHub's or CommonMark),
reStructuredText (also for no content type) or plain text by
C{Description-Content-Type}, with C{readme_renderer} (the public index's
own), sanitized by C{nh3}. It runs once per upload, in a worker thread,
never at request time; the renderer is imported on first use, so a server
that never renders does not load docutils and Pygments.

Text over L{MAX_TEXT}, HTML over L{MAX_HTML} (a link reference used
thousands of times turns kilobytes into megabytes), a renderer that fails
(a 300-deep list is a C{RecursionError} in docutils), invalid markup and an
unknown content type fall back to plain text, escaped in a C{<pre>}. The
bounds are twice and four times the largest of 880 real READMEs measured
(231 kB of text, 237 kB of HTML). Time they cannot bound (a Markdown
renderer may be quadratic): the daemon runs this module in another process
with a time budget (L{pypid.sandbox.readme_sandbox}).
"""

from __future__ import annotations

import copy
import html
import re
from collections.abc import Callable
from typing import Any

import attrs

#: Content types and the renderer each one takes.
MARKDOWN, RST, PLAIN = "text/markdown", "text/x-rst", "text/plain"

#: Markdown variants readme_renderer knows; GFM is the default, as on the
#: public index.
_VARIANTS = {"gfm": "GFM", "commonmark": "CommonMark"}

#: The longest description rendered (characters); a longer one is shown as
#: plain text, cut there.
MAX_TEXT = 512 * 1024

#: The longest rendered HTML kept (characters); beyond it, the plain text
#: is shown, itself cut to fit.
MAX_HTML = 1024 * 1024


@attrs.frozen
class RenderedDescription:
    """
    A description as HTML: a sanitized fragment for inside an C{<article>},
    and what rendered it (L{MARKDOWN}, L{RST} or L{PLAIN}).

    @ivar fell_back: whether the content type asked for another renderer
        that could not render it (shown as plain text instead).
    @ivar reason: why it fell back, for the log: L{None} when the markup was
        merely invalid, else what bound it passed or what the renderer raised.
    """

    html: str
    renderer: str
    fell_back: bool = False
    reason: str | None = None


#: A renderer: C{render(text, content_type) -> RenderedDescription}, called
#: in a worker thread. L{render_description} renders in this process; the
#: daemon's renders in a sandbox (L{pypid.sandbox.readme_sandbox}).
Renderer = Callable[[str | None, str | None], RenderedDescription]


def parse_content_type(value: str | None) -> tuple[str, str | None]:
    """
    The renderer and the Markdown variant a C{Description-Content-Type}
    asks for: C{(renderer, variant)}.

    >>> parse_content_type("text/markdown; charset=UTF-8; variant=CommonMark")
    ('text/markdown', 'CommonMark')
    """
    if not value:
        return RST, None
    kind, _, rest = value.partition(";")
    kind = kind.strip().lower()
    params = {key.strip().lower(): val.strip().strip('"')
              for key, _, val in (part.partition("=") for part in rest.split(";"))}
    if kind == MARKDOWN:
        return MARKDOWN, _VARIANTS.get(params.get("variant", "gfm").lower(), "GFM")
    if kind == RST:
        return RST, None
    return PLAIN, None


#: A word of prose that means the same as reStructuredText and as Markdown
#: (GitHub's and CommonMark): ASCII letters and digits, joined by single
#: dots, commas or hyphens (C{1.0.0}, C{bench-upload-00042}, C{a,b}).
_WORD = r"[A-Za-z0-9]+(?:[.,-][A-Za-z0-9]+)*"

#: A line of prose: words between single spaces, the later ones perhaps
#: ending a sentence or a clause. The first word never ends with a dot:
#: C{A. Einstein}, C{x.} and C{1.} start lists.
_LINE = rf"{_WORD}(?: {_WORD}[.,]?)*"

#: Prose: paragraphs of such lines, between blank lines, and line breaks
#: after the last. What is left out is what either markup could read as
#: markup (a leading space is a quote or a definition, two trailing ones
#: a line break, C{--} and C{...} are typographic in reStructuredText,
#: C{www.} a link in Markdown); C{tests/unit/core/dists/test_readme.py} holds the property
#: that this HTML is C{readme_renderer}'s.
_PROSE = re.compile(rf"{_LINE}(?:\n{_LINE})*(?:\n\n+{_LINE}(?:\n{_LINE})*)*\n*")

#: Blank lines between paragraphs.
_PARAGRAPH_BREAK = re.compile(r"\n\n+")

#: A character prose never has: most descriptions with markup are told
#: from prose at their first one, without reading them whole.
_NOT_PROSE = re.compile(r"[^A-Za-z0-9 .,\n-]")

#: The longest text tried as prose (characters): the match holds the
#: interpreter lock, 0.3 us a character at worst (5 ms for 16 kB of lines
#: of words that fail at the last one); a longer one goes to a child.
_PROSE_MAX = 16 * 1024


def render_without_renderer(text: str | None,
                            content_type: str | None = None) -> RenderedDescription | None:
    """
    The description as L{render_description} renders it, when that needs
    no renderer, else L{None}: no description, plain text, a description
    too long to render, and prose (L{_PROSE}, up to L{_PROSE_MAX}
    characters), whose HTML is its paragraphs. It takes microseconds and
    imports nothing, so the daemon asks it before it starts a child
    (L{pypid.sandbox.readme_sandbox}) for the many descriptions that are a
    sentence or two (C{UNKNOWN}, a summary repeated).
    """
    if text is None or not text.strip():
        return RenderedDescription("", PLAIN)
    renderer, _ = parse_content_type(content_type)
    if renderer == PLAIN:
        return RenderedDescription(_plain(text), PLAIN)
    if len(text) > MAX_TEXT:
        return plain_description(text, f"the description has {len(text):,} characters, "
                                       f"more than {MAX_TEXT:,}")
    if (len(text) > _PROSE_MAX or _NOT_PROSE.search(text) is not None
            or _PROSE.fullmatch(text) is None
            or (renderer == MARKDOWN and "www." in text.lower())):
        return None
    paragraphs = _PARAGRAPH_BREAK.split(text.rstrip("\n"))
    return RenderedDescription("".join(f"<p>{p}</p>\n" for p in paragraphs), renderer)


def render_description(text: str | None,
                       content_type: str | None = None) -> RenderedDescription:
    """Render a description as the public index does."""
    known = render_without_renderer(text, content_type)
    if known is not None:
        return known
    assert text is not None  # (L{render_without_renderer} answers for no text)
    renderer, variant = parse_content_type(content_type)
    try:
        if renderer == MARKDOWN:
            from readme_renderer.markdown import render

            rendered = render(text, variant=variant or "GFM")  # (always given for Markdown)
        else:
            rendered = _render_rst(text)
    except RecursionError:
        return plain_description(text, "the description nests too deeply to render")
    except Exception as e:
        # (a renderer's bug on hostile input: the upload, the import, the
        # cache go on with the plain text, never a 500)
        return plain_description(text, f"the renderer failed: {type(e).__name__}: {e}"[:200])
    if rendered is None:
        return plain_description(text, None)
    if len(rendered) > MAX_HTML:
        return plain_description(text, f"the description renders to {len(rendered):,} "
                                       f"characters of HTML, more than {MAX_HTML:,}")
    return RenderedDescription(_own_ids(rendered), renderer)


def plain_description(text: str, reason: str | None) -> RenderedDescription:
    """
    C{text}, which its content type asked to render as markup, shown as
    plain text instead: escaped, in a C{<pre>}, cut to fit L{MAX_HTML}.

    @param reason: why, for the log; L{None} for invalid markup (as the
        public index does, not worth a line in the log).
    """
    return RenderedDescription(_plain(text), PLAIN, fell_back=True, reason=reason)


# (docutils' settings object, untyped there)
_rst_settings: Any = None


def _render_rst(text: str) -> str | None:
    """
    reStructuredText as C{readme_renderer.rst.render} renders it (its
    settings, writer, translator and sanitizer), but with docutils'
    settings built once rather than at every call: 2.0 ms rather than
    4.0 ms for a short description, which every upload pays; and without
    the stylesheets, which only the whole page would show
    (C{tests/unit/core/dists/test_readme.py} checks the output is the renderer's own).
    """
    global _rst_settings
    import io

    from docutils.core import publish_parts
    from docutils.frontend import get_default_settings
    from docutils.parsers.rst import Parser
    from docutils.utils import SystemMessage
    from readme_renderer import rst

    if _rst_settings is None:
        writer = rst.Writer()
        writer.translator_class = rst.ReadMeHTMLTranslator
        settings = get_default_settings(Parser, writer)
        for key, value in rst.SETTINGS.items():
            setattr(settings, key, value)
        settings.traceback = True  # (errors raise rather than exit the process)
        # (no stylesheet: the writer looks each one up on disk, and reads
        # it to embed it, at every render, for a part of the page that is
        # not the fragment kept; 0.2 ms of a short description's 1.2 ms)
        settings.stylesheet_path = []
        settings.stylesheet = []
        _rst_settings = settings
    settings = copy.copy(_rst_settings)  # (one per call: renders run in several threads)
    settings.warning_stream = io.StringIO()
    writer = rst.Writer()
    writer.translator_class = rst.ReadMeHTMLTranslator
    try:
        parts = publish_parts(text, writer=writer, settings=settings)
    except SystemMessage:
        return None
    rendered = parts.get("docinfo", "") + parts.get("fragment", "")
    return rst.clean(rendered) if rendered else None


#: A start tag of sanitized HTML (text has its C{<} escaped), and in it an
#: C{id} or C{name} attribute not yet in the README's own namespace (the
#: renderer prefixes the ids it makes, not those of raw HTML).
_TAG = re.compile(r"<[A-Za-z][^>]*>")
_FOREIGN_ID = re.compile(r'(\s(?:id|name)=")(?!user-content-)')


def _own_ids(html_text: str) -> str:
    """
    The README's ids moved into its namespace, C{user-content-}, as GitHub
    and the public index do: an id of the page itself (C{files},
    C{suggestions}) taken by a README would take its links and labels.
    """
    return _TAG.sub(lambda tag: _FOREIGN_ID.sub(r"\1user-content-", tag.group()), html_text)


def _plain(text: str) -> str:
    """
    Plain text as HTML: escaped, in a C{<pre>}, line breaks kept; cut to
    fit L{MAX_HTML} (escaping makes a character up to six), with a line
    saying so.
    """
    escaped = html.escape(text[:MAX_HTML])
    if len(escaped) > MAX_HTML or len(text) > MAX_HTML:
        cut = escaped[:MAX_HTML]
        # (never in the middle of an entity)
        amp = cut.rfind("&", max(0, len(cut) - 8))
        if amp != -1 and ";" not in cut[amp:]:
            cut = cut[:amp]
        return (f'<pre class="description-text">{cut}</pre>'
                '<p class="muted">The description is cut here: it is too long to show.</p>')
    return f'<pre class="description-text">{escaped}</pre>'


#: A few lines of each markup that load all its renderer needs.
_WARM = {MARKDOWN: "*warm*\n\n```python\nx = 1\n```\n",
         RST: "*warm*\n\n.. code:: python\n\n   x = 1\n"}


def warm_up(renderer: str | None = None) -> None:
    """
    Import a renderer (L{MARKDOWN} or L{RST}; both when L{None}) and render
    a few lines of its markup, so that the first real render is not also
    the one that loads docutils or Pygments. Each costs a process memory
    (peak RSS: 18 MiB for reStructuredText, 5.5 for Markdown, 20 for both,
    beside the 14 of the interpreter and this module), so a child of the
    sandbox loads only those it is asked for.
    """
    for kind, text in _WARM.items():
        if renderer in (None, kind):
            render_description(text, kind)
