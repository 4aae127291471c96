"""
A real OpenID Connect provider for the single sign-on tests: Django with
django-oidc-provider (both from the package registry, in the test
extras), served over HTTPS with a certificate of L{tests.harness.tlsca.TestCA} by
Twisted's WSGI container, in a process of its own.

It is what a company's provider is to pypid: a login form of its own, the
authorization endpoint (code flow, PKCE, C{state}, C{nonce}), the token
endpoint with client secrets, the userinfo endpoint, its discovery
document and JWKS, and ID tokens signed with its RSA key and carrying
C{preferred_username}, C{email} and C{groups}.

  - L{OpenIDProvider} starts and stops it from a test (a
    L{tests.harness.e2e.ChildProcess}); the process is this module run as
    C{python -m tests.harness.oidc_provider FOLDER PORT CERT KEY}.
  - Its users are L{PEOPLE} (password L{PASSWORD}); its clients are
    C{pypid} (L{CLIENT_ID}, L{CLIENT_SECRET}) and C{other-app}.
  - Where the clients may send people back (their registered redirect
    URIs) is read from C{redirects.json} in its folder at each request
    (L{OpenIDProvider.register}), since pypid's port is chosen after the
    provider starts.
  - A provider can misbehave on purpose (L{OpenIDProvider.misbehave}):
    its ID tokens, still signed with its own key, then carry another
    audience, another nonce, or an expiry in the past; so pypid's checks
    are tried against the real provider's signatures, not only against
    tokens a test forged.
"""

import json
import os
import subprocess
import sys
import time
import urllib.request

from tests import CHECKOUT
from tests.harness.e2e import ChildProcess, E2EFailure, start_on_free_port
from tests.harness.tlsca import TestCA

#: The people of the provider: user name -> (email, groups).
PEOPLE = {
    "alice": ("alice@corp.example", ("platform", "staff")),
    "bob": ("bob@corp.example", ("staff",)),
    "eve": ("eve@corp.example", ()),
    # (the name of pypid's local user in the end-to-end tests: refused)
    "uploader": ("uploader@corp.example", ("staff",)),
}
#: Every person's password at the provider.
PASSWORD = "provider-password-1"

#: pypid's registration at the provider.
CLIENT_ID = "pypid"
CLIENT_SECRET = "pypid-client-secret-4f1c9a"
#: Another application of the same provider.
OTHER_CLIENT_ID = "other-app"
OTHER_CLIENT_SECRET = "other-app-secret-77d2"

#: What L{OpenIDProvider.misbehave} may make its ID tokens do.
MODES = ("", "audience", "nonce", "expired")

