"""
The admin APIs, one module per concern: advisories, the upstream cache,
groups, indexes, the recycle bin, retention, tokens, usage, the audit trail
and metrics.
"""
