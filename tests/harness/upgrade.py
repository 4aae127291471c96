"""
The upgrade data sets (issue 61, item 4): what L{tests.e2e.test_upgrade} and
the script that makes the sets (C{tests/upgrade_data/make_set.py}) share.

A set is the folder a released version left behind, kept under
C{tests/upgrade_data/<version>/} (C{local/}, and C{bucket/} for the same in
a bucket), with C{expected.json}: a list of exchanges, each a request
(method, path, whose credentials, which form) and what the release
answered, normalised by L{answer_of} so that the address of the server is
no part of it. The script asks the release; the test asks today's daemon
the same requests, in the same order, on a copy of the set.
"""

import datetime
import hashlib
import json
import os
import re
import time
import uuid
from urllib.parse import quote, urljoin, urlsplit

from tests.harness.distributions import make_wheel
from tests.harness.e2e import PASSWORD, USER, E2EFailure, basic, http, upload_form

#: Where the sets are kept.
SETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "upgrade_data")

#: The admin of every set.
ADMIN = "boss"
ADMIN_PASSWORD = "b0ss-pässword"

#: The bucket of the bucket variant; its address, as the stored
#: configuration gives it (the tests give the address of their own server).
BUCKET = "pypid-upgrade"
BUCKET_ENDPOINT = "http://127.0.0.1:9/"

#: The webhook of the sets of releases that have webhooks: its name, its
#: secret (Standard Webhooks' form: the key is bytes 0 to 31, as
#: L{tests.harness.webhooks.SECRET}), and the URL the stored configuration
#: gives, where nothing listens (port 9, discard, on loopback: the
#: release's events wait in its outbox; the tests give their receiver's
#: URL with C{--set}).
WEBHOOK = "builds"
WEBHOOK_SECRET = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
WEBHOOK_URL = "http://127.0.0.1:9/hooks/pypid"

#: The API tokens each set has: the form fields of C{POST /api/tokens}.
TOKENS = {
    "widget-upload": "actions=read+upload&projects=widget&description=CI+of+widget",
    "read-all": "actions=read&description=mirror",
    "staging-only": "actions=read+upload&indexes=staging&description=staging+CI",
    "revoked": "actions=read&description=revoked+at+once",
}

#: The server's root URL in a recorded answer.
SERVER = "{server}"
#: The folder of the set served, in a recorded answer.
FOLDER = "{folder}"

JSON_FORM = "application/vnd.pypi.simple.v1+json"
HTML_FORM = "application/vnd.pypi.simple.v1+html"


def sets():
    """C{(name, variant, folder)} of every set kept, oldest name first."""
    found = []
    if not os.path.isdir(SETS):
        return found
    for name in sorted(os.listdir(SETS)):
        for variant in ("local", "bucket"):
            folder = os.path.join(SETS, name, variant)
            if os.path.isfile(os.path.join(folder, "expected.json")):
                found.append((name, variant, folder))
    return found


# -- one exchange ---------------------------------------------------------------------------------


def request(method, path, auth=None, accept=None, upload=None):
    """
    A request of a set: C{auth} is L{None}, C{"user"}, C{"admin"},
    C{"wrong"} (the user with a wrong password), C{"token:<name>"} or
    C{"session"}; C{upload}, the wheel an upload sends: C{[name, version,
    module text]}.
    """
    made = {"method": method, "path": path}
    if auth is not None:
        made["auth"] = auth
    if accept is not None:
        made["accept"] = accept
    if upload is not None:
        made["upload"] = list(upload)
    return made


def headers_of(req, secrets):
    """The headers (and body) of a request of a set: C{(headers, body)}."""
    headers = {}
    body = None
    auth = req.get("auth")
    if auth == "user":
        headers["Authorization"] = basic(USER, PASSWORD)
    elif auth == "admin":
        headers["Authorization"] = basic(ADMIN, ADMIN_PASSWORD)
    elif auth == "wrong":
        headers["Authorization"] = basic(USER, "not-the-password")
    elif auth == "session":
        headers["Cookie"] = secrets["session"]
    elif auth is not None and auth.startswith("token:"):
        headers["Authorization"] = basic("__token__", secrets["tokens"][auth[len("token:"):]])
    if req.get("accept"):
        headers["Accept"] = req["accept"]
    if req.get("upload"):
        name, version, module = req["upload"]
        ctype, body = upload_form(*make_wheel(name, version, module_text=module),
                                  boundary=uuid.uuid4().hex)
        headers["Content-Type"] = ctype
    return headers, body


