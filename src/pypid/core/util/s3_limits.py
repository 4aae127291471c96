"""
S3's own limits, which the S3 code enforces and the configuration checks
against: in C{core/} so that reading the configuration loads no S3 client.
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
#: full check (C{[s3] check_rate}): a million files with their metadata
#: siblings are 2,000 list pages, listed in 200 s at this rate (0.01 USD at
#: AWS's price), while objects read one by one (put behind pypid's back)
#: cannot make it a burst of thousands of requests that competes with uploads.
CHECK_RATE = 10.0
