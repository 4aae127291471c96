"""
Changes to an index: uploads (the multipart parser, the checks, storing),
yanks and deletes, and promotion.
"""
