"""
The outbound HTTP client that S3 and the upstream index share: its
connection pool, its connect timeout, and how HTTPS servers are verified
(certificates and host names always; against a private CA with
C{[pypid] ca_bundle}).

Bodies of answers are read with L{pypid.http.bodies} (bounded, with an idle
deadline): treq's C{timeout} covers only the headers.
"""

import re

import treq.client
from twisted.internet.ssl import Certificate, trustRootFromCertificates
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS

from pypid.http.pool import quiet_pool


def https_policy(ca_bundle=None):
    """
    How outbound HTTPS is checked: certificates and host names verified
    (service-identity), against the system's trust roots, or only those of
    C{ca_bundle} (a PEM file of CA certificates: a private CA).

    @raise ValueError: when the bundle cannot be read or holds no certificate.
    """
    if ca_bundle is None:
        return BrowserLikePolicyForHTTPS()
    try:
        with open(ca_bundle, "rb") as f:
            pem = f.read()
    except OSError as e:
        raise ValueError(f"cannot read {ca_bundle}: {e.strerror}")
    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem,
                        re.DOTALL)
    try:
        certificates = [Certificate.loadPEM(block) for block in blocks]
    except Exception as e:
        raise ValueError(f"{ca_bundle} holds an unreadable certificate: {e}")
    if not certificates:
        raise ValueError(f"{ca_bundle} holds no PEM certificate")
    return BrowserLikePolicyForHTTPS(trustRoot=trustRootFromCertificates(certificates))


def make_http(reactor, timeout, connections=16, policy=None):
    """
    The treq client for outbound calls (S3, the upstream): persistent
    connections (enough for the parallel calls of a rebuild), a connect
    timeout, certificates verified (see L{https_policy}).
    """
    pool = quiet_pool(reactor, connections)
    agent = Agent(reactor, contextFactory=policy or BrowserLikePolicyForHTTPS(), pool=pool,
                  connectTimeout=timeout)
    return treq.client.HTTPClient(agent), pool
