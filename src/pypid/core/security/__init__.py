"""
Security advisories as an index acts on them: OSV records, their compact
form, matching and waivers.
"""
