"""
A local OpenID Connect issuer for the trusted publishing tests: its keys,
its discovery document and JWKS, and ID tokens shaped like those of GitHub
Actions and GitLab CI (their claims as their documentation lists them,
with C{*.example} hosts), plus the forged tokens an attacker would try.

  - L{Issuer} is one issuer, pure Python: L{Issuer.github_token} and
    L{Issuer.gitlab_token} sign tokens; L{Issuer.rotate} and
    L{Issuer.retire} rotate its keys; L{Issuer.answer} answers a request
    for its documents.
  - L{Issuers} holds several issuers under one base URL (each at
    C{<base>/<name>}), answers for them all and counts the requests.
  - L{IssuerResource} serves them as a Twisted resource, for
    L{treq.testing.StubTreq} (in memory, no sockets).
  - L{HTTPSIssuers} serves them over HTTPS on a loopback port, with a
    certificate of L{tests.harness.tlsca.TestCA}, from a thread of the test
    process, for the end-to-end tests (whose test thread is blocked in
    subprocesses while the daemon fetches keys).
  - L{CITokenEndpoint} is a GitHub Actions runner's ID token service on
    a loopback port, for the real clients run unmodified in a simulated
    CI job.
"""

import base64
import hashlib
import hmac
import http.server
import json
import os
import ssl
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit

from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from tests.harness.tlsca import TestCA

#: The audience the tests' tokens are for, as pypid's default.
AUDIENCE = "pypid"

_KINDS = {"rsa": ("RS256", lambda: RSAKey.generate_key(2048)),
          "ec": ("ES256", lambda: ECKey.generate_key("P-256")),
          "ed25519": ("EdDSA", lambda: OKPKey.generate_key("Ed25519"))}