def ask(root, req, secrets, timeout, folder):
    """
    Make one request of a set to the server at C{root}, which serves the
    set's copy in C{folder}; its normalised answer.
    """
    headers, body = headers_of(req, secrets)
    response = http(req["method"], root + req["path"].lstrip("/"), headers, body,
                    timeout=timeout)
    return answer_of(root, folder, req, response)


def _places_free(text, root, folder):
    """
    C{text} with the server's root URL (and its address) written as
    L{SERVER}, the set's folder as L{FOLDER}.
    """
    text = text.replace(root, SERVER + "/").replace(root.rstrip("/"), SERVER)
    return text.replace(folder, FOLDER)


def _strip_places(value, root, folder):
    if isinstance(value, str):
        return _places_free(value, root, folder)
    if isinstance(value, list):
        return [_strip_places(v, root, folder) for v in value]
    if isinstance(value, dict):
        return {k: _strip_places(v, root, folder) for k, v in value.items()}
    return value


def answer_of(root, folder, req, response):
    """
    What a set keeps of an answer: the status, the content type, the
    redirect's target, and the body: parsed JSON, text (HTML, plain), or
    the sha256 and size of anything else (a file). The server's root URL
    is written L{SERVER}, the folder it serves L{FOLDER}; C{/health}'s
    body, which says how long the server ran, is not kept.
    """
    ctype = (response.header("Content-Type") or "").split(";")[0].strip()
    answer = {"status": response.status, "type": ctype}
    location = response.header("Location")
    if location:
        answer["location"] = _places_free(location, root, folder)
    path = req["path"]
    if path.startswith("/health"):
        return answer
    if ctype.endswith("json") and response.body:
        answer["json"] = _strip_places(json.loads(response.body), root, folder)
    elif ctype.startswith("text/") and not path.startswith(("/files/", "/staging/files/")):
        answer["text"] = _places_free(response.body.decode("utf-8", "replace"), root, folder)
    else:
        answer["sha256"] = hashlib.sha256(response.body).hexdigest()
        answer["size"] = len(response.body)
    return answer


def wait_until_ready(root, timeout, request_timeout):
    """
    Wait until the server at C{root} read the security advisories: until
    then it answers C{503} for what they might cover (today's code reads
    them after it listens; 0.1.0 read them before).
    """
    deadline = time.monotonic() + timeout
    while True:
        response = http("GET", root + "api/advisories", auth=(ADMIN, ADMIN_PASSWORD),
                        timeout=request_timeout)
        if response.status != 503:
            return
        if time.monotonic() > deadline:
            raise E2EFailure(f"the advisories were not read within {timeout} s")
        time.sleep(0.1)


# -- what a set records -----------------------------------------------------------------------------------