_LOGIN_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Corp sign-in</title></head>
<body><h1>Corp sign-in</h1>
{% if form.errors %}<p id="error">Wrong user name or password.</p>{% endif %}
<form method="post">{% csrf_token %}
<p><label for="id_username">Corp user</label>
<input id="id_username" name="username" autocomplete="username"></p>
<p><label for="id_password">Corp password</label>
<input id="id_password" name="password" type="password"></p>
<input type="hidden" name="next" value="{{ next }}">
<p><button type="submit">Sign in to Corp</button></p>
</form></body></html>
"""


class OpenIDProvider(ChildProcess):
    """
    The provider, serving on C{https://127.0.0.1:<port>/openid}.

    @ivar folder: its folder (database, certificate, log, control files).
    @ivar issuer: its issuer URL (the C{iss} of its tokens).
    @ivar ca_path: the root certificate a client must trust.
    """

    what = "OpenID provider"

    def __init__(self, folder):
        self.folder = os.path.abspath(folder)
        os.makedirs(self.folder, exist_ok=True)
        ca = TestCA(os.path.join(self.folder, "ca"))
        self._files = ca.issue("provider")
        self.ca_path = ca.root_path
        self.log_path = os.path.join(self.folder, "provider.log")
        self.register([])
        self.misbehave("")

    def start(self, timeout=60):
        """Start it on a free port, and wait until it serves its discovery document."""
        def launch(port):
            with open(self.log_path, "ab") as log:
                return subprocess.Popen(
                    [sys.executable, "-m", "tests.harness.oidc_provider", self.folder, str(port),
                     self._files.fullchain, self._files.key],
                    cwd=CHECKOUT,
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

        def ready():
            return self.discovery() is not None

        def log():
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        start_on_free_port(self, launch, ready, log, timeout=timeout)
        self.issuer = f"https://127.0.0.1:{self.port}/openid"
        return self

    def discovery(self):
        """Its discovery document, or L{None} while it does not answer."""
        import ssl
        context = ssl.create_default_context(cafile=self.ca_path)
        try:
            with urllib.request.urlopen(
                    f"https://127.0.0.1:{self.port}/openid/.well-known/openid-configuration",
                    context=context, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            return None

    def register(self, redirects, other=()):
        """Where C{pypid} (C{redirects}) and C{other-app} (C{other}) may send people back."""
        _write_json(os.path.join(self.folder, "redirects.json"),
                    {CLIENT_ID: list(redirects), OTHER_CLIENT_ID: list(other)})

    def misbehave(self, mode):
        """Make its next ID tokens do C{mode} (one of L{MODES}; C{""}: behave)."""
        if mode not in MODES:
            raise ValueError(mode)
        _write_json(os.path.join(self.folder, "mode.json"), {"mode": mode})

    def log_text(self):
        """What it wrote."""
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()


def _write_json(path, value):
    temp = path + ".tmp"
    with open(temp, "w", encoding="utf-8") as f:
        json.dump(value, f)
    os.replace(temp, path)


def _read_json(path, default):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


# -- the process ------------------------------------------------------------------------

_FOLDER = ""


def userinfo(claims, user):
    """The standard claims of a person (django-oidc-provider's C{OIDC_USERINFO})."""
    claims["preferred_username"] = user.username
    claims["name"] = user.username.title()
    claims["email"] = user.email
    claims["email_verified"] = True
    return claims


def _groups_claims():
    from oidc_provider.lib.claims import ScopeClaims

    class GroupsClaims(ScopeClaims):
        """The C{groups} scope: the names of the person's Django groups."""

        info_groups = ("Groups", "The groups you are in.")

        def scope_groups(self):
            return {"groups": sorted(group.name for group in self.user.groups.all())}
    return GroupsClaims


GroupsClaims = None


def misbehaving(id_token, user=None, token=None, request=None, **kwargs):
    """
    The ID token processing hook: as it is, or changed as C{mode.json}
    says (signed by the provider afterwards, with its own key).
    """
    mode = _read_json(os.path.join(_FOLDER, "mode.json"), {}).get("mode", "")
    if mode == "audience":
        id_token["aud"] = OTHER_CLIENT_ID
    elif mode == "nonce":
        id_token["nonce"] = "not-the-nonce-pypid-sent"
    elif mode == "expired":
        id_token["iat"] = int(time.time()) - 7200
        id_token["exp"] = int(time.time()) - 3600
    return id_token


class _Redirects:
    """A middleware that keeps the clients' redirect URIs as C{redirects.json} says."""

    def __init__(self, get_response):
        self.get_response = get_response
        self._seen = None

    def __call__(self, request):
        path = os.path.join(_FOLDER, "redirects.json")
        try:
            stamp = os.stat(path).st_mtime_ns
        except OSError:
            stamp = None
        if stamp != self._seen:
            from oidc_provider.models import Client
            for client_id, uris in _read_json(path, {}).items():
                Client.objects.filter(client_id=client_id).update(_redirect_uris="\n".join(uris))
            self._seen = stamp
        return self.get_response(request)


def _configure(folder, port):
    global _FOLDER, GroupsClaims
    _FOLDER = folder
    import django
    from django.conf import settings
    settings.configure(
        DEBUG=False,
        SECRET_KEY="tests-only-" + "k" * 40,
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes",
                        "django.contrib.sessions", "oidc_provider"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware",
                    "django.middleware.csrf.CsrfViewMiddleware",
                    "django.contrib.auth.middleware.AuthenticationMiddleware",
                    __name__ + "._Redirects"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                               "NAME": os.path.join(folder, "provider.sqlite3")}},
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates",
                    "OPTIONS": {
                        "context_processors": ["django.template.context_processors.request",
                                               "django.contrib.auth.context_processors.auth"],
                        "loaders": [("django.template.loaders.locmem.Loader",
                                     {"login.html": _LOGIN_TEMPLATE}),
                                    "django.template.loaders.app_directories.Loader"]}}],
        USE_TZ=True,
        SITE_URL=f"https://127.0.0.1:{port}",
        LOGIN_URL="/accounts/login/",
        # (the provider's cookies, apart from pypid's on the same host)
        SESSION_COOKIE_NAME="provider-session",
        CSRF_COOKIE_NAME="provider-csrf",
        SESSION_COOKIE_SECURE=True,
        CSRF_COOKIE_SECURE=True,
        CSRF_TRUSTED_ORIGINS=[f"https://127.0.0.1:{port}"],
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        OIDC_USERINFO=__name__ + ".userinfo",
        OIDC_EXTRA_SCOPE_CLAIMS=__name__ + ".GroupsClaims",
        OIDC_IDTOKEN_INCLUDE_CLAIMS=True,
        OIDC_IDTOKEN_PROCESSING_HOOK=__name__ + ".misbehaving",
        OIDC_SESSION_MANAGEMENT_ENABLE=False,
        LOGGING_CONFIG=None,
    )
    django.setup()
    GroupsClaims = _groups_claims()


