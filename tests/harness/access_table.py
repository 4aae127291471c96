"""
The route x identity table (issue 15): every route of
C{docs/http-api.rst} (C{ROWS}), every kind of identity (C{IDENTITIES}) and
the answers expected in each cell (C{TABLE}, read by L{read_table}), shared
by the in-memory test (L{tests.unit.web.identity.test_access_table}) and the one against the
real daemon (L{tests.e2e.test_access_table}).
"""

import hashlib

#: the identities, in the order of L{TABLE}'s columns
IDENTITIES = ("anon", "alice", "carol", "admin", "wrong", "t-read", "t-upload", "t-other",
              "t-expired", "t-revoked", "t-carol")


#: The webhook the table's C{/api/webhooks/builds} rows ask about (a daemon's
#: settings): its receiver is nowhere, its events are only tried.
WEBHOOK = {"webhook:builds.url": "http://127.0.0.1:9/hooks", "webhook:builds.allow_http": "yes",
           "webhook:builds.allow_private": "yes",
           "webhook:builds.secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
           "webhook:builds.retry_for": "1m"}


def filename_of(project):
    return f"{project.replace('-', '_')}-1.0-py3-none-any.whl"


#: The BLAKE2b-256 of the 1.0 wheels the tables uploaded, by filename: the
#: C{/packages/} rows' paths (L{digest_path}); a wheel's bytes hold the time
#: it was made.
UPLOADED: dict[str, str] = {}


def keep_digest(filename, data):
    """Remember the digest of the wheel C{filename} a table uploaded (L{UPLOADED})."""
    UPLOADED[filename] = hashlib.blake2b(data, digest_size=32).hexdigest()


def digest_path(project):
    """
    C{{"x", "y", "z"}}: the three parts of the C{/packages/} path of the
    project's 1.0 wheel as uploaded (zeros for one never uploaded).
    """
    digest = UPLOADED.get(filename_of(project), "0" * 64)
    return {"x": digest[:2], "y": digest[2:4], "z": digest[4:]}


P3 = ("holy-grail", "secret-sauce", "no-such")


