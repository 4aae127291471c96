"""
The upstream index: what pypid needs to proxy and cache another simple index
(the public one or a corporate one) for projects it does not host.

L{pypid.upstream.parser} turns an upstream project page, in either of the
simple API's serializations, into validated values; it is pure, so the
caching policy built on it can be tested without a network.
"""

from __future__ import annotations
