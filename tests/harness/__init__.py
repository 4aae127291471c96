"""
What the tests share: fixtures, fakes, and the real servers the tests start
(the daemon, S3 stores, an upstream, browsers, LDAP, proxies); with the
tests of the harness itself.
"""