#: (method, path template, projects): {p} the project, {f} its 1.0 wheel's
#: filename, {q} the project as a query; "" for a route that names none
ROWS = (
    ("GET", "/", ("",)),
    ("POST", "/", P3),
    ("POST", "/legacy", P3),
    ("POST", "/legacy/", P3),
    ("GET", "/simple", ("",)),
    ("GET", "/simple/", ("",)),
    ("GET", "/simple/{p}/", P3),
    ("GET", "/simple/namespaces", ("",)),
    ("GET", "/simple/namespace/{p}", ("acme",)),
    ("GET", "/files/{p}/{f}", P3),
    ("GET", "/files/{p}/{f}.metadata", P3),
    ("GET", "/integrity/{p}/1.0/{f}/provenance", P3),
    ("GET", "/packages/{x}/{y}/{z}/{f}", P3),
    ("GET", "/packages/{x}/{y}/{z}/{f}.metadata", P3),
    ("GET", "/pypi/{p}/json", P3),
    ("GET", "/pypi/{p}/1.0/json", P3),
    ("GET", "/project/{p}/", P3),
    ("GET", "/project/{p}/1.0/", P3),
    ("GET", "/search?q={q}", P3),
    ("GET", "/api/search?q={q}", P3),
    ("GET", "/login", ("",)),
    ("POST", "/login", ("",)),
    ("GET", "/logout", ("",)),
    ("POST", "/logout", ("",)),
    ("GET", "/login/sso", ("",)),
    ("GET", "/login/sso/callback?state=x&code=y", ("",)),
    ("GET", "/console", ("",)),
    ("GET", "/console/", ("",)),
    ("GET", "/console/tokens", ("",)),
    ("POST", "/console/tokens", ("",)),
    ("POST", "/console/tokens/nosuchid/revoke", ("",)),
    ("GET", "/console/project?name={q}", P3),
    ("GET", "/console/project/{p}/", P3),
    ("POST", "/console/project/{p}/files/{f}/yank", P3),
    ("POST", "/console/project/{p}/files/{f}/unyank", ("holy-grail",)),
    ("POST", "/console/project/{p}/files/{f}/delete", ("holy-grail",)),
    ("POST", "/console/project/{p}/files/{f}/restore", ("holy-grail",)),
    ("POST", "/console/project/{p}/status", P3),
    ("POST", "/console/project/{p}/promote", ("holy-grail",)),
    ("POST", "/console/project/{p}/waive", ("holy-grail",)),
    ("POST", "/console/project/{p}/unwaive", ("holy-grail",)),
    ("GET", "/console/retention", ("",)),
    ("POST", "/console/retention/apply", ("",)),
    ("GET", "/console/audit", ("",)),
    ("GET", "/console/recycle-bin", ("",)),
    ("GET", "/console/advisories", ("",)),
    ("GET", "/console/groups", ("",)),
    ("GET", "/console/indexes", ("",)),
    ("GET", "/console/webhooks", ("",)),
    ("GET", "/console/webhooks/{p}", ("builds",)),
    ("POST", "/console/webhooks/{p}/test", ("builds",)),
    ("POST", "/console/webhooks/{p}/redeliver", ("builds",)),
    ("GET", "/static/nothing.css", ("",)),
    ("GET", "/health", ("",)),
    ("GET", "/metrics", ("",)),
    ("GET", "/api/tokens", ("",)),
    ("POST", "/api/tokens", ("",)),
    ("DELETE", "/api/tokens/nosuchid", ("",)),
    ("GET", "/api/audit", ("",)),
    ("GET", "/api/audit/verify", ("",)),
    ("GET", "/api/groups", ("",)),
    ("GET", "/api/indexes", ("",)),
    ("GET", "/api/usage?project={q}", P3),
    ("GET", "/api/audit?project={q}&index=default", P3),
    ("POST", "/api/files/{f}/yank", P3),
    ("POST", "/api/files/{f}/unyank", P3),
    ("POST", "/api/projects/{p}/1.0/yank", P3),
    ("POST", "/api/projects/{p}/1.0/unyank", P3),
    ("DELETE", "/api/files/{f}", P3),
    ("DELETE", "/api/projects/{p}/2.0", P3),
    ("POST", "/api/projects/{p}/status", P3),
    ("POST", "/api/upstream/{p}/refresh", P3),
    ("POST", "/api/upstream/{p}/release", P3),
    ("GET", "/api/upstream/takedowns", ("",)),
    ("POST", "/api/upstream/check", ("",)),
    ("POST", "/requirements.txt", ("",)),
    ("POST", "/api/oidc/mint-token", ("",)),
    ("GET", "/_/oidc/audience", ("",)),
    ("POST", "/_/oidc/mint-token", ("",)),
    ("POST", "/_/oidc/burn-token", ("",)),
    ("GET", "/.well-known/pytp/0", ("",)),
    ("POST", "/api/promote", ("",)),
    ("GET", "/api/advisories", ("",)),
    ("GET", "/api/advisories/project/{p}", P3),
    ("GET", "/api/advisories/waivers", ("",)),
    ("POST", "/api/advisories/waivers", ("",)),
    ("DELETE", "/api/advisories/waivers", ("",)),
    ("GET", "/api/usage", ("",)),
    ("POST", "/api/files/{f}/restore", P3),
    ("GET", "/api/recycle-bin", ("",)),
    ("GET", "/api/retention", ("",)),
    ("POST", "/api/retention/apply", ("",)),
    ("GET", "/api/webhooks", ("",)),
    ("GET", "/api/webhooks/{p}", ("builds",)),
    ("POST", "/api/webhooks/{p}/redeliver", ("builds",)),
    ("POST", "/api/webhooks/{p}/test", ("builds",)),
)


