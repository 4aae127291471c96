"""
Make the data set a released version of pypid leaves behind (issue 61,
item 4), for L{tests.e2e.test_upgrade} to start today's code on.

Given a checkout of the release (``git worktree add /tmp/v-0.1.0 <tag>``),
this starts I{that} checkout's daemon (``twistd -n pypid`` with its
C{src/} first on C{PYTHONPATH}) in a folder of its own, on loopback ports,
and drives it over HTTP as people and tools would: uploads of wheels and
an sdist to the default index and to a named one, a yank, a delete into
the recycle bin, a project's status, API tokens (one of them revoked and
one used for an upload), downloads (so there are download counts), the
upstream cache (a local upstream, L{tests.harness.upstream_server}, whose page and
one file are fetched), advisories with a waiver of the configuration
(and one made through the API, when the release has that API), a
namespace grant and a browser session when the release has them. It
stops the daemon cleanly (the counts, the snapshot and the upstream's
state are written) and keeps the folder as the set:
C{tests/harness/upgrade_data/<version>/local/} (C{pypid.ini} with relative paths,
C{var/}, C{packages/}, C{advisories/}).

The same set in a bucket (C{--bucket}): the release runs on moto's S3
server (L{tests.harness.s3server}), and the bucket's objects (key, content type,
user metadata, bytes) are dumped into C{<version>/bucket/objects/} with a
C{manifest.json}; C{var/} and the configuration are kept beside it.

Then a copy of each folder is served again by the same release, with the
upstream switched to C{offline = yes} (the local upstream is gone when
the tests run), and every answer the tests will check is recorded in
C{expected.json}: each page in both forms, each file's sha256, the
legacy JSON, the admin API (tokens, audit log, usage, recycle bin,
advisories), what each token may do. The copy is thrown away, so the set
is exactly what the release left at its stop.

Run it from the checkout of today's tests (the tools used to drive the old
daemon are today's)::

    git worktree add --detach /tmp/v-c9d0039 c9d0039
    PYTHONPATH=src:. .venv/bin/python tests/harness/upgrade_data/make_set.py /tmp/v-c9d0039
    git worktree remove /tmp/v-c9d0039

The set is named after the release's C{setup.py} version (C{--name}
overrides it: a commit between releases is named as setuptools_scm
versions it, C{0.1.1.dev607+g55e9b76}; see the README), and C{set.json}
records the commit it was made from.

A release with webhooks (its docs name C{[webhook:NAME]}) gets a
subscription to a receiver this script runs on loopback
(L{tests.harness.webhook_receiver}): what it is told while the set is
made is delivered; then the receiver goes down and a few more changes are
made, whose events wait in the outbox at the stop. C{expected.json} keeps
which events were delivered and which wait (C{webhooks}).
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from urllib.parse import quote

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(os.path.dirname(HERE))
if CHECKOUT not in sys.path:
    sys.path.insert(0, CHECKOUT)

from tests.harness import upgrade as sets  # noqa: E402
from tests.harness.distributions import make_sdist, make_wheel  # noqa: E402
from tests.harness.e2e import (  # noqa: E402
    HOST,
    PASSWORD,
    TWISTD,
    USER,
    E2EFailure,
    clean_env,
    free_port,
    http,
    password_hash,
    upload_form,
)
from tests.harness.osv_records import osv_record, write_folder  # noqa: E402

#: Seconds the old daemon gets to start and to stop: generous, for a
#: loaded machine.
START_TIMEOUT = 120.0
STOP_TIMEOUT = 120.0
#: Seconds one request may take.
HTTP_TIMEOUT = 60.0

ADMIN = sets.ADMIN
ADMIN_PASSWORD = sets.ADMIN_PASSWORD

#: The upstream's projects: a page the cache fetches, one file it keeps.
UPSTREAM_PROJECT = "remote-lib"

#: The project of the changes made while the webhook's receiver is down.
OUTAGE_PROJECT = "late-lib"

#: The advisories: one waived by the configuration, one left to warn about.
ADVISORIES = [
    osv_record("PYSEC-2026-9001", "widget", events=[{"introduced": "0"}, {"fixed": "1.1"}],
               severity="HIGH", summary="widget before 1.1 leaks"),
    osv_record("PYSEC-2026-9002", "gadget", versions=["0.1"], severity="LOW",
               summary="gadget 0.1 is slow"),
    osv_record("PYSEC-2026-9003", "widget", versions=["2.0"], severity="MODERATE",
               summary="widget 2.0 is waived through the API"),
]
WAIVED_BY_CONFIG = "PYSEC-2026-9002"


class SetError(Exception):
    """The set cannot be made; the message says why."""


# -- the release's features --------------------------------------------------------------


class Release:
    """A checkout of a release: where it is, what it is called, what it has."""

    def __init__(self, path, name=None):
        self.path = os.path.abspath(path)
        self.src = os.path.join(self.path, "src")
        if not os.path.isdir(os.path.join(self.src, "pypid")):
            raise SetError(f"{self.path} is not a checkout of pypid (no src/pypid)")
        self.commit = subprocess.run(["git", "-C", self.path, "rev-parse", "HEAD"],
                                     check=True, capture_output=True, text=True).stdout.strip()
        with open(os.path.join(self.path, "setup.py"), encoding="utf-8") as f:
            found = re.search(r'version="([^"]+)"', f.read())
        self.version = found.group(1) if found else "unknown"
        self.name = name or self.version
        docs = ""
        for page in ("configuration.rst", "http-api.rst", "operations.rst"):
            with open(os.path.join(self.path, "docs", page), encoding="utf-8") as f:
                docs += f.read()
        #: the features that leave state of their own, by what the docs say
        self.sessions = "``sessions``" in docs and "[auth] sessions" in docs
        self.api_waivers = "POST /api/advisories/waivers" in docs
        self.namespaces = "[namespaces]" in docs
        #: webhooks: their outbox, in the store, is what the set keeps of them
        self.webhooks = "[webhook:NAME]" in docs

    def features(self):
        """What the release has, as L{tests.harness.upgrade.record} takes it."""
        return {"sessions": self.sessions, "api_waivers": self.api_waivers,
                "namespaces": self.namespaces, "webhooks": self.webhooks}

    def environ(self):
        """The daemon's C{PYTHONPATH}: the release's code first."""
        return {"PYTHONPATH": self.src}


# -- the configuration ---------------------------------------------------------------------


def config_text(release, upstream_url, offline, bucket=None, webhook_url=None):
    """
    The set's C{pypid.ini}: every path relative to the folder it is in.

    @param webhook_url: where the release's webhook sends, while the set is
        made; the set keeps L{tests.harness.upgrade.WEBHOOK_URL}, where
        nothing listens (the tests give their receiver's with C{--set}).
    """
    lines = [
        "# The configuration of an upgrade data set (tests/upgrade_data/make_set.py):",
        f"# written for pypid {release.version} ({release.commit}).",
        "[pypid]",
        "snapshot = var/index.json",
        "snapshot_interval = 30",
        "advisories = warn",
        f"advisory_waive = {WAIVED_BY_CONFIG}",
        "[storage]",
    ]
    if bucket is None:
        lines += ["backend = local", "path = packages", "min_free = 1M"]
    else:
        lines += ["backend = s3",
                  "[s3]",
                  f"bucket = {bucket['bucket']}",
                  "prefix = packages/",
                  # (the tests load the bucket into a server of their own and
                  # give its address with --set)
                  f"endpoint_url = {bucket['endpoint']}",
                  "addressing = path",
                  f"access_key = {bucket['access_key']}",
                  f"secret_key = {bucket['secret_key']}",
                  "download = stream",
                  "sync_interval = 5s"]
    lines += [
        "[auth]",
        "read = everyone",
        "upload = authenticated",
        f"admins = {ADMIN}",
        "tokens = var/tokens.json",
    ]
    if release.sessions:
        lines.append("sessions = var/sessions.json")
    lines += [
        "[upstream]",
        "mode = cache",
        f"url = {upstream_url}",
        f"offline = {'yes' if offline else 'no'}",
        "[advisories]",
        "path = advisories",
        "[retention]",
        # (long: a test run years after the set was made still finds the
        # file in the bin, not purged)
        "recycle_bin = 36500d",
        "[index:staging]",
        "upload = authenticated",
    ]
    if release.namespaces:
        lines += ["[namespaces]", f"acme = user:{USER}"]
    if release.webhooks:
        lines += [
            f"[webhook:{sets.WEBHOOK}]",
            f"url = {webhook_url or sets.WEBHOOK_URL}",
            "allow_http = yes",
            f"secret = {sets.WEBHOOK_SECRET}",
            "timeout = 10s",
            # (the events waiting in the outbox are never given up, however
            # long after the set was made a test runs)
            "retry_for = 36500d",
            "retry_delay = 1s",
        ]
    lines += [
        "[users]",
        f"{USER} = {password_hash(PASSWORD)}",
        f"{ADMIN} = {password_hash(ADMIN_PASSWORD)}",
    ]
    return "\n".join(lines) + "\n"


# -- the daemon of the release -----------------------------------------------------------------


class OldDaemon:
    """The release's daemon, run by C{twistd} in C{folder} (its working directory)."""

    def __init__(self, release, folder, settings=None):
        self.release = release
        self.folder = folder
        self.settings = dict(settings or {})
        self.process = None
        self.port = None
        self.log_path = os.path.join(os.path.dirname(folder),
                                     os.path.basename(folder) + "-server.log")

    @property
    def url(self):
        """The root URL."""
        return f"http://{HOST}:{self.port}/"

    def start(self):
        """Start it and wait for C{/health}."""
        self.port = free_port()
        argv = [TWISTD, "-n", "--pidfile=", "pypid", "--config", "pypid.ini",
                "--listen", f"tcp:{self.port}:interface={HOST}"]
        for key, value in self.settings.items():
            argv += ["--set", f"{key}={value}"]
        home = tempfile.mkdtemp(prefix="pypid-set-home-")
        with open(self.log_path, "ab") as log:
            log.write(f"==== make_set: start on port {self.port} ====\n".encode())
            self.process = subprocess.Popen(
                argv, cwd=self.folder, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_env(home, PYTHONUNBUFFERED="1", **self.release.environ()),
                start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise SetError(f"the release's daemon exited during start-up; see {self.log_path}")
            try:
                if http("GET", self.url + "health", timeout=5).status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.process.kill()
                raise SetError(f"the release's daemon did not start; see {self.log_path}")
            time.sleep(0.2)

    def stop(self):
        """Stop it with SIGTERM and check it shut down cleanly."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(STOP_TIMEOUT)
        with open(self.log_path, "rb") as f:
            log = f.read()
        if code not in (0, -signal.SIGTERM) or b"Server Shut Down." not in log:
            raise SetError(f"the release's daemon did not stop cleanly ({code}); "
                           f"see {self.log_path}")

    def kill(self):
        """Kill it if it still runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)


def check(response, *statuses, what):
    """Fail unless C{response} has one of C{statuses}; return it."""
    if response.status not in statuses:
        raise SetError(f"{what}: {response.status} {response.body[:500]!r}")
    return response


# -- what the set holds ---------------------------------------------------------------------------------


def distributions():
    """The hosted files: C{{index: [(filename, bytes)]}}, made the same every time."""
    return {
        "default": [
            make_wheel("widget", "1.0", requires_python=">=3.8"),
            make_sdist("widget", "1.0"),
            make_wheel("widget", "1.1"),
            make_wheel("widget", "2.0", requires_dist=["gadget>=0.1"]),
            make_wheel("gadget", "0.1"),
            make_wheel("gadget", "0.2"),
            make_wheel("old-thing", "1.0"),
        ],
        "staging": [make_wheel("widget", "2.1.dev1"), make_wheel("staged-only", "0.1")],
    }


def populate(daemon, release):
    """
    Drive the release's daemon: everything the set holds.

    @return: what the recording needs to know: the tokens (with their
        secrets), the session cookie, the files deleted.
    """
    url = daemon.url
    user = (USER, PASSWORD)
    admin = (ADMIN, ADMIN_PASSWORD)
    for index, files in distributions().items():
        prefix = "" if index == "default" else f"{index}/"
        for filename, data in files:
            ctype, body = upload_form(filename, data)
            check(http("POST", url + prefix, {"Content-Type": ctype}, body, auth=user),
                  200, what=f"upload of {filename} to {index}")
    check(http("POST", url + "api/files/widget-1.1-py3-none-any.whl/yank",
               {"Content-Type": "application/x-www-form-urlencoded"},
               b"reason=broken+on+Tuesdays", auth=user), 200, what="yank")
    check(http("DELETE", url + "api/files/gadget-0.2-py3-none-any.whl", auth=user),
          200, 204, what="delete into the bin")
    check(http("POST", url + "api/projects/old-thing/status",
               {"Content-Type": "application/x-www-form-urlencoded"},
               b"status=archived&reason=moved+to+widget", auth=admin),
          200, what="project status")
    tokens = {}
    for name, fields in sets.TOKENS.items():
        response = check(http("POST", url + "api/tokens",
                              {"Content-Type": "application/x-www-form-urlencoded"},
                              fields.encode(), auth=admin), 200, 201, what=f"token {name}")
        tokens[name] = response.json()["token"]
    revoked_id = tokens["revoked"].split("-")[1]
    check(http("DELETE", url + f"api/tokens/{quote(revoked_id)}", auth=admin),
          200, 204, what="token revoked")
    filename, data = make_wheel("widget", "3.0")
    ctype, body = upload_form(filename, data)
    check(http("POST", url, {"Content-Type": ctype}, body,
               auth=("__token__", tokens["widget-upload"])), 200, what="upload with a token")
    # Downloads: counted, written at the stop.
    for filename, times in (("widget-1.0-py3-none-any.whl", 3), ("widget-1.0.tar.gz", 1),
                            ("gadget-0.1-py3-none-any.whl", 2)):
        project = filename.split("-")[0]
        for _ in range(times):
            check(http("GET", url + f"files/{project}/{filename}"), 200,
                  what=f"download of {filename}")
    check(http("GET", url + "staging/files/staged-only/staged_only-0.1-py3-none-any.whl"), 200,
          what="download from staging")
    # The upstream cache: a page and one file kept.
    page = check(http("GET", url + f"simple/{UPSTREAM_PROJECT}/",
                      {"Accept": "application/vnd.pypi.simple.v1+json"}), 200,
                 what="the upstream's page")
    for entry in page.json()["files"]:
        if entry["filename"].startswith("remote_lib-1.0-"):
            check(http("GET", url + f"files/{UPSTREAM_PROJECT}/{entry['filename']}"), 200,
                  what="an upstream file")
            check(http("GET", url + f"files/{UPSTREAM_PROJECT}/{entry['filename']}.metadata"),
                  200, what="an upstream file's metadata")
    check(http("GET", url + "simple/remote-other/"), 200, what="a second upstream page")
    # A failed login: an audit entry of its own.
    check(http("GET", url + "api/tokens", auth=(ADMIN, "not-the-password")), 401,
          what="a failed login")
    extra = {"tokens": tokens}
    if release.api_waivers:
        check(http("POST", url + "api/advisories/waivers", {"Content-Type": "application/json"},
                   json.dumps({"index": "default", "project": "widget",
                               "advisory": "PYSEC-2026-9003",
                               "reason": "not reachable here"}).encode(), auth=admin),
              200, 201, what="a waiver through the API")
    if release.sessions:
        response = check(http("POST", url + "login",
                              {"Content-Type": "application/x-www-form-urlencoded"},
                              f"user={USER}&password={quote(PASSWORD)}".encode()),
                         303, what="a browser session")
        extra["session"] = response.header("Set-Cookie").split(";")[0]
    return extra


# -- the webhook -----------------------------------------------------------------------------------------

#: Seconds the release's deliverer gets to send what its outbox holds, and
#: to read the advisories once.
DELIVERY_TIMEOUT = 120.0
#: Seconds the outbox must stay empty before the receiver is taken down
#: (a late event, such as an advisory told after its upload, is not left
#: half-way).
QUIET = 3.0


class WebhookStore:
    """What the release keeps of its webhook in the variant's storage: its folder, or the bucket."""

    def __init__(self, folder, client=None):
        self.folder = folder
        self.client = client

    def _names(self, under):
        if self.client is None:
            path = os.path.join(self.folder, "packages", ".pypid", "webhooks", *under.split("/"))
            try:
                return sorted(os.listdir(path))
            except FileNotFoundError:
                return []
        prefix = f"packages/.pypid/webhooks/{under}/"
        names = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=sets.BUCKET, Prefix=prefix):
            names += [item["Key"][len(prefix):] for item in page.get("Contents", [])]
        return sorted(names)

    def _get(self, name):
        if self.client is None:
            with open(os.path.join(self.folder, "packages", ".pypid", "webhooks",
                                   *name.split("/")), "rb") as f:
                return f.read()
        return self.client.get_object(Bucket=sets.BUCKET,
                                      Key=f"packages/.pypid/webhooks/{name}")["Body"].read()

    def told(self):
        """Whether the advisories were read once (where the telling of advisories starts)."""
        return "told.json" in self._names("advisories")

    def outbox(self):
        """The events the outbox holds, in its order: C{[{"key", "id", "type", "to"}]}."""
        found = []
        for name in self._names("outbox"):
            if not name.endswith(".json"):
                continue
            record = json.loads(self._get(f"outbox/{name}"))
            found.append({"key": name[:-len(".json")], "id": record["event"]["id"],
                          "type": record["event"]["type"], "to": record["to"]})
        return found