def _populate():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from oidc_provider.models import Client, ResponseType, RSAKey

    call_command("migrate", verbosity=0, interactive=False)
    if not RSAKey.objects.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        RSAKey.objects.create(key=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption()).decode("ascii"))
    for name, (email, groups) in PEOPLE.items():
        if User.objects.filter(username=name).exists():
            continue
        user = User.objects.create_user(name, email, PASSWORD)
        for group in groups:
            user.groups.add(Group.objects.get_or_create(name=group)[0])
    code = ResponseType.objects.get(value="code")
    for client_id, secret in ((CLIENT_ID, CLIENT_SECRET),
                              (OTHER_CLIENT_ID, OTHER_CLIENT_SECRET)):
        if Client.objects.filter(client_id=client_id).exists():
            continue
        client = Client.objects.create(
            name=client_id, client_type="confidential", client_id=client_id,
            client_secret=secret, jwt_alg="RS256", require_consent=False,
            reuse_consent=True, _scope="openid profile email groups")
        client.response_types.add(code)


def _urls():
    from django.contrib.auth.views import LoginView
    from django.urls import include, path
    return [path("accounts/login/", LoginView.as_view(template_name="login.html")),
            path("openid/", include("oidc_provider.urls", namespace="oidc_provider"))]


def __getattr__(name):
    # (Django's ROOT_URLCONF is this module: its patterns once Django is set up)
    if name == "urlpatterns":
        return _urls()
    raise AttributeError(name)


def main(folder, port, cert, key):
    """Serve the provider over HTTPS on 127.0.0.1:C{port} until stopped."""
    _configure(folder, int(port))
    _populate()
    from django.core.wsgi import get_wsgi_application
    from twisted.internet import endpoints, reactor, ssl
    from twisted.web.server import Site
    from twisted.web.wsgi import WSGIResource

    with open(cert, "rb") as f:
        chain = f.read()
    with open(key, "rb") as f:
        private = f.read()
    leaf, *rest = [part + b"-----END CERTIFICATE-----\n"
                   for part in chain.split(b"-----END CERTIFICATE-----")[:-1]]
    certificate = ssl.PrivateCertificate.loadPEM(private + b"\n" + leaf)
    options = ssl.CertificateOptions(
        privateKey=certificate.privateKey.original, certificate=certificate.original,
        extraCertChain=[ssl.Certificate.loadPEM(part.strip()).original for part in rest])
    resource = WSGIResource(reactor, reactor.getThreadPool(), get_wsgi_application())
    endpoint = endpoints.SSL4ServerEndpoint(reactor, int(port), options, interface="127.0.0.1")
    endpoint.listen(Site(resource)).addErrback(lambda f: (print(f.getErrorMessage(),
                                                                flush=True), reactor.stop()))
    print(f"serving on https://127.0.0.1:{port}/openid", flush=True)
    reactor.run()


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit("usage: python -m tests.harness.oidc_provider FOLDER PORT CERT KEY")
    main(*sys.argv[1:])


__all__ = ["OpenIDProvider", "E2EFailure"]