def read_table(text):
    """
    L{TABLE} as C{{(read, method, template, project): codes}}: a line
    C{METHOD TEMPLATE PROJECT | codes (read = everyone) | codes (authenticated)}.
    """
    table = {}
    for line in text.strip().splitlines():
        head, everyone, authenticated = line.split("|")
        method, template, project = head.split()
        project = "" if project == "-" else project
        for read, codes in (("everyone", everyone), ("authenticated", authenticated)):
            table[(read, method, template, project)] = tuple(int(c) for c in codes.split())
    return table


#: what each identity gets (columns in L{IDENTITIES} order), with [auth]
#: read = everyone, then read = authenticated
TABLE = """
GET    /                            -            | 200 200 200 200 401 200 200 200 401 401 200 | 401 200 200 200 401 200 200 200 401 401 200
POST   /                            holy-grail   | 401 200 200 200 401 403 200 403 401 401 200 | 401 200 200 200 401 403 200 403 401 401 200
POST   /                            secret-sauce | 401 403 200 200 401 403 403 403 401 401 200 | 401 403 200 200 401 403 403 403 401 401 200
POST   /                            no-such      | 401 200 200 200 401 403 200 403 401 401 200 | 401 200 200 200 401 403 200 403 401 401 200
POST   /legacy                      holy-grail   | 401 200 200 200 401 403 200 403 401 401 200 | 401 200 200 200 401 403 200 403 401 401 200
POST   /legacy                      secret-sauce | 401 403 200 200 401 403 403 403 401 401 200 | 401 403 200 200 401 403 403 403 401 401 200
POST   /legacy                      no-such      | 401 200 200 200 401 403 200 403 401 401 200 | 401 200 200 200 401 403 200 403 401 401 200
POST   /legacy/                     holy-grail   | 401 200 200 200 401 403 200 403 401 401 200 | 401 200 200 200 401 403 200 403 401 401 200
POST   /legacy/                     secret-sauce | 401 403 200 200 401 403 403 403 401 401 200 | 401 403 200 200 401 403 403 403 401 401 200
POST   /legacy/                     no-such      | 401 200 200 200 401 403 200 403 401 401 200 | 401 200 200 200 401 403 200 403 401 401 200
GET    /simple                      -            | 301 301 301 301 401 301 301 301 401 401 301 | 401 301 301 301 401 301 301 301 401 401 301
GET    /simple/                     -            | 200 200 200 200 401 200 200 200 401 401 200 | 401 200 200 200 401 200 200 200 401 401 200
GET    /simple/namespaces           -            | 200 200 200 200 401 200 200 200 401 401 200 | 401 200 200 200 401 200 200 200 401 401 200
GET    /simple/namespace/{p}        acme         | 404 404 404 404 401 404 404 404 401 401 404 | 401 404 404 404 401 404 404 404 401 401 404
GET    /simple/{p}/                 holy-grail   | 200 200 200 200 401 200 404 404 401 401 200 | 401 200 200 200 401 200 404 404 401 401 200
GET    /simple/{p}/                 secret-sauce | 404 404 200 200 401 404 404 404 401 401 200 | 401 404 200 200 401 404 404 404 401 401 200
GET    /simple/{p}/                 no-such      | 404 404 404 404 401 404 404 404 401 401 404 | 401 404 404 404 401 404 404 404 401 401 404
GET    /files/{p}/{f}               holy-grail   | 200 200 200 200 401 200 404 404 401 401 200 | 401 200 200 200 401 200 404 404 401 401 200
GET    /files/{p}/{f}               secret-sauce | 404 404 200 200 401 404 404 404 401 401 200 | 401 404 200 200 401 404 404 404 401 401 200
GET    /files/{p}/{f}               no-such      | 404 404 404 404 401 404 404 404 401 401 404 | 401 404 404 404 401 404 404 404 401 401 404
GET    /files/{p}/{f}.metadata      holy-grail   | 200 200 200 200 401 200 404 404 401 401 200 | 401 200 200 200 401 200 404 404 401 401 200
GET    /files/{p}/{f}.metadata      secret-sauce | 404 404 200 200 401 404 404 404 401 401 200 | 401 404 200 200 401 404 404 404 401 401 200
GET    /files/{p}/{f}.metadata      no-such      | 404 404 404 404 401 404 404 404 401 401 404 | 401 404 404 404 401 404 404 404 401 401 404
GET    /integrity/{p}/1.0/{f}/provenance holy-grail   | 200 200 200 200 401 200 404 404 401 401 200 | 401 200 200 200 401 200 404 404 401 401 200
GET    /integrity/{p}/1.0/{f}/provenance secret-sauce | 404 404 200 200 401 404 404 404 401 401 200 | 401 404 200 200 401 404 404 404 401 401 200
GET    /integrity/{p}/1.0/{f}/provenance no-such      | 404 404 404 404 401 404 404 404 401 401 404 | 401 404 404 404 401 404 404 404 401 401 404
GET    /packages/{x}/{y}/{z}/{f} holy-grail   | 200 200 200 200 401 200 404 404 401 401 200 | 401 200 200 200 401 200 404 404 401 401 200
GET    /packages/{x}/{y}/{z}/{f} secret-sauce | 404 404 200 200 401 404 404 404 401 401 200 | 401 404 200 200 401 404 404 404 401 401 200
GET    /packages/{x}/{y}/{z}/{f} no-such      | 404 404 404 404 401 404 404 404 401 401 404 | 401 404 404 404 401 404 404 404 401 401 404
GET    /packages/{x}/{y}/{z}/{f}.metadata holy-grail   | 200 200 200 200 401 200 404 404 401 401 200 | 401 200 200 200 401 200 404 404 401 401 200
GET    /packages/{x}/{y}/{z}/{f}.metadata secret-sauce | 404 404 200 200 401 404 404 404 401 401 200 | 401 404 200 200 401 404 404 404 401 401 200
GET    /packages/{x}/{y}/{z}/{f}.metadata no-such      | 404 404 404 404 401 404 404 404 401 401 404 | 401 404 404 404 401 404 404 404 401 401 404
GET    /pypi/{p}/json               holy-grail   | 200 200 200 200 401 200 404 404 401 401 200 | 401 200 200 200 401 200 404 404 401 401 200
GET    /pypi/{p}/json               secret-sauce | 404 404 200 200 401 404 404 404 401 401 200 | 401 404 200 200 401 404 404 404 401 401 200
GET    /pypi/{p}/json               no-such      | 404 404 404 404 401 404 404 404 401 401 404 | 401 404 404 404 401 404 404 404 401 401 404
GET    /pypi/{p}/1.0/json           holy-grail   | 200 200 200 200 401 200 404 404 401 401 200 | 401 200 200 200 401 200 404 404 401 401 200
GET    /pypi/{p}/1.0/json           secret-sauce | 404 404 200 200 401 404 404 404 401 401 200 | 401 404 200 200 401 404 404 404 401 401 200
GET    /pypi/{p}/1.0/json           no-such      | 404 404 404 404 401 404 404 404 401 401 404 | 401 404 404 404 401 404 404 404 401 401 404
GET    /project/{p}/                holy-grail   | 200 200 200 200 401 200 404 404 401 401 200 | 401 200 200 200 401 200 404 404 401 401 200
GET    /project/{p}/                secret-sauce | 404 404 200 200 401 404 404 404 401 401 200 | 401 404 200 200 401 404 404 404 401 401 200
GET    /project/{p}/                no-such      | 404 404 404 404 401 404 404 404 401 401 404 | 401 404 404 404 401 404 404 404 401 401 404
GET    /project/{p}/1.0/            holy-grail   | 200 200 200 200 401 200 404 404 401 401 200 | 401 200 200 200 401 200 404 404 401 401 200
GET    /project/{p}/1.0/            secret-sauce | 404 404 200 200 401 404 404 404 401 401 200 | 401 404 200 200 401 404 404 404 401 401 200
GET    /project/{p}/1.0/            no-such      | 404 404 404 404 401 404 404 404 401 401 404 | 401 404 404 404 401 404 404 404 401 401 404
GET    /search?q={q}                holy-grail   | 200 200 200 200 401 200 200 200 401 401 200 | 401 200 200 200 401 200 200 200 401 401 200
GET    /search?q={q}                secret-sauce | 200 200 200 200 401 200 200 200 401 401 200 | 401 200 200 200 401 200 200 200 401 401 200
GET    /search?q={q}                no-such      | 200 200 200 200 401 200 200 200 401 401 200 | 401 200 200 200 401 200 200 200 401 401 200
GET    /api/search?q={q}            holy-grail   | 200 200 200 200 401 200 200 200 401 401 200 | 401 200 200 200 401 200 200 200 401 401 200
GET    /api/search?q={q}            secret-sauce | 200 200 200 200 401 200 200 200 401 401 200 | 401 200 200 200 401 200 200 200 401 401 200
GET    /api/search?q={q}            no-such      | 200 200 200 200 401 200 200 200 401 401 200 | 401 200 200 200 401 200 200 200 401 401 200
GET    /login                       -            | 200 303 303 303 401 303 303 303 401 401 303 | 200 303 303 303 401 303 303 303 401 401 303
POST   /login                       -            | 400 400 400 400 400 400 400 400 400 400 400 | 400 400 400 400 400 400 400 400 400 400 400
GET    /logout                      -            | 303 303 303 303 303 303 303 303 303 303 303 | 303 303 303 303 303 303 303 303 303 303 303
POST   /logout                      -            | 303 303 303 303 303 303 303 303 303 303 303 | 303 303 303 303 303 303 303 303 303 303 303
GET    /login/sso                   -            | 404 404 404 404 404 404 404 404 404 404 404 | 404 404 404 404 404 404 404 404 404 404 404
GET    /login/sso/callback?state=x&code=y -            | 404 404 404 404 404 404 404 404 404 404 404 | 404 404 404 404 404 404 404 404 404 404 404
GET    /console                     -            | 303 303 303 303 303 303 303 303 303 303 303 | 303 303 303 303 303 303 303 303 303 303 303
GET    /console/                    -            | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
GET    /console/tokens              -            | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
POST   /console/tokens              -            | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
POST   /console/tokens/nosuchid/revoke -            | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
GET    /console/project?name={q}    holy-grail   | 303 303 303 303 303 303 303 303 303 303 303 | 303 303 303 303 303 303 303 303 303 303 303
GET    /console/project?name={q}    secret-sauce | 303 303 303 303 303 303 303 303 303 303 303 | 303 303 303 303 303 303 303 303 303 303 303
GET    /console/project?name={q}    no-such      | 303 303 303 303 303 303 303 303 303 303 303 | 303 303 303 303 303 303 303 303 303 303 303
GET    /console/project/{p}/        holy-grail   | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
GET    /console/project/{p}/        secret-sauce | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
GET    /console/project/{p}/        no-such      | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
POST   /console/project/{p}/files/{f}/yank holy-grail   | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
POST   /console/project/{p}/files/{f}/yank secret-sauce | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
POST   /console/project/{p}/files/{f}/yank no-such      | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
POST   /console/project/{p}/files/{f}/unyank holy-grail   | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
POST   /console/project/{p}/files/{f}/delete holy-grail   | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
POST   /console/project/{p}/files/{f}/restore holy-grail   | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
POST   /console/project/{p}/status  holy-grail   | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
POST   /console/project/{p}/status  secret-sauce | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
POST   /console/project/{p}/status  no-such      | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
POST   /console/project/{p}/promote holy-grail   | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
POST   /console/project/{p}/waive holy-grail   | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
POST   /console/project/{p}/unwaive holy-grail   | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
GET    /console/retention           -            | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
POST   /console/retention/apply     -            | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
GET    /console/webhooks            -            | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
GET    /console/webhooks/{p}        builds       | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
POST   /console/webhooks/{p}/test   builds       | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
POST   /console/webhooks/{p}/redeliver builds       | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
GET    /console/audit               -            | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
GET    /console/recycle-bin         -            | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
GET    /console/advisories          -            | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
GET    /console/groups              -            | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
GET    /console/indexes             -            | 401 400 400 400 400 400 400 400 400 400 400 | 401 400 400 400 400 400 400 400 400 400 400
GET    /static/nothing.css          -            | 404 404 404 404 404 404 404 404 404 404 404 | 404 404 404 404 404 404 404 404 404 404 404
GET    /health                      -            | 200 200 200 200 200 200 200 200 200 200 200 | 200 200 200 200 200 200 200 200 200 200 200
GET    /metrics                     -            | 200 200 200 200 200 200 200 200 200 200 200 | 200 200 200 200 200 200 200 200 200 200 200
GET    /api/tokens                  -            | 401 200 200 200 401 403 403 403 401 401 403 | 401 200 200 200 401 403 403 403 401 401 403
POST   /api/tokens                  -            | 401 400 400 400 401 403 403 403 401 401 403 | 401 400 400 400 401 403 403 403 401 401 403
DELETE /api/tokens/nosuchid         -            | 401 404 404 404 401 403 403 403 401 401 403 | 401 404 404 404 401 403 403 403 401 401 403
GET    /api/audit                   -            | 401 403 403 200 401 403 403 403 401 401 403 | 401 403 403 200 401 403 403 403 401 401 403
GET    /api/audit/verify            -            | 401 403 403 200 401 403 403 403 401 401 403 | 401 403 403 200 401 403 403 403 401 401 403
GET    /api/groups                  -            | 401 403 403 200 401 403 403 403 401 401 403 | 401 403 403 200 401 403 403 403 401 401 403
GET    /api/indexes                 -            | 401 403 403 200 401 403 403 403 401 401 403 | 401 403 403 200 401 403 403 403 401 401 403
GET    /api/upstream/takedowns      -            | 401 403 403 200 401 403 403 403 401 401 403 | 401 403 403 200 401 403 403 403 401 401 403
POST   /api/upstream/check          -            | 401 403 403 404 401 403 403 403 401 401 403 | 401 403 403 404 401 403 403 403 401 401 403
GET    /api/usage?project={q}       holy-grail   | 401 200 200 200 401 403 403 403 401 401 403 | 401 200 200 200 401 403 403 403 401 401 403
GET    /api/usage?project={q}       secret-sauce | 401 404 200 200 401 403 403 403 401 401 403 | 401 404 200 200 401 403 403 403 401 401 403
GET    /api/usage?project={q}       no-such      | 401 404 404 404 401 403 403 403 401 401 403 | 401 404 404 404 401 403 403 403 401 401 403
GET    /api/audit?project={q}&index=default holy-grail   | 401 200 200 200 401 403 403 403 401 401 403 | 401 200 200 200 401 403 403 403 401 401 403
GET    /api/audit?project={q}&index=default secret-sauce | 401 403 200 200 401 403 403 403 401 401 403 | 401 403 200 200 401 403 403 403 401 401 403
GET    /api/audit?project={q}&index=default no-such      | 401 200 200 200 401 403 403 403 401 401 403 | 401 200 200 200 401 403 403 403 401 401 403
POST   /api/files/{f}/yank          holy-grail   | 401 200 200 200 401 403 200 404 401 401 200 | 401 200 200 200 401 403 200 404 401 401 200
POST   /api/files/{f}/yank          secret-sauce | 401 404 200 200 401 404 404 404 401 401 200 | 401 404 200 200 401 404 404 404 401 401 200
POST   /api/files/{f}/yank          no-such      | 401 404 404 404 401 404 404 404 401 401 404 | 401 404 404 404 401 404 404 404 401 401 404
POST   /api/files/{f}/unyank        holy-grail   | 401 200 200 200 401 403 200 404 401 401 200 | 401 200 200 200 401 403 200 404 401 401 200
POST   /api/files/{f}/unyank        secret-sauce | 401 404 200 200 401 404 404 404 401 401 200 | 401 404 200 200 401 404 404 404 401 401 200
POST   /api/files/{f}/unyank        no-such      | 401 404 404 404 401 404 404 404 401 401 404 | 401 404 404 404 401 404 404 404 401 401 404
POST   /api/projects/{p}/1.0/yank   holy-grail   | 401 200 200 200 401 403 200 404 401 401 200 | 401 200 200 200 401 403 200 404 401 401 200
POST   /api/projects/{p}/1.0/yank   secret-sauce | 401 404 200 200 401 404 404 404 401 401 200 | 401 404 200 200 401 404 404 404 401 401 200
POST   /api/projects/{p}/1.0/yank   no-such      | 401 404 404 404 401 404 404 404 401 401 404 | 401 404 404 404 401 404 404 404 401 401 404
POST   /api/projects/{p}/1.0/unyank holy-grail   | 401 200 200 200 401 403 200 404 401 401 200 | 401 200 200 200 401 403 200 404 401 401 200
POST   /api/projects/{p}/1.0/unyank secret-sauce | 401 404 200 200 401 404 404 404 401 401 200 | 401 404 200 200 401 404 404 404 401 401 200
POST   /api/projects/{p}/1.0/unyank no-such      | 401 404 404 404 401 404 404 404 401 401 404 | 401 404 404 404 401 404 404 404 401 401 404
DELETE /api/files/{f}               holy-grail   | 401 200 200 200 401 403 200 404 401 401 200 | 401 200 200 200 401 403 200 404 401 401 200
DELETE /api/files/{f}               secret-sauce | 401 404 200 200 401 404 404 404 401 401 200 | 401 404 200 200 401 404 404 404 401 401 200
DELETE /api/files/{f}               no-such      | 401 404 404 404 401 404 404 404 401 401 404 | 401 404 404 404 401 404 404 404 401 401 404
DELETE /api/projects/{p}/2.0        holy-grail   | 401 200 200 200 401 403 200 404 401 401 200 | 401 200 200 200 401 403 200 404 401 401 200
DELETE /api/projects/{p}/2.0        secret-sauce | 401 404 200 200 401 404 404 404 401 401 200 | 401 404 200 200 401 404 404 404 401 401 200
DELETE /api/projects/{p}/2.0        no-such      | 401 404 404 404 401 404 404 404 401 401 404 | 401 404 404 404 401 404 404 404 401 401 404
POST   /api/projects/{p}/status     holy-grail   | 401 403 403 400 401 403 403 403 401 401 403 | 401 403 403 400 401 403 403 403 401 401 403
POST   /api/projects/{p}/status     secret-sauce | 401 403 403 400 401 403 403 403 401 401 403 | 401 403 403 400 401 403 403 403 401 401 403
POST   /api/projects/{p}/status     no-such      | 401 403 403 400 401 403 403 403 401 401 403 | 401 403 403 400 401 403 403 403 401 401 403
POST   /api/upstream/{p}/refresh    holy-grail   | 401 404 404 404 401 403 404 404 401 401 404 | 401 404 404 404 401 403 404 404 401 401 404
POST   /api/upstream/{p}/refresh    secret-sauce | 401 404 404 404 401 403 404 404 401 401 404 | 401 404 404 404 401 403 404 404 401 401 404
POST   /api/upstream/{p}/refresh    no-such      | 401 404 404 404 401 403 404 404 401 401 404 | 401 404 404 404 401 403 404 404 401 401 404
POST   /api/upstream/{p}/release    holy-grail   | 401 403 403 404 401 403 403 403 401 401 403 | 401 403 403 404 401 403 403 403 401 401 403
POST   /api/upstream/{p}/release    secret-sauce | 401 403 403 404 401 403 403 403 401 401 403 | 401 403 403 404 401 403 403 403 401 401 403
POST   /api/upstream/{p}/release    no-such      | 401 403 403 404 401 403 403 403 401 401 403 | 401 403 403 404 401 403 403 403 401 401 403
POST   /requirements.txt            -            | 401 404 404 404 401 403 404 404 401 401 404 | 401 404 404 404 401 403 404 404 401 401 404
POST   /api/oidc/mint-token         -            | 404 404 404 404 404 404 404 404 404 404 404 | 404 404 404 404 404 404 404 404 404 404 404
GET    /_/oidc/audience             -            | 404 404 404 404 404 404 404 404 404 404 404 | 404 404 404 404 404 404 404 404 404 404 404
POST   /_/oidc/mint-token           -            | 404 404 404 404 404 404 404 404 404 404 404 | 404 404 404 404 404 404 404 404 404 404 404
POST   /_/oidc/burn-token           -            | 404 404 404 404 404 404 404 404 404 404 404 | 404 404 404 404 404 404 404 404 404 404 404
GET    /.well-known/pytp/0          -            | 404 404 404 404 404 404 404 404 404 404 404 | 404 404 404 404 404 404 404 404 404 404 404
POST   /api/promote                 -            | 401 400 400 400 401 400 400 400 401 401 400 | 401 400 400 400 401 400 400 400 401 401 400
GET    /api/advisories              -            | 401 403 403 200 401 403 403 403 401 401 403 | 401 403 403 200 401 403 403 403 401 401 403
GET    /api/advisories/project/{p} holy-grail | 401 200 200 200 401 403 403 403 401 401 403 | 401 200 200 200 401 403 403 403 401 401 403
GET    /api/advisories/project/{p} secret-sauce | 401 404 200 200 401 403 403 403 401 401 403 | 401 404 200 200 401 403 403 403 401 401 403
GET    /api/advisories/project/{p} no-such | 401 404 404 404 401 403 403 403 401 401 403 | 401 404 404 404 401 403 403 403 401 401 403
GET    /api/advisories/waivers      -            | 401 403 403 200 401 403 403 403 401 401 403 | 401 403 403 200 401 403 403 403 401 401 403
POST   /api/advisories/waivers      -            | 401 403 403 400 401 403 403 403 401 401 403 | 401 403 403 400 401 403 403 403 401 401 403
DELETE /api/advisories/waivers      -            | 401 403 403 400 401 403 403 403 401 401 403 | 401 403 403 400 401 403 403 403 401 401 403
GET    /api/usage                   -            | 401 403 403 200 401 403 403 403 401 401 403 | 401 403 403 200 401 403 403 403 401 401 403
POST   /api/files/{f}/restore       holy-grail   | 401 404 404 404 401 404 404 404 401 401 404 | 401 404 404 404 401 404 404 404 401 401 404
POST   /api/files/{f}/restore       secret-sauce | 401 404 404 404 401 404 404 404 401 401 404 | 401 404 404 404 401 404 404 404 401 401 404
POST   /api/files/{f}/restore       no-such      | 401 404 404 404 401 404 404 404 401 401 404 | 401 404 404 404 401 404 404 404 401 401 404
GET    /api/recycle-bin             -            | 401 403 403 200 401 403 403 403 401 401 403 | 401 403 403 200 401 403 403 403 401 401 403
GET    /api/retention               -            | 401 403 403 200 401 403 403 403 401 401 403 | 401 403 403 200 401 403 403 403 401 401 403
POST   /api/retention/apply         -            | 401 403 403 200 401 403 403 403 401 401 403 | 401 403 403 200 401 403 403 403 401 401 403
GET    /api/webhooks                -            | 401 403 403 200 401 403 403 403 401 401 403 | 401 403 403 200 401 403 403 403 401 401 403
GET    /api/webhooks/{p}            builds       | 401 403 403 200 401 403 403 403 401 401 403 | 401 403 403 200 401 403 403 403 401 401 403
POST   /api/webhooks/{p}/redeliver  builds       | 401 403 403 200 401 403 403 403 401 401 403 | 401 403 403 200 401 403 403 403 401 401 403
POST   /api/webhooks/{p}/test       builds       | 401 403 403 200 401 403 403 403 401 401 403 | 401 403 403 200 401 403 403 403 401 401 403
"""
