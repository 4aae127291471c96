"""
S3's own limits, which the S3 code enforces and the configuration checks
against. Constants only, in C{core/} because both layers need them: reading
the configuration loads no S3 client (botocore, Twisted's HTTP client) for a
server that keeps its packages on local disk.
"""

from __future__ import annotations

#: S3's smallest part (but the last) of a multipart upload, its largest part
#: (and single PUT), and most parts.
MIN_PART_SIZE = 5 << 20
MAX_PART_SIZE = 5 << 30
MAX_PARTS = 10000

#: The most bytes of an object's user metadata (every x-amz-meta- name
#: without that prefix, and every value, summed).
MAX_USER_METADATA = 2048

#: The longest validity SigV4 allows a presigned URL (7 days).
MAX_PRESIGN_SECONDS = 604800

#: pypid's own cap (not S3's) on the requests a second of the background
#: full check: a million files with their metadata siblings are 2,000 list
#: pages, listed in 200 s at this rate (or as long as the store takes, when
#: a page takes it more than 0.1 s; 0.01 USD at AWS's price of a listing),
#: while objects that must be read one by one (put in the bucket behind
#: pypid's back) cannot turn the check into a burst of
#: thousands of requests a second that competes with uploads. See the
#: C{[s3] check_rate} key.
CHECK_RATE = 10.0
