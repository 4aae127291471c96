"""
End-to-end tests: the real daemon started on a loopback port, driven by real
clients.
"""