def b64(data):
    """base64url without padding, as JOSE writes it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json(value):
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def compact(header, claims, signature=b""):
    """A compact JWS made by hand (for tokens no library would sign)."""
    return f"{b64(_json(header))}.{b64(_json(claims))}.{b64(signature)}"


#: Keys made so far, by (kind, issuer, kid): an RSA key takes 50 ms to
#: make, and the tests need no new one for each test.
_made = {}


class SigningKey:
    """
    One key of an issuer: its C{kid}, algorithm and joserfc key (the same
    for the same kind, issuer and kid within a test run; distinct otherwise).
    """

    def __init__(self, kid, kind="rsa", owner=""):
        self.kid = kid
        self.alg, make = _KINDS[kind]
        found = _made.get((kind, owner, kid))
        if found is None:
            found = _made[kind, owner, kid] = make()
        self.key = found

    def public_jwk(self):
        """The key as its JWKS lists it."""
        return dict(self.key.as_dict(private=False), kid=self.kid, use="sig", alg=self.alg)

    def public_pem(self):
        """The public key as PEM bytes (what an HMAC confusion attack signs with)."""
        return self.key.as_pem(private=False)


class Issuer:
    """
    One OIDC issuer: C{url} is what its tokens' C{iss} say; its discovery
    document is at C{<url>/.well-known/openid-configuration} and names
    C{<url>/jwks}.

    @ivar keys: the L{SigningKey}s its JWKS lists; the last one signs.
    @ivar now: C{now() -> seconds}, the time tokens are issued at.
    """

    def __init__(self, url, kind="rsa", now=time.time):
        self.url = url
        self.kind = kind
        self.now = now
        self._serial = 1
        self.keys = [SigningKey(f"{kind}-key-1", kind, url)]
        #: a key nobody publishes (a forger's)
        self.stranger = SigningKey("stranger", kind, url)

    # -- documents -----------------------------------------------------------

    def discovery(self):
        """The discovery document."""
        return {"issuer": self.url, "jwks_uri": self.url + "/jwks",
                "subject_types_supported": ["public", "pairwise"],
                "response_types_supported": ["id_token"],
                "id_token_signing_alg_values_supported": sorted({k.alg for k in self.keys}),
                "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref",
                                     "repository", "environment", "workflow_ref"],
                "scopes_supported": ["openid"]}

    def jwks(self):
        """The JWKS document."""
        return {"keys": [key.public_jwk() for key in self.keys]}

    def answer(self, path):
        """C{(status, body)} of a GET of C{path} (the URL path below the issuer's)."""
        if path == "/.well-known/openid-configuration":
            return 200, _json(self.discovery())
        if path == "/jwks":
            return 200, _json(self.jwks())
        return 404, b'{"error": "not found"}'

    # -- keys ------------------------------------------------------------------

    @property
    def signing(self):
        """The key that signs now."""
        return self.keys[-1]

    def rotate(self, kind=None):
        """Add a new key, which signs from now on (the old one stays listed); return it."""
        self._serial += 1
        kind = kind or self.kind
        key = SigningKey(f"{kind}-key-{self._serial}", kind, self.url)
        self.keys.append(key)
        return key

    def retire(self, kid):
        """Stop listing the key C{kid}."""
        self.keys = [key for key in self.keys if key.kid != kid]

    # -- tokens ----------------------------------------------------------------

    def sign(self, claims, key=None, header=None):
        """A token of C{claims} signed by C{key} (default: the signing key)."""
        key = key or self.signing
        head = {"typ": "JWT", "alg": key.alg, "kid": key.kid}
        head.update(header or {})
        return jwt.encode(head, claims, key.key, algorithms=[head["alg"]])

    def _times(self, lifetime=300, issued=None):
        now = int(self.now() if issued is None else issued)
        return {"iat": now, "nbf": now - 5, "exp": now + lifetime}

    def github_claims(self, repository="acme/widgets", workflow="release.yml",
                      ref="refs/heads/main", environment="release", audience=AUDIENCE,
                      **changes):
        """
        Claims shaped like a GitHub Actions ID token's: C{workflow} is the
        workflow file, which C{workflow_ref} and C{job_workflow_ref} name.
        """
        owner = repository.partition("/")[0]
        workflow_ref = f"{repository}/.github/workflows/{workflow}@{ref}"
        sha = hashlib.sha1(repository.encode()).hexdigest()
        claims = {
            "jti": str(uuid.uuid4()),
            "sub": f"repo:{repository}:environment:{environment}" if environment
            else f"repo:{repository}:ref:{ref}",
            "aud": audience,
            "ref": ref,
            "sha": sha,
            "repository": repository,
            "repository_owner": owner,
            "repository_owner_id": "74",
            "repository_visibility": "private",
            "repository_id": "1296269",
            "actor_id": "12",
            "actor": "octocat",
            "workflow": "Release",
            "head_ref": "",
            "base_ref": "",
            "event_name": "push",
            "ref_protected": "true",
            "ref_type": "branch",
            "workflow_ref": workflow_ref,
            "workflow_sha": sha,
            "job_workflow_ref": workflow_ref,
            "job_workflow_sha": sha,
            "runner_environment": "github-hosted",
            "run_id": "5436275329",
            "run_number": "7",
            "run_attempt": "1",
            "iss": self.url,
        }
        if environment:
            claims["environment"] = environment
        claims.update(self._times())
        claims.update(changes)
        return claims

    def gitlab_claims(self, project_path="acme/widgets", ref="main", environment="production",
                      audience=AUDIENCE, **changes):
        """Claims shaped like a GitLab CI ID token's."""
        namespace = project_path.rpartition("/")[0]
        sha = hashlib.sha1(project_path.encode()).hexdigest()
        claims = {
            "namespace_id": "72",
            "namespace_path": namespace,
            "project_id": "20",
            "project_path": project_path,
            "user_id": "1",
            "user_login": "sam",
            "user_email": "sam@gitlab.example",
            "user_access_level": "maintainer",
            "pipeline_id": "574",
            "pipeline_source": "push",
            "job_id": "302",
            "ref": ref,
            "ref_type": "branch",
            "ref_path": f"refs/heads/{ref}",
            "ref_protected": "true",
            "environment": environment,
            "environment_protected": "true",
            "deployment_tier": "production",
            "environment_action": "start",
            "runner_id": 1,
            "runner_environment": "self-hosted",
            "sha": sha,
            "project_visibility": "private",
            "ci_config_ref_uri": f"gitlab.example/{project_path}//.gitlab-ci.yml@refs/heads/{ref}",
            "ci_config_sha": sha,
            "jti": str(uuid.uuid4()),
            "iss": self.url,
            "sub": f"project_path:{project_path}:ref_type:branch:ref:{ref}",
            "aud": audience,
        }
        claims.update(self._times())
        claims.update(changes)
        return claims

    def github_token(self, **changes):
        """A signed GitHub Actions-like token (see L{github_claims})."""
        return self.sign(self.github_claims(**changes))

    def gitlab_token(self, **changes):
        """A signed GitLab CI-like token (see L{gitlab_claims})."""
        return self.sign(self.gitlab_claims(**changes))

    # -- forgeries -------------------------------------------------------------

    def unsigned(self, claims):
        """C{alg: none}: the claims, no signature (the C{kid} of a real key)."""
        return compact({"typ": "JWT", "alg": "none", "kid": self.signing.kid}, claims)

    def hmac_with_public_key(self, claims, alg="HS256"):
        """
        The algorithm confusion attack: C{HS256} keyed with the issuer's
        public key (PEM), which a naive verifier would use as the secret.
        """
        header = {"typ": "JWT", "alg": alg, "kid": self.signing.kid}
        signing_input = f"{b64(_json(header))}.{b64(_json(claims))}".encode("ascii")
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384,
                  "HS512": hashlib.sha512}[alg]
        signature = hmac.new(self.signing.public_pem(), signing_input, digest).digest()
        return f"{signing_input.decode('ascii')}.{b64(signature)}"

    def forged(self, claims, kid=None):
        """Signed by a key the issuer does not publish, under C{kid} (default: its own)."""
        return self.sign(claims, self.stranger,
                         header={"kid": kid} if kid is not None else None)

    def with_embedded_key(self, claims):
        """
        Signed by the forger's key, which the header carries as C{jwk} (and
        names by a real C{kid}): a verifier must never use a header's key.
        """
        header = {"kid": self.signing.kid, "jwk": self.stranger.public_jwk(),
                  "jku": self.url + "/evil-jwks"}
        return self.sign(claims, self.stranger, header=header)