def record(root, folder, secrets, features, timeout):
    """
    Ask every request of a set, finding the pages and files from the
    answers: the admin's API first (before anything below is counted or
    audited), then every index's pages, legacy JSON and pages for people,
    then every file, then what each token and credential may do.

    @param features: what the release has: C{{"sessions": bool,
        "api_waivers": bool, "namespaces": bool}}.
    @return: the exchanges, C{[{"request": ..., "answer": ...}]}.
    """
    exchanges = []

    def do(req):
        answer = ask(root, req, secrets, timeout, folder)
        exchanges.append({"request": req, "answer": answer})
        return answer

    for index in ("default", "staging"):
        query = f"index={index}"
        do(request("GET", f"/api/recycle-bin?{query}", "admin"))
        do(request("GET", f"/api/usage?{query}&days=30&limit=1000", "admin"))
        do(request("GET", f"/api/usage?{query}&order=least&days=90&limit=1000", "admin"))
        do(request("GET", f"/api/retention?{query}", "admin"))
    do(request("GET", "/api/audit?limit=1000", "admin"))
    do(request("GET", "/api/tokens", "admin"))
    do(request("GET", "/api/advisories", "admin"))
    if features.get("api_waivers"):
        do(request("GET", "/api/advisories/waivers", "admin"))
    if features.get("namespaces"):
        do(request("GET", "/simple/namespaces", None, JSON_FORM))
        do(request("GET", "/simple/namespace/acme", None, JSON_FORM))

    files = []
    for prefix in ("", "/staging"):
        listing = do(request("GET", f"{prefix}/simple/", None, JSON_FORM))
        do(request("GET", f"{prefix}/simple/", None, HTML_FORM))
        do(request("GET", f"{prefix}/simple/"))
        projects = [p["name"] for p in listing.get("json", {}).get("projects", [])]
        for project in ("remote-lib", "remote-other"):
            if project not in projects:
                projects.append(project)
        for project in projects:
            page_path = f"{prefix}/simple/{project}/"
            page = do(request("GET", page_path, None, JSON_FORM))
            do(request("GET", page_path, None, HTML_FORM))
            for entry in page.get("json", {}).get("files", []):
                url = urlsplit(urljoin("http://server.example" + page_path,
                                       entry["url"].replace(SERVER, "http://server.example"))).path
                files.append((url, entry))
            versions = page.get("json", {}).get("versions", [])
            do(request("GET", f"{prefix}/pypi/{project}/json"))
            for version in versions:
                do(request("GET", f"{prefix}/pypi/{project}/{version}/json"))
            if not prefix:
                do(request("GET", f"/project/{project}/"))
                for version in versions:
                    do(request("GET", f"/project/{project}/{version}/"))
    for url, entry in files:
        do(request("GET", url))
        if entry.get("core-metadata") or entry.get("data-dist-info-metadata"):
            do(request("GET", url + ".metadata"))
    # A file in the recycle bin, and one never uploaded.
    do(request("GET", "/files/gadget/gadget-0.2-py3-none-any.whl"))
    do(request("GET", "/files/gadget/gadget-0.3-py3-none-any.whl"))

    # What each credential may do. An upload that is let through is
    # refused for its name (the bytes differ from the file's), so that
    # nothing changes.
    conflict = ("widget", "1.0", "CONFLICTING = True\n")
    outside = ("gadget", "0.1", "CONFLICTING = True\n")
    for auth in ["user", "admin", "wrong", *(f"token:{name}" for name in TOKENS)]:
        do(request("GET", "/simple/widget/", auth, JSON_FORM))
        do(request("GET", "/simple/gadget/", auth, JSON_FORM))
        do(request("GET", "/staging/simple/widget/", auth, JSON_FORM))
        do(request("POST", "/", auth, upload=conflict))
        do(request("POST", "/", auth, upload=outside))
        do(request("POST", "/staging/", auth, upload=("widget", "2.1.dev1", "CONFLICTING = 1\n")))
        do(request("GET", "/api/tokens", auth))
    if features.get("sessions"):
        do(request("GET", "/", "session"))
        do(request("GET", "/api/tokens", "session"))
    do(request("GET", "/"))
    do(request("GET", "/search?q=widget"))
    do(request("GET", "/api/search?q=widget"))
    do(request("GET", "/health"))
    return exchanges


# -- moving a set ---------------------------------------------------------------------------------------


def relocate(folder, made_in):
    """
    Make the snapshots of a set's copy in C{folder} describe it there
    rather than in C{made_in}, where the release wrote them: a snapshot
    names the storage it describes by its absolute path, and one that
    names another is not used (the index is read again from the storage,
    and the upstream's cached pages, kept only in the snapshot, are lost).
    An upgrade in place never moves the folder; the copy a test makes does.
    """
    var = os.path.join(folder, "var")
    for root, _dirs, files in os.walk(var):
        for name in files:
            if not name.endswith(".json"):
                continue
            path = os.path.join(root, name)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            if made_in in text:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text.replace(made_in, folder))


# -- the bucket -------------------------------------------------------------------------------------------