def wait_for(predicate, what, timeout=DELIVERY_TIMEOUT):
    """Poll C{predicate} until it is true; L{SetError} naming C{what} after C{timeout} s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SetError(f"{what} within {timeout:.0f} s")
        time.sleep(0.2)


def all_delivered(store):
    """Wait until the outbox stays empty: every event so far delivered."""
    while True:
        wait_for(lambda: not store.outbox(), "the release did not deliver its outbox")
        time.sleep(QUIET)
        if not store.outbox():
            return


def during_outage(daemon):
    """
    Changes made while the webhook's receiver is down: their events wait
    in the outbox when the release stops.
    """
    url = daemon.url
    user = (USER, PASSWORD)
    admin = (ADMIN, ADMIN_PASSWORD)
    for prefix, (filename, data) in (("", make_wheel(OUTAGE_PROJECT, "1.0")),
                                     ("", make_wheel(OUTAGE_PROJECT, "1.1")),
                                     ("staging/", make_wheel("staged-only", "0.2"))):
        ctype, body = upload_form(filename, data)
        check(http("POST", url + prefix, {"Content-Type": ctype}, body, auth=user), 200,
              what=f"upload of {filename} while the receiver is down")
    check(http("POST", url + f"api/files/{OUTAGE_PROJECT.replace('-', '_')}-1.0-py3-none-any"
               ".whl/yank", {"Content-Type": "application/x-www-form-urlencoded"},
               b"reason=pulled+while+the+receiver+was+down", auth=user), 200,
          what="a yank while the receiver is down")
    check(http("POST", url + "api/tokens", {"Content-Type": "application/x-www-form-urlencoded"},
               b"actions=read&description=issued+while+the+receiver+was+down", auth=admin),
          200, 201, what="a token issued while the receiver is down")


def webhook_record(receiver, store):
    """
    What the tests need to know of the webhook at the release's stop: the
    events its receiver took (2xx, signature checked) and those its outbox
    still holds, in order; never one in both.
    """
    delivered = []
    for received in receiver.received():
        if received.status < 300 and received.verified and received.id not in delivered:
            delivered.append(received.id)
    waiting = store.outbox()
    if not delivered or not waiting:
        raise SetError(f"the webhook's events: {len(delivered)} delivered, {len(waiting)} "
                       "waiting; the set needs some of each")
    both = sorted({w["id"] for w in waiting} & set(delivered))
    if both:
        raise SetError(f"events both delivered and waiting in the outbox: {both}; make the "
                       "set again")
    types = {r.id: r.event["type"] for r in receiver.received()}
    return {"name": sets.WEBHOOK,
            "delivered": [{"id": id, "type": types[id]} for id in delivered],
            "waiting": [{"id": w["id"], "type": w["type"], "key": w["key"], "to": w["to"]}
                        for w in waiting]}


# -- the bucket ---------------------------------------------------------------------------------------------


def dump_bucket(client, bucket, folder):
    """Write every object of C{bucket} into C{folder}/objects and a manifest."""
    objects = os.path.join(folder, "objects")
    os.makedirs(objects, exist_ok=True)
    manifest = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            key = item["Key"]
            got = client.get_object(Bucket=bucket, Key=key)
            data = got["Body"].read()
            digest = hashlib.sha256(data).hexdigest()
            with open(os.path.join(objects, digest), "wb") as f:
                f.write(data)
            manifest.append({"key": key, "sha256": digest,
                             "content_type": got.get("ContentType"),
                             "metadata": got.get("Metadata", {})})
    with open(os.path.join(folder, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump({"bucket": bucket, "objects": manifest}, f, indent=1, sort_keys=True)
        f.write("\n")


# -- the whole -------------------------------------------------------------------------------------------------


def make_variant(release, work, variant, upstream_url):
    """Make one variant (C{local} or C{bucket}) in C{work}; return its folder and recording."""
    folder = os.path.join(work, variant)
    os.makedirs(os.path.join(folder, "var"))
    write_folder(os.path.join(folder, "advisories"), ADVISORIES)
    bucket = settings = None
    if variant == "bucket":
        from tests.harness import s3server
        bucket = {"bucket": sets.BUCKET, "endpoint": sets.BUCKET_ENDPOINT,
                  "access_key": s3server.ACCESS_KEY, "secret_key": s3server.SECRET_KEY}
        client = s3server.client()
        sets.empty_bucket(client, sets.BUCKET)
        settings = {"s3.endpoint_url": s3server.endpoint()}
    receiver = store = webhooks = None
    if release.webhooks:
        # (today's receiver, on loopback: it checks the signatures)
        from tests.harness.webhook_receiver import ReceiverProcess
        receiver = ReceiverProcess(os.path.join(work, f"{variant}-receiver"),
                                   sets.WEBHOOK_SECRET)
        os.makedirs(receiver.directory)
        receiver.start()
        store = WebhookStore(folder, client if variant == "bucket" else None)
    with open(os.path.join(folder, "pypid.ini"), "w", encoding="utf-8") as f:
        f.write(config_text(release, upstream_url, offline=False, bucket=bucket,
                            webhook_url=receiver.url if receiver is not None else None))
    daemon = OldDaemon(release, folder, settings)
    try:
        daemon.start()
        if store is not None:
            # (the advisories read once: the uploads they cover are told at once)
            wait_for(store.told, "the release did not read the advisories")
        extra = populate(daemon, release)
        if receiver is not None:
            # The events so far delivered; then the receiver is down, and
            # the events of what follows wait in the outbox at the stop.
            all_delivered(store)
            receiver.stop()
            during_outage(daemon)
        # (the downloads are counted every 10 s and written at the stop;
        # the upstream's state within seconds, and at the stop)
        daemon.stop()
        if receiver is not None:
            webhooks = webhook_record(receiver, store)
    finally:
        daemon.kill()
        if receiver is not None:
            receiver.kill()
    with open(os.path.join(folder, "pypid.ini"), "w", encoding="utf-8") as f:
        f.write(config_text(release, upstream_url, offline=True, bucket=bucket))
    shutil.rmtree(os.path.join(folder, "home"), ignore_errors=True)
    if variant == "bucket":
        dump_bucket(client, sets.BUCKET, os.path.join(folder, "bucket"))
    # The recording: the release serving a copy of the set, offline.
    copy = os.path.join(work, variant + "-copy")
    shutil.copytree(folder, copy)
    sets.relocate(copy, folder)
    if variant == "bucket":
        sets.load_bucket(client, os.path.join(folder, "bucket"), sets.BUCKET)
    daemon = OldDaemon(release, copy, settings)
    try:
        daemon.start()
        sets.wait_until_ready(daemon.url, START_TIMEOUT, HTTP_TIMEOUT)
        exchanges = sets.record(daemon.url, copy, extra, release.features(), HTTP_TIMEOUT)
        daemon.stop()
    finally:
        daemon.kill()
    recording = {"made_in": folder, "tokens": extra["tokens"],
                 "session": extra.get("session"), "exchanges": exchanges}
    if webhooks is not None:
        recording["webhooks"] = webhooks
    return folder, recording


def main(argv=None):
    """Make the set of the release checked out at the path given."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", help="a checkout of the release (git worktree add ...)")
    parser.add_argument("--name", help="the set's name (default: the release's version)")
    parser.add_argument("--variants", default="local,bucket",
                        help="local, bucket or both (comma-separated)")
    parser.add_argument("--into", default=HERE, help="where the sets are kept")
    options = parser.parse_args(argv)
    release = Release(options.checkout, options.name)
    target = os.path.join(options.into, release.name)
    work = tempfile.mkdtemp(prefix=f"pypid-set-{release.name}-")
    from tests.harness.upstream_server import UpstreamProcess
    upstream_dir = os.path.join(work, "upstream")
    os.makedirs(upstream_dir)
    for filename, data in (make_wheel(UPSTREAM_PROJECT, "1.0"), make_wheel(UPSTREAM_PROJECT, "2.0"),
                           make_sdist(UPSTREAM_PROJECT, "2.0"), make_wheel("remote-other", "0.5")):
        with open(os.path.join(upstream_dir, filename), "wb") as f:
            f.write(data)
    upstream = UpstreamProcess(upstream_dir)
    upstream.start()
    try:
        made = {}
        for variant in options.variants.split(","):
            made[variant] = make_variant(release, work, variant, upstream.url)
    except E2EFailure as e:
        raise SetError(str(e))
    finally:
        upstream.stop()
    os.makedirs(target, exist_ok=True)
    for variant, (folder, recording) in made.items():
        kept = os.path.join(target, variant)
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(folder, kept)
        with open(os.path.join(kept, "expected.json"), "w", encoding="utf-8") as f:
            json.dump(recording, f, indent=1, sort_keys=True)
            f.write("\n")
    with open(os.path.join(target, "set.json"), "w", encoding="utf-8") as f:
        json.dump({"version": release.version, "commit": release.commit,
                   "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "day": int(time.time() // 86400), "features": release.features()}, f, indent=1, sort_keys=True)
        f.write("\n")
    shutil.rmtree(work)
    print(f"made {target}")


if __name__ == "__main__":
    try:
        main()
    except SetError as e:
        sys.exit(f"make_set: {e}")
