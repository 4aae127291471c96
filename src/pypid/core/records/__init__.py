"""
What the server keeps account of: the audit chain, metrics and download
counts.
"""
