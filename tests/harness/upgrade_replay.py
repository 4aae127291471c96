"""
Replaying a release's recorded answers on today's daemon: copying a set
of L{tests.harness.upgrade} to a test's folder, starting today's daemon on
it, and comparing every answer with the release's (L{todays} says which
differences are on purpose, and why). The upgrade tests
(L{tests.e2e.test_upgrade}, L{tests.e2e.test_upgrade_journal}) share it.
"""

import copy
import datetime
import difflib
import json
import os
import re
import shutil
import time

from packaging.version import Version

from tests.harness import upgrade as sets
from tests.harness.e2e import (
    Daemon,
    E2EFailure,
    watch,
)

#: Seconds one request may take: generous, for a loaded machine.
TIMEOUT = 120.0
#: Seconds the daemon gets to start on a set (it may read every record).
STARTUP_TIMEOUT = 180.0

#: What a set holds that is not the folder the release left.
NOT_STATE = ("expected.json", "bucket")

#: The webhooks' outbox of a release before the journal (under the
#: storage's root, or the bucket's prefix): carried over at the first start
#: and removed (7dd6383; tests/e2e/test_upgrade_journal.py checks that its
#: events are delivered).
CARRIED = ".pypid/webhooks/outbox/"


def load(folder):
    """The recording of a set's variant (C{expected.json}) and its C{set.json}."""
    with open(os.path.join(folder, "expected.json"), encoding="utf-8") as f:
        recording = json.load(f)
    with open(os.path.join(os.path.dirname(folder), "set.json"), encoding="utf-8") as f:
        about = json.load(f)
    return recording, about