def empty_bucket(client, bucket):
    """Create C{bucket}, or empty it if it exists."""
    try:
        client.create_bucket(Bucket=bucket)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])


def bucket_manifest(folder):
    """The objects a set's bucket C{folder} holds: C{[{key, sha256, content_type, metadata}]}."""
    with open(os.path.join(folder, "manifest.json"), encoding="utf-8") as f:
        return json.load(f)["objects"]


def load_bucket(client, folder, bucket, days=0):
    """
    Put the objects a set's C{folder} dumped (its C{manifest.json}) into
    C{bucket}, emptied; the download counts moved C{days} days later (see
    L{shift_usage}).
    """
    empty_bucket(client, bucket)
    for item in bucket_manifest(folder):
        with open(os.path.join(folder, "objects", item["sha256"]), "rb") as f:
            data = f.read()
        key = item["key"]
        head, _, name = key.rpartition("/")
        if days and head.endswith("/.pypid/usage") and _USAGE_NAME.match(name):
            key = f"{head}/{_shifted_name(name, days)}"
            data = _shifted_record(data, days)
        extra = {"Metadata": item["metadata"]}
        if item.get("content_type"):
            extra["ContentType"] = item["content_type"]
        client.put_object(Bucket=bucket, Key=key, Body=data, **extra)


# -- time ---------------------------------------------------------------------------------------------------

#: One day, in seconds.
DAY = 86400

_USAGE_NAME = re.compile(r"^(\d{1,6})-(.*)$")
_PEP700 = "%Y-%m-%dT%H:%M:%S.%fZ"


def shift_usage(folder, days):
    """
    Move the download counts of a set's folder C{days} days later (file
    names, days and last times), as if the set had been made C{days} days
    later: the counts are kept by day for 90 days and reported for the last
    30, so a set made long ago would otherwise have none left.
    """
    if days <= 0:
        return
    for usage in _usage_folders(folder):
        for name in sorted(os.listdir(usage)):
            found = _USAGE_NAME.match(name)
            if not found:
                continue
            path = os.path.join(usage, name)
            with open(path, "rb") as f:
                data = f.read()
            os.remove(path)
            with open(os.path.join(usage, _shifted_name(name, days)), "wb") as f:
                f.write(_shifted_record(data, days))


def shift_sessions(folder, seconds):
    """
    Move the browser sessions of a set's folder (C{var/sessions.json}, the
    release's C{[auth] sessions}) C{seconds} later, their login and last
    use, as if the set had been made C{seconds} later: a session lasts 30
    minutes unused (C{[auth] session_idle}) and 12 hours at most, so the
    session a set keeps would otherwise be over by the time a test runs,
    and its pages would answer as to anyone.
    """
    if seconds <= 0:
        return
    path = os.path.join(folder, "var", "sessions.json")
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except FileNotFoundError:
        return
    for session in document.get("sessions", []):
        for name in ("created", "seen", "checked"):
            if isinstance(session.get(name), (int, float)):
                session[name] += seconds
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1)
        f.write("\n")


def _shifted_record(data, days):
    """A usage record's bytes, C{days} days later."""
    record = json.loads(data)
    record["day"] += days
    record["files"] = {file: [count, last + days * DAY]
                       for file, (count, last) in record["files"].items()}
    record["replaces"] = [_shifted_name(n, days) for n in record.get("replaces", [])]
    if not record["replaces"]:
        del record["replaces"]
    return json.dumps(record, separators=(",", ":")).encode()


def _shifted_name(name, days):
    found = _USAGE_NAME.match(name)
    return f"{int(found.group(1)) + days}-{found.group(2)}"


def _usage_folders(folder):
    for root, _dirs, _files in os.walk(folder):
        if os.path.basename(root) == "usage" and os.path.basename(os.path.dirname(root)) == ".pypid":
            yield root


def shift_time(text, days):
    """A PEP 700 time C{days} days later."""
    moment = datetime.datetime.strptime(text, _PEP700) + datetime.timedelta(days=days)
    return moment.strftime(_PEP700)


def quoted(name):
    """A path segment."""
    return quote(name, safe="")
