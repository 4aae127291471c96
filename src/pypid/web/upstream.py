"""
The web side of the upstream proxy: what C{/simple/<project>/} and
C{/files/<project>/<filename>} answer for a project that is not hosted here.

Called by the hot-path resources only when the index has no such project
(or file), so hosted projects never pay for the upstream; a hosted name is
never looked up upstream (L{pypid.upstream.policy}).
"""

import hashlib

from twisted.internet.defer import ensureDeferred

from pypid.errors import BadGateway, NotFound
from pypid.names import is_valid_name, normalize
from pypid.upstream.fetch import UpstreamError
from pypid.upstream.pages import Offline
from pypid.web.respond import finish_later, send_bytes, send_page

#: Offered by a page served stale (RFC 9111's Warning is obsolete, but
#: proxies and people still read it; Age says how stale).
_STALE_WARNING = b'110 pypid "Response is Stale"'


def project_page(request, proxy, name, kind, redirect):
    """
    Answer C{/simple/<name>/} from the upstream.

    @param kind: C{kind()} -> the negotiated page kind (raises 406).
    @param redirect: C{redirect(request, path)} answers 301 to one of our paths.
    @return: the body, or L{NOT_DONE_YET}.
    """
    if not is_valid_name(name):
        raise NotFound("no such project")
    decision = proxy.decide(name)
    if not decision.allowed or decision.merge:
        raise NotFound("no such project")
    project = normalize(name)
    if project != name:
        return redirect(request, f"simple/{project}/")
    if proxy.mode == "redirect":
        target = f"{proxy.client.index_url}{project}/".encode("ascii")
        request.setResponseCode(302)
        request.responseHeaders.setRawHeaders(b"location", [target])
        request.responseHeaders.setRawHeaders(b"cache-control", [b"no-store"])
        request.responseHeaders.setRawHeaders(b"content-type", [b"text/plain; charset=utf-8"])
        return b"Found at the upstream index\n"
    wanted = kind(request)
    return finish_later(request, ensureDeferred(_page(request, proxy, project, wanted)))


async def _page(request, proxy, project, kind):
    try:
        found = await proxy.project_page(project, kind)
    except Offline:
        raise NotFound("no such project in the cache (the server is offline)")
    except UpstreamError as e:
        raise BadGateway(f"the upstream index failed: {e}")
    if found is None:
        raise NotFound("no such project")
    page, age, stale = found
    body = send_page(request, page)
    request.responseHeaders.setRawHeaders(b"age", [b"%d" % age])
    if stale:
        request.responseHeaders.setRawHeaders(b"warning", [_STALE_WARNING])
    return body


def file(request, proxy, project, filename, send):
    """
    Answer C{/files/<project>/<filename>} (or its C{.metadata}) from the
    upstream cache, fetching the file on its first download.

    @param send: C{send(request, record, location, etag)}, the hosted
        files' sender.
    @return: the body, L{NOT_DONE_YET}, or raises L{NotFound}.
    """
    if proxy.mode != "cache" or not is_valid_name(project) or normalize(project) != project:
        raise NotFound("no such file")
    if not proxy.decide(project).allowed:
        raise NotFound("no such file")
    return finish_later(request, ensureDeferred(_file(request, proxy, project, filename, send)))


async def _file(request, proxy, project, filename, send):
    metadata = filename.endswith(".metadata")
    name = filename[: -len(".metadata")] if metadata else filename
    listed = proxy.listed(project, name)
    if listed is None and proxy.cached.get(name) is None:
        # Not seen yet (a client with an old copy of the page): look again.
        try:
            await proxy.project_page(project, "json")
        except (Offline, UpstreamError):
            pass
        listed = proxy.listed(project, name)
    stored = proxy.cached.get(name)
    if stored is not None and stored.project != project:
        stored = None
    try:
        if metadata:
            if listed is None:
                raise NotFound("no such file")
            data = await proxy.metadata(project, listed)
            if data is None:
                raise NotFound("no such file")
            return send_bytes(request, data, b'"%s"' % hashlib.sha256(data).hexdigest().encode())
        if stored is None:
            if listed is None:
                raise NotFound("no such file")
            stored = await proxy.fetch(listed)
    except UpstreamError as e:
        raise BadGateway(f"the upstream index failed: {e}")
    return send(request, stored, proxy.storage.locate(stored),
                b'"%s"' % stored.sha256.encode("ascii"))
