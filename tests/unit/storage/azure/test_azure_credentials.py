"""
The Azure adapter with the credentials other than an account key: a SAS
token added to every request, and the identity chain's bearer tokens and
user delegation keys (on an Azurite over HTTPS, which takes them).
"""

import base64
import datetime
import json
import os

import treq
from azure.storage.blob import generate_container_sas
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from pypid.http.client import https_policy, make_http
from pypid.storage.azure.blob_auth import AzureIdentity, SasToken
from pypid.storage.azure.blob_calls import AzureClient
from pypid.storage.base.interface import StorageError
from tests.harness import azurite
from tests.harness.azure import AzuriteCase
from tests.harness.fakes import run_now
from tests.harness.object_store import ObjectStoreContractMixin
from tests.harness.tlsca import TestCA


def container_sas(container):
    """A SAS for the container, as an operator makes one: read, add, create, write, delete, list."""
    expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=2)
    return generate_container_sas(azurite.ACCOUNT, container, account_key=azurite.KEY,
                                  permission="racwdl", expiry=expiry)


class SasTokenStoreTests(ObjectStoreContractMixin, AzuriteCase):
    """The object store contract with a SAS token in every URL (and in a copy's source)."""

    async def make_store(self, small_parts=False):
        store = self.client(credentials=SasToken(container_sas(self.container)),
                            **({"block_size": self.part_size} if small_parts else {}))
        await store.start()
        return store

    part_size = 256 << 10

    async def make_store_without_container(self):
        name = "pypid-no-such-container"
        store = self.client(name, credentials=SasToken(container_sas(name)))
        await store.start()
        return store

    async def make_broken_store(self, endpoint, timeout):
        return self.client(endpoint=endpoint + "/" + azurite.ACCOUNT, timeout=timeout,
                           credentials=SasToken("sv=2026-02-06&sig=x"))

    async def test_signed_url(self):
        """A SAS token signs no download URL: a clear refusal, not a URL that fails later."""
        store = await self.make_store()
        with self.assertRaises(StorageError) as caught:
            store.sign_url("k", 600, reactor.seconds())
        self.assertIn("download = stream", str(caught.exception))

    async def test_other_container_refused(self):
        """The token of another container is refused (403), as the service refuses it."""
        store = self.client(credentials=SasToken(container_sas("other")))
        await store.start()
        with self.assertRaises(StorageError) as caught:
            await store.answers()
        self.assertIn("Azure refused access", str(caught.exception))


def _token(seconds):
    """A bearer token as Azure's identity endpoints give one (Azurite reads its claims only)."""
    now = int(reactor.seconds())
    claims = {"iss": "https://sts.windows.net/ab1f708d-50f6-404c-a006-d71b2ac7a606/",
              "aud": "https://storage.azure.com", "iat": now - 60, "nbf": now - 60,
              "exp": now + seconds, "oid": "5a2b0c5e-aaaa-bbbb-cccc-0123456789ab",
              "tid": "ab1f708d-50f6-404c-a006-d71b2ac7a606"}

    def part(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.sig"


class _Chain:
    """The identity chain's face (C{get_token}), counting what it was asked."""

    def __init__(self, fail=False):
        self.asked = []
        self.fail = fail

    def get_token(self, scope):
        self.asked.append(scope)
        if self.fail:
            raise RuntimeError("DefaultAzureCredential failed to retrieve a token")
        from azure.core.credentials import AccessToken
        return AccessToken(_token(3600), int(reactor.seconds()) + 3600)


class IdentityTests(TestCase):
    """The identity chain on an Azurite over HTTPS: tokens, and URLs signed by delegation."""

    def setUp(self):
        reason = azurite.available()
        if reason:
            self.skipTest(reason)
        azurite.install()
        ca = TestCA(os.path.abspath(self.mktemp()))
        self.server = azurite.AzuriteServer(ca.issue(), ca.root_path)
        self.addCleanup(self.server.stop)
        self.server.wait_ready()
        self.container = self.server.new_container()
        self.policy = https_policy(ca.root_path)

    def client(self, chain, delegate=True):
        http, pool = make_http(reactor, 10.0, policy=self.policy)
        self.addCleanup(pool.closeCachedConnections)
        identity = AzureIdentity(azurite.ACCOUNT, run_now, reactor, chain=lambda: chain,
                                 delegate=delegate)
        client = AzureClient(self.server.endpoint, azurite.ACCOUNT, self.container, identity,
                             http, reactor, run=run_now)
        self.addCleanup(client.stop)
        return client

    async def test_tokens_and_delegated_urls(self):
        """Requests carry the chain's token; a download URL signed by delegation serves the blob."""
        chain = _Chain()
        client = self.client(chain)
        await client.start()
        self.assertEqual(chain.asked, ["https://storage.azure.com/.default"])
        self.assertTrue(await client.put("pkgs/a.whl", b"delegated", if_none_match=True))
        self.assertEqual(await client.get("pkgs/a.whl"), b"delegated")
        url, seconds = client.sign_url("pkgs/a.whl", 600, reactor.seconds())
        self.assertIn("skoid=", url)
        self.assertTrue(client.signer().startswith("delegation:"))
        agent = Agent(reactor, self.policy, pool=HTTPConnectionPool(reactor, persistent=False))
        response = await treq.request("GET", url, agent=agent)
        self.assertEqual((response.code, await response.content()), (200, b"delegated"))
        tampered = await treq.request("GET", url.replace("a.whl", "b.whl"), agent=agent)
        await tampered.content()
        self.assertEqual(tampered.code, 403)

    async def test_relayed_without_delegation(self):
        """Downloads relayed: no user delegation key is asked for, and no URL signed."""
        client = self.client(_Chain(), delegate=False)
        await client.start()
        self.assertTrue(await client.put("pkgs/b.whl", b"relayed"))
        with self.assertRaises(StorageError):
            client.sign_url("pkgs/b.whl", 600, reactor.seconds())

    async def test_no_identity(self):
        """A chain that finds no identity stops the start with a line saying what to set."""
        client = self.client(_Chain(fail=True))
        with self.assertRaises(StorageError) as caught:
            await client.start()
        self.assertIn("set [azure] account_key or sas_token", str(caught.exception))



class _Unreachable:
    """An identity chain that finds no identity, saying so as Azure's does: line by line."""

    def get_token(self, scope):
        raise RuntimeError(
            "DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
            "Attempted credentials:\n\tEnvironmentCredential: authentication unavailable.\n"
            "To mitigate this issue, please refer to the troubleshooting guidelines.")


class NoIdentityLineTests(TestCase):
    """A chain that finds no identity is one line: the chain's first, not its every try."""

    async def test_first_line(self):
        identity = AzureIdentity("acct", run_now, Clock(), chain=_Unreachable)
        with self.assertRaises(StorageError) as caught:
            await identity.start()
        self.assertEqual(str(caught.exception),
                         "no Azure credentials: set [azure] account_key or sas_token, or give "
                         "the machine an identity (the Azure identity chain said: "
                         "DefaultAzureCredential failed to retrieve a token from the included "
                         "credentials.)")