class Issuers:
    """
    Several issuers under one base URL, C{<base>/<name>} each, and the
    requests they were sent.

    @ivar requests: the paths requested, in order.
    @ivar fail: when true, every request answers 500.
    """

    def __init__(self, base, now=time.time):
        self.base = base.rstrip("/")
        self.now = now
        self.issuers = {}
        self.requests = []
        self.fail = False
        self.padding = 0

    def add(self, name, kind="rsa"):
        """A new issuer at C{<base>/<name>}."""
        issuer = self.issuers[name] = Issuer(f"{self.base}/{name}", kind, self.now)
        return issuer

    def __getitem__(self, name):
        return self.issuers[name]

    def count(self, suffix):
        """How many requests were for a path ending with C{suffix}."""
        return sum(1 for path in self.requests if path.endswith(suffix))

    def answer(self, path):
        """C{(status, body)} of a GET of C{path}."""
        self.requests.append(path)
        if self.fail:
            return 500, b"down for maintenance"
        name, _, rest = path.lstrip("/").partition("/")
        issuer = self.issuers.get(name)
        if issuer is None:
            return 404, b'{"error": "no such issuer"}'
        status, body = issuer.answer("/" + rest)
        if self.padding and rest == "jwks":
            body = _json(dict(json.loads(body), padding="x" * self.padding))
        return status, body


class IssuerResource(Resource):
    """L{Issuers} as a Twisted resource (for L{treq.testing.StubTreq})."""

    isLeaf = True

    def __init__(self, issuers):
        Resource.__init__(self)
        self.issuers = issuers
        #: when true, requests are never answered (a hung issuer)
        self.hang = False

    def render_GET(self, request):
        """Answer a document, or hold the request for ever when C{hang}."""
        if self.hang:
            self.issuers.requests.append(request.path.decode())
            return NOT_DONE_YET
        status, body = self.issuers.answer(request.path.decode())
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return body


