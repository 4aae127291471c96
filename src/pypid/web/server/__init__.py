"""
The HTTP server itself: the site, its hardened channel, request bodies, the
areas the Klein apps are composed of, health and the redirect listener.
"""