def age_in_days(about):
    """Whole days since the set was made."""
    return max(0, int(time.time() // sets.DAY) - about["day"])


def age_in_seconds(about):
    """Seconds since the set was made (its C{set.json}'s C{made})."""
    made = datetime.datetime.strptime(about["made"], "%Y-%m-%dT%H:%M:%SZ")
    return max(0.0, time.time() - made.replace(tzinfo=datetime.UTC).timestamp())


def copy_set(folder, target, variant, recording, about):
    """
    Copy a set's folder to C{target} as the release left it, in place
    there (its snapshots relocated, its download counts moved by the set's
    age in days, its browser sessions by its age in seconds); for the
    bucket variant, load the bucket.

    @return: the C{--set} overrides the daemon needs.
    """
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(folder, target, ignore=lambda where, names: [
        n for n in names if where == folder and n in NOT_STATE])
    sets.relocate(target, recording["made_in"])
    days = age_in_days(about)
    sets.shift_usage(target, days)
    sets.shift_sessions(target, age_in_seconds(about))
    settings = {}
    with open(os.path.join(target, "pypid.ini"), encoding="utf-8") as f:
        if f"[webhook:{sets.WEBHOOK}]" in f.read():
            # (what the changelog says to do before the upgrade: its
            # receiver is on loopback, which a webhook now reaches only
            # when allowed)
            settings[f"webhook:{sets.WEBHOOK}.allow_private"] = "yes"
    if variant == "bucket":
        from tests.harness import s3server
        sets.load_bucket(s3server.client(), os.path.join(folder, "bucket"), sets.BUCKET,
                         days=days)
        settings["s3.endpoint_url"] = s3server.endpoint()
    return settings


def start_on(target, settings):
    """Today's daemon (this checkout's code) on a set's copy in C{target}, not started."""
    with open(os.path.join(target, "pypid.ini"), encoding="utf-8") as f:
        config = f.read()
    return Daemon(target, settings=settings, config_text=config)


def expected_now(recording, about):
    """The exchanges recorded, their download times moved by the set's age as the counts are."""
    exchanges = copy.deepcopy(recording["exchanges"])
    days = age_in_days(about)
    if days:
        for exchange in exchanges:
            body = exchange["answer"].get("json")
            if exchange["request"]["path"].startswith("/api/usage") and body:
                for row in body.get("files", []):
                    if row.get("last_downloaded"):
                        row["last_downloaded"] = sets.shift_time(row["last_downloaded"], days)
    return exchanges


# -- what today's code answers differently, on purpose ---------------------------------------


#: The stylesheet, script and icon are named by their hash: a new
#: stylesheet is a new name (the pages for people were restyled after
#: 0.1.0), not a page lost.
_ASSET = re.compile(r"pypid\.[0-9a-f]{12}\.(css|js|svg)")

#: 0.1.0 filled the install snippets of the pages for people in the
#: browser; today's code names the origin the request reached the server by
#: (3dbfd25, issue 60, interop).
_SNIPPET_PLACEHOLDER = '<span data-base="">http://&lt;this server&gt;/</span>'

#: The keys of the legacy JSON that hold URLs.
_LEGACY_URLS = ("url", "package_url", "project_url", "release_url")


def _legacy_relative(value):
    """
    The legacy JSON's URLs as 0.1.0 wrote them, relative to the server's
    root: today's are absolute under the request's origin without
    C{base_url}, as the public index's are (3dbfd25, issue 60, interop).
    """
    if isinstance(value, dict):
        return {k: (v.removeprefix(sets.SERVER) if k in _LEGACY_URLS and isinstance(v, str)
                    else _legacy_relative(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_legacy_relative(v) for v in value]
    return value


def _by_files(value, index):
    """
    The legacy JSON's file URLs as 0.1.0 wrote them, under C{index} (its
    path: C{""}, C{/staging}), by project and filename: today's name a
    hosted file by its digest, as the public index's file host names
    files (C{/packages/...}, one path for every index).
    """
    if isinstance(value, dict):
        return {k: (_files_url(v, index) if k in _LEGACY_URLS and isinstance(v, str)
                    else _by_files(v, index)) for k, v in value.items()}
    if isinstance(value, list):
        return [_by_files(v, index) for v in value]
    return value


def _files_url(url, index):
    match = re.match(r"\A(.*)/packages/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{60}/([^/]+)\Z", url)
    if match is None:
        return url
    filename = match.group(2)
    project = re.sub(r"[-_.]+", "-", filename.split("-", 1)[0]).lower()
    return f"{match.group(1)}{index}/files/{project}/{filename}"


def _no_serials(value):
    """Take the serials a JSON simple page carries out of C{value} (in place)."""
    if not isinstance(value, dict):
        return
    value.get("meta", {}).pop("_last-serial", None)
    for project in value.get("projects", []):
        if isinstance(project, dict):
            project.pop("_last-serial", None)


#: The last release: the changes listed under "Unreleased" in
#: docs/changelog.rst came after it, so the rules below for them apply to
#: the sets of this release and older ones only. Move it at each release.
LAST_RELEASE = Version("0.1.0")

#: The set of the last commit before the journal (55e9b76, issue 79), made
#: between releases: named as setuptools_scm versions a commit, the next
#: version's C{.dev<commits since the last release>+g<commit>}, so that it
#: sorts after 0.1.0 and before whatever release comes next
#: (tests/harness/upgrade_data/README.rst). The journal and its serials
#: (7dd6383, 5852b4f) came after it: their rules apply to it and older sets.
BEFORE_JOURNAL = Version("0.1.1.dev607+g55e9b76")


def set_version(name):
    """The place of the set C{name} among releases (its name: a version, L{Version})."""
    return Version(name)


def todays(request, old, new, version, restarted=False):
    """
    The release's answer and today's, with what changed on purpose since
    the set was made taken out of both, so that they compare equal where
    nothing was lost or changed. Each rule names the change.

    @param version: the set's place among releases (L{set_version}).
    @param restarted: today's daemon was stopped and started again since
        it was first started on the set.
    """
    old, new = copy.deepcopy(old), copy.deepcopy(new)
    path = request["path"]
    legacy = path.startswith(("/pypi/", "/staging/pypi/"))
    for answer in (old, new):
        if "text" in answer:
            answer["text"] = _ASSET.sub(r"pypid.*.\1", answer["text"])
    if restarted and legacy and "json" in new and "json" in old \
            and new["json"].get("last_serial", 0) >= old["json"].get("last_serial", 0):
        # The serial rises at each start where the advisories cover a
        # project (their pages are drawn again), in 0.1.0 as today: 14, 16,
        # 18 ... for the same data. Not an upgrade's doing.
        new["json"]["last_serial"] = old["json"]["last_serial"]
    if version > BEFORE_JOURNAL:
        return old, new

    # The journal and its serials (7dd6383, 5852b4f; docs/changelog.rst,
    # "Unreleased").
    if legacy and "json" in new:
        index = path[:path.index("/pypi/")]
        new["json"] = _by_files(new["json"], index)
        if "last_serial" in new["json"] and "last_serial" in old.get("json", {}) \
                and new["json"]["last_serial"] != old["json"]["last_serial"]:
            # The project's serial in the journal, as the public index's
            # (the journal began at the upgrade: 1 for what came before),
            # where the release counted the index's changes since its
            # start. (A project of the upstream's keeps the upstream's, 0
            # from the tests' upstream, as before.)
            assert new["json"]["last_serial"] >= 1, new["json"]["last_serial"]
            new["json"]["last_serial"] = old["json"]["last_serial"]
    if "/simple/" in path:
        # The serials as the public index lists them (a JSON page's meta,
        # each project of the list): keys added.
        _no_serials(new.get("json"))
    if version > LAST_RELEASE:
        return old, new

    # The changes since 0.1.0 (docs/changelog.rst, "Unreleased").
    if legacy and "json" in new:
        new["json"] = _legacy_relative(new["json"])
    if legacy and old["status"] == 404 and new["status"] == 200 and "/remote-" in path:
        # The legacy JSON of a project served from the upstream cache
        # answers (it was 404 in 0.1.0): 390c163, issue 46, part 4.
        new = old
    if "text" in old:
        old["text"] = old["text"].replace(_SNIPPET_PLACEHOLDER, sets.SERVER + "/")
    if old["status"] >= 400 and new["status"] == old["status"] \
            and old["type"] == new["type"] == "text/plain" \
            and request.get("auth", "").startswith("token:"):
        # A refusal of a token names the token and its scope, not its
        # admin (57d1f4b, issue 60, item 8), and a token asking for the
        # token API is told that a token never manages tokens (6bc15fb):
        # the status, which clients act on, is the same.
        new["text"] = old["text"]
    remedied = old.get("text", "").rstrip("\n").rstrip(".") \
        + "; upload changed files under a new version"
    if request.get("upload") and old["status"] == new["status"] == 400 \
            and old.get("text", "").startswith("File already exists (") \
            and new.get("text", "").rstrip("\n") == remedied:
        # A refusal says what is wrong, then what to do (issue 69, item 15).
        new["text"] = old["text"]
    if request.get("auth") in ("wrong", "token:revoked") and new["status"] == 401 \
            and old["status"] != 401 and request["method"] in ("GET", "HEAD"):
        # Credentials that are sent are checked where anyone may read, so
        # wrong ones (a wrong password, a revoked token) get 401 rather
        # than the anonymous answer (issue 69, item 5).
        new = old
    if path == "/api/advisories" and "json" in new:
        # Each index says which of its bases is in a stricter mode
        # (ac9774f, issue 45, items 7 and 9): a key added.
        for index in new["json"].get("indexes", []):
            if index.get("stricter_bases") == []:
                del index["stricter_bases"]
    if path == "/api/tokens" and "json" in new:
        # A token records its person (the account of its user, given at the
        # first start) and whether it ended (a token belongs to a person,
        # not to a name: issue 68, item 1): two keys added to each record.
        for token in new["json"].get("tokens", []):
            if token.get("ended", ...) is None:
                del token["ended"]
            token.pop("person", None)
    if path == "/api/tokens" and request.get("auth") == "user" \
            and old["status"] == 403 and new["status"] == 200 and new["json"] == {"tokens": []}:
        # Any user lists (and issues) their own tokens, and has none here
        # (people's tokens, 6bc15fb, issue 59): 0.1.0 kept the API to admins.
        new = old
    return old, new


# -- comparing ----------------------------------------------------------------------------------


def differences(old, new, where="", limit=12):
    """Where two JSON values differ: C{["path: old != new"]}, at most C{limit}."""
    found = []

    def walk(a, b, path):
        if len(found) >= limit:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if key not in a:
                    found.append(f"{path}.{key}: added {json.dumps(b[key])[:200]}")
                elif key not in b:
                    found.append(f"{path}.{key}: lost {json.dumps(a[key])[:200]}")
                else:
                    walk(a[key], b[key], f"{path}.{key}")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{path}[{i}]")
        elif a != b:
            if isinstance(a, str) and isinstance(b, str) and "\n" in a + b:
                lines = difflib.unified_diff(a.splitlines(), b.splitlines(), "release", "today",
                                             lineterm="", n=1)
                found.append(f"{path}:\n    " + "\n    ".join(list(lines)[2:30]))
            else:
                found.append(f"{path}: {json.dumps(a)[:300]} != {json.dumps(b)[:300]}")

    walk(old, new, where)
    return found


def describe(request):
    """One line naming a request of a set."""
    words = [request["method"], request["path"]]
    if request.get("accept"):
        words.append(f"[{request['accept'].rsplit('+', 1)[-1]}]")
    if request.get("auth"):
        words.append(f"as {request['auth']}")
    if request.get("upload"):
        words.append(f"uploading {'-'.join(request['upload'][:2])}")
    return " ".join(words)


def replay(daemon, recording, about, version, restarted=False):
    """
    Ask today's daemon every recorded request; the differences, one block
    per request.

    @param version: the set's place among releases (L{set_version}).
    """
    secrets = {"tokens": recording["tokens"], "session": recording.get("session")}
    report = []
    for exchange in expected_now(recording, about):
        request = exchange["request"]
        new = sets.ask(daemon.url, request, secrets, TIMEOUT, daemon.directory)
        found = differences(*todays(request, exchange["answer"], new, version, restarted))
        if found:
            report.append(describe(request) + "\n  " + "\n  ".join(found))
    return report


# -- the tests --------------------------------------------------------------------------------------


class UpgradeMixin:
    """The tests of one set's variant: C{set_name}, C{variant}, C{folder}."""

    set_name = variant = folder = None

    def setUp(self):
        super().setUp()
        self.recording, self.about = load(self.folder)

    def copy_and_start(self, target, start=True):
        """Today's daemon on a new copy of the set in C{target}."""
        settings = copy_set(self.folder, target, self.variant, self.recording, self.about)
        daemon = start_on(target, settings)
        watch(daemon)
        if start:
            daemon.start(timeout=STARTUP_TIMEOUT)
            sets.wait_until_ready(daemon.url, STARTUP_TIMEOUT, TIMEOUT)
        return daemon

    def assert_as_before(self, daemon, when, restarted=False):
        """Every recorded request answers as the release did."""
        report = replay(daemon, self.recording, self.about, set_version(self.set_name),
                        restarted)
        if report:
            raise E2EFailure(
                f"{len(report)} answers of today's daemon {when} differ from those of "
                f"{self.set_name} ({self.about['commit'][:7]}, {self.variant}):\n\n"
                + "\n\n".join(report))