def _send_json(handler, status, body):
    """Answer a test server's request with C{status} and the JSON C{body} (bytes)."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers the issuers' documents over HTTPS."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        _send_json(self, *self.server.issuers.answer(self.path.split("?")[0]))

    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, context, issuers):
        super().__init__(address, _Handler)
        self.context = context
        self.issuers = issuers

    def get_request(self):
        sock, address = self.socket.accept()
        # (the handshake runs in the request's thread, on its first read)
        return self.context.wrap_socket(sock, server_side=True,
                                        do_handshake_on_connect=False), address


class HTTPSIssuers:
    """
    L{Issuers} served over HTTPS on 127.0.0.1 from a thread, with a
    certificate of a new L{TestCA} in C{folder}.

    @ivar ca_path: the root certificate a client must trust (C{[oidc] ca_bundle}).
    """

    def __init__(self, folder):
        ca = TestCA(os.path.join(folder, "ca"))
        files = ca.issue("issuer")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(files.fullchain, files.key)
        self.ca_path = ca.root_path
        self._server = _Server(("127.0.0.1", 0), context, None)
        self.port = self._server.server_address[1]
        self.issuers = self._server.issuers = Issuers(f"https://127.0.0.1:{self.port}")
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="oidc-issuer")
        self._thread.start()

    def stop(self):
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class _TokenRequestHandler(http.server.BaseHTTPRequestHandler):
    """Answers GitHub Actions' ID token requests (see L{CITokenEndpoint})."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        _send_json(self, *self.server.endpoint.answer(self.path,
                                                      self.headers.get("Authorization", "")))

    def log_message(self, *args):
        pass


class CITokenEndpoint:
    """
    The ID token service of a GitHub Actions runner, as a CI job's client
    calls it: C{GET <ACTIONS_ID_TOKEN_REQUEST_URL>&audience=<aud>} with
    C{Authorization: bearer <ACTIONS_ID_TOKEN_REQUEST_TOKEN>}, answered
    C{{"value": "<JWT>"}} (a token of L{Issuer.github_token} for the
    audience asked), served on 127.0.0.1 over plain HTTP from a thread.

    It is what lets the real clients (uv, twine's C{id} library) run
    unmodified in a simulated job: they find the variables of
    L{environ} and fetch their token here.

    @ivar claims: changes to the claims of the tokens given out (such as
        C{{"repository": "evil/widgets"}}).
    @ivar requests: C{(path, audience)} of each request, in order.
    """

    def __init__(self, issuer, request_token="runner-request-token"):
        self.issuer = issuer
        self.request_token = request_token
        self.claims = {}
        self.requests = []
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenRequestHandler)
        self._server.daemon_threads = True
        self._server.endpoint = self
        self.port = self._server.server_address[1]
        #: what the runner sets as ACTIONS_ID_TOKEN_REQUEST_URL (GitHub's has a query)
        self.url = f"http://127.0.0.1:{self.port}/_apis/idtoken?api-version=2.0"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="ci-token-endpoint")
        self._thread.start()

    def environ(self):
        """The variables a GitHub Actions job with C{id-token: write} has."""
        return {"GITHUB_ACTIONS": "true", "CI": "true",
                "ACTIONS_ID_TOKEN_REQUEST_URL": self.url,
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token}

    def answer(self, path, authorization):
        """C{(status, body)} of a token request for C{path}."""
        query = parse_qs(urlsplit(path).query)
        audience = query.get("audience", [None])[0]
        self.requests.append((path, audience))
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() != "bearer" or credential != self.request_token:
            return 401, b'{"message": "bad request token"}'
        if audience is None:
            # (GitHub then gives the repository owner's URL as aud)
            audience = "https://github.example/" + self.issuer.github_claims()["repository_owner"]
        token = self.issuer.github_token(**{"audience": audience, **self.claims})
        return 200, _json({"count": 1, "value": token})

    def stop(self):
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
