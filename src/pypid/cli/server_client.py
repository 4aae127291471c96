"""The blocking HTTP client the tools share: they run outside the server."""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from http.client import HTTPMessage, HTTPResponse
from typing import IO, TYPE_CHECKING, Any, TextIO
from urllib.parse import urljoin, urlsplit

if TYPE_CHECKING:
    from twisted.logger import ILogObserver, LogEvent


class CliError(Exception):
    """A failure to report in one line; C{status}, the exit status, is 2 for a usage error."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class Server:
    """One pypid server, asked with blocking requests."""

    def __init__(self, url: str, user: str | None = None, password: str | None = None,
                 timeout: float = 300, cert: str | None = None) -> None:
        """@param cert: a PEM file of CA certificates to trust instead of the system's."""
        self.url = url.rstrip("/") + "/"
        self._cert = cert
        self._opener = _OPENER if cert is None else _opener_trusting(cert)
        self._auth: str | None = None
        if user and not _safe_for_credentials(self.url):
            raise CliError(f"{self.url}: credentials are only sent over https:// (or to this "
                           "machine over http://)")
        if user:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self._auth = "Basic " + token
        self._timeout = timeout

    def request(self, method: str, path_or_url: str, headers: Mapping[str, str] | None = None,
                body: bytes | None = None) -> HTTPResponse:
        """Make a request; return the response (the caller reads it)."""
        url = urljoin(self.url, path_or_url)
        request = urllib.request.Request(url, data=body, method=method,
                                         headers=dict(headers or {}))
        if self._auth:
            request.add_header("Authorization", self._auth)
        try:
            return self._opener.open(request, timeout=self._timeout)
        except urllib.error.HTTPError as e:
            reason = e.read(500).decode("utf-8", "replace").strip() or e.reason
            raise CliError(f"{method} {url}: {e.code} {reason}")
        except (urllib.error.URLError, OSError) as e:
            cause = e.reason if isinstance(e, urllib.error.URLError) else e
            if isinstance(cause, ssl.SSLCertVerificationError):
                raise CliError(f"cannot reach {url}: {cause}; checked against "
                               f"{_trusted(self._cert)}: give the server's CA with --cert PEM "
                               "or PYPID_CERT=PEM")
            raise CliError(f"cannot reach {url}: {cause}")


def json_answer(server: Server, *request: Any) -> Any:
    """The server's answer to C{server.request(*request)}, a JSON document."""
    with server.request(*request) as response:
        return json.loads(response.read())


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: they would carry the credentials elsewhere."""

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: HTTPMessage, newurl: str) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _opener_trusting(cert: str) -> urllib.request.OpenerDirector:
    """An opener like L{_OPENER} that trusts the CA certificates of the PEM file C{cert}."""
    try:
        context = ssl.create_default_context(cafile=cert)
    except (OSError, ssl.SSLError) as e:
        raise CliError(f"--cert {cert}: cannot use it: {getattr(e, 'strerror', None) or e}")
    return urllib.request.build_opener(_NoRedirects, urllib.request.HTTPSHandler(context=context))


def _trusted(cert: str | None) -> str:
    """The CA certificates a server's certificate was checked against, for a person."""
    if cert is not None:
        return f"the CA certificates of {cert} (--cert or $PYPID_CERT)"
    paths = ssl.get_default_verify_paths()
    where = " and ".join(path for path in (paths.cafile, paths.capath) if path)
    return (f"the system's CA certificates ({where or 'none found'}; "
            f"${paths.openssl_cafile_env} names others)")


def _safe_for_credentials(url: str) -> bool:
    """Whether credentials may go to C{url}: https, or plain http to this machine."""
    parts = urlsplit(url)
    return parts.scheme == "https" or (
        parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"))


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """The options every tool takes: the server, and who to act as."""
    parser.add_argument("--server", default=os.environ.get("PYPID_URL", "http://127.0.0.1:8080/"),
                        help="the pypid server's URL (default: $PYPID_URL or the local one)")
    parser.add_argument("--user", default=os.environ.get("PYPID_USER"),
                        help="the user to act as (password: $PYPID_PASSWORD, or asked)")
    parser.add_argument("--cert", default=os.environ.get("PYPID_CERT"), metavar="PEM",
                        help="trust the CA certificates of this file for an https server "
                             "(a private CA, as 'pypid-admin tls' makes; default: "
                             "$PYPID_CERT, or the system's)")


def server_from(options: argparse.Namespace) -> Server:
    """The L{Server} the parsed options name, asking for the password if needed."""
    password = None
    if options.user:
        password = os.environ.get("PYPID_PASSWORD")
        if password is None:
            password = ask_password(f"Password for {options.user}: ")
    return Server(options.server, options.user, password, cert=options.cert)


def ask_password(prompt: str) -> str:
    """A password typed at the terminal; none there is a L{CliError} (status 2)."""
    if not sys.stdin.isatty():
        raise CliError("no terminal to ask for the password: set PYPID_PASSWORD", status=2)
    try:
        return getpass.getpass(prompt)
    except EOFError:
        raise CliError("no password given: type it, or set PYPID_PASSWORD", status=2) from None


def log_lines(err: TextIO, prog: str, verbose: bool,
              ignore: Callable[[LogEvent], bool] | None = None) -> ILogObserver:
    """
    A log observer writing events as C{<prog>: ...} lines to C{err}: warnings
    and worse, and pypid's own news too with C{verbose} (never Twisted's), but
    not those C{ignore(event)} is true of.
    """
    from twisted.logger import ILogObserver, LogLevel, formatEvent
    from zope.interface import provider

    lowest = LogLevel.info if verbose else LogLevel.warn

    @provider(ILogObserver)
    def observe(event: LogEvent) -> None:
        level = event.get("log_level", LogLevel.info)
        if level < lowest or (ignore is not None and ignore(event)):
            return
        if level < LogLevel.warn and not event.get("log_namespace", "").startswith("pypid"):
            return
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            text = f"{text}: {failure.getErrorMessage()}"
        err.write(f"{prog}: {text}\n")
    return observe
