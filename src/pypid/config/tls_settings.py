"""
The C{[tls]} section: the PEM files of the C{https:} listeners, and the
rules that keep passwords off plain HTTP (L{check_tls}).
"""

from __future__ import annotations

import attrs

from pypid.config.server_settings import HTTP_REDIRECT, HTTPS, parse_listen_address
from pypid.config.values import Fail, Keys, Values, parse_boolean, parse_optional_path


@attrs.frozen
class TLSConfig:
    """The C{[tls]} section; every path L{None} when it is absent."""

    #: the certificate, possibly followed by its chain (certbot's fullchain.pem)
    certificate: str | None
    #: its private key, unencrypted
    key: str | None
    #: intermediate certificates sent after the certificate, or L{None}
    chain: str | None
    #: serve a certificate that has expired or is not valid yet (a lab's), not refuse it
    allow_expired: bool = False


def no_tls() -> TLSConfig:
    """The C{[tls]} section of a configuration without one: every path L{None}."""
    return TLSConfig(certificate=None, key=None, chain=None)


#: key -> (default, parser)
TLS_KEYS: Keys = {
    "certificate": ("", parse_optional_path),
    "key": ("", parse_optional_path),
    "chain": ("", parse_optional_path),
    "allow_expired": ("no", parse_boolean),
}


def check_tls(values: Values, fail: Fail) -> None:
    """
    Check C{[tls]} against the listeners: an C{https:} listener needs a
    certificate and key, and only C{http-redirect:} ones stand beside it,
    so credentials never go over plain HTTP; C{[tls]} without an C{https:}
    listener, and a redirect with nowhere to go, are mistakes.
    """
    listen = ("pypid", "listen")
    addresses = [parse_listen_address(line) for line in values[listen]]
    https = [address for address in addresses if address.kind == HTTPS]
    if not https:
        for key in TLS_KEYS:
            if values["tls", key] not in (None, False):
                fail("tls", key, "set, but no https: listener in [pypid] listen uses it: add "
                     "one such as https:8443, or leave [tls] out", [listen])
        for address in addresses:
            if address.kind == HTTP_REDIRECT:
                fail("pypid", "listen", f"{address.description!r} redirects to an https: "
                     "listener, and there is none: add one such as https:8443")
        return
    first = https[0].description
    for key in ("certificate", "key"):
        if values["tls", key] is None:
            fail("tls", key, f"required by the https listener {first!r} in [pypid] listen: "
                 "set [tls] certificate and [tls] key to the PEM files of its certificate "
                 "and private key", [listen])
    for address in addresses:
        if address.kind == "endpoint":
            fail("pypid", "listen", f"{address.description!r} would serve plain HTTP beside "
                 f"the https listener {first!r}, and passwords sent to it would cross the "
                 "network unencrypted: use http-redirect:PORT for plain HTTP (it only "
                 "redirects to HTTPS)")
    base_url = values["pypid", "base_url"]
    if base_url is not None and not base_url.startswith("https://"):
        fail("pypid", "base_url", f"must be an https:// URL when pypid serves HTTPS ({first!r} "
             "in [pypid] listen): http:// links would send clients, and their passwords, to "
             "plain HTTP", [listen])
