"""
S3's own limits, which the S3 code enforces and the configuration checks
against. A module of constants only, so that reading the configuration does
not load the S3 client (botocore, Twisted's HTTP client) for a server that
keeps its packages on local disk.
"""

#: S3's smallest part (but the last) of a multipart upload, its largest part
#: (and single PUT), and most parts.
MIN_PART_SIZE = 5 << 20
MAX_PART_SIZE = 5 << 30
MAX_PARTS = 10000

#: The longest validity SigV4 allows a presigned URL (7 days).
MAX_PRESIGN_SECONDS = 604800
