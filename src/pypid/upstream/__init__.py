"""
The upstream index: what pypid needs to proxy and cache another simple index
(the public one or a corporate one) for projects it does not host.
"""
