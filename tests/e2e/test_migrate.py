"""
End-to-end tests of moving packages in and out: the real C{pypid-admin
export} and C{import} commands on the storages of real daemons (local
folders and moto's S3), checked through the simple API and a real install,
and imports of data made by the real devpi-server and pypiserver.

The other servers are installed from the package registry into virtual
environments of their own (never the test one: their dependencies would
mix with pypid's), made once with uv and kept under
C{~/.cache/pypid-tests/}, named by the pinned version. A machine that cannot
install them skips those tests, saying why.
"""

import json
import os
import shutil
import subprocess
import sys
import time

from twisted.trial.unittest import SkipTest

from tests.harness import e2e, s3server
from tests.harness.distributions import make_sdist, make_wheel

ADMIN = os.path.join(e2e.VENV_BIN, "pypid-admin")

#: The servers people leave, as the tests install them.
DEVPI = "devpi-server==6.20.3"
PYPISERVER = "pypiserver==2.4.2"
TOOLS = os.path.join(os.path.expanduser("~"), ".cache", "pypid-tests")

YANKED = make_wheel("moved", "1.0")
PLAIN = make_wheel("moved", "2.0")
SDIST = make_sdist("moved", "2.0")
DELETED = make_wheel("moved", "0.9")

#: Seconds between two looks of a daemon on a bucket for others' changes.
SYNC = 0.5

#: Where the machine's network settings are, passed on to uv alone.
_NETWORK_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "HTTP_PROXY", "HTTPS_PROXY",
                      "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


def admin(daemon, *args, check=True):
    """Run C{pypid-admin} on C{daemon}'s configuration (its C{--set}s too)."""
    argv = [ADMIN, "--config", daemon.config_path]
    for key, value in daemon.settings.items():
        argv += ["--set", f"{key}={value}"]
    return e2e.run(argv + list(args), cwd=daemon.directory, env=e2e.clean_env(daemon.home),
                   check=check, what="pypid-admin")


def counts(output):
    """The numbers of an import's report: C{{"imported": 3, ..., "tombstones": (1, 0)}}."""
    found = {}
    for line in output.splitlines():
        name, _, rest = line.partition(": ")
        if name == "tombstones":
            added, _, present = rest.partition(" added, ")
            found[name] = (int(added), int(present.split()[0]))
        elif name in ("imported", "already there", "conflicts", "refused", "ignored"):
            found[name] = int(rest)
    return found


def folder_state(root):
    """Every file under C{root} but the lock and the spool: size, inode and mtime."""
    state = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(folder, d) != os.path.join(root, ".pypid",
                                                                                "tmp")]
        for name in files:
            path = os.path.join(folder, name)
            if path == os.path.join(root, ".pypid", "lock"):
                continue
            info = os.stat(path)
            state[os.path.relpath(path, root)] = (info.st_size, info.st_ino, info.st_mtime_ns)
    return state


def s3_settings(bucket):
    """The C{--set} overrides that put a daemon on C{bucket} of the test S3 server."""
    return {
        "storage.backend": "s3",
        "s3.bucket": bucket,
        "s3.prefix": "packages/",
        "s3.endpoint_url": s3server.endpoint(),
        "s3.access_key": s3server.ACCESS_KEY,
        "s3.secret_key": s3server.SECRET_KEY,
        "s3.sync_interval": str(SYNC),
    }


def wait_until(check, timeout=15.0):
    """Call C{check} until it is true; fail after C{timeout} s."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise e2e.E2EFailure(f"not true within {timeout} s: {check.__doc__}")
        time.sleep(0.05)


def tool_venv(requirement):
    """
    The C{bin} folder of a virtual environment holding C{requirement}
    (pinned), made once with the test venv's uv and cached; a folder left
    half-made (no C{.complete} in it) is made again.

    @raise SkipTest: when it cannot be installed here (no registry).
    """
    venv = os.path.join(TOOLS, requirement.replace("==", "-"))
    bin_dir = os.path.join(venv, "bin")
    if os.path.exists(os.path.join(venv, ".complete")):
        return bin_dir
    shutil.rmtree(venv, ignore_errors=True)
    os.makedirs(TOOLS, exist_ok=True)
    env = e2e.clean_env(TOOLS, UV_CACHE_DIR=os.path.join(TOOLS, "uv-cache"),
                        UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never",
                        **{k: os.environ[k] for k in _NETWORK_VARIABLES if k in os.environ})
    for argv in ([e2e.UV, "venv", "--no-config", "-q", "--python", sys.executable, venv],
                 [e2e.UV, "pip", "install", "--no-config", "-q", "--python",
                  os.path.join(bin_dir, "python"), requirement]):
        done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=300)
        if done.returncode != 0:
            raise SkipTest(f"cannot install {requirement} from the package registry: "
                           + done.stdout.decode("utf-8", "replace")[-300:])
    with open(os.path.join(venv, ".complete"), "w") as f:
        f.write(requirement + "\n")
    return bin_dir


def twine_upload(clients, url, paths, user, password):
    """Upload with the test venv's twine to another index server."""
    return e2e.run([e2e.TWINE, "upload", "--repository-url", url, "-u", user, "-p", password,
                    "--non-interactive", "--disable-progress-bar", *paths],
                   cwd=clients.directory, env=clients.env(), what="twine")


class Peer(e2e.ChildProcess):
    """Another index server (devpi, pypiserver) run for a test, on a loopback port."""

    what = "peer server"

    def __init__(self, argv, directory, ready_url):
        self.argv = argv
        self.directory = directory
        self.ready_url = ready_url
        self.log_path = os.path.join(directory, "peer.log")

    def start(self, timeout=180.0):
        """
        Start it and wait until C{ready_url} answers. The limit only catches
        a peer that never answers: devpi-server took over 30 s to start on
        a machine with both cores busy (issue 61), so it is far above that.
        """
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv, cwd=self.directory, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=e2e.clean_env(self.directory),
                start_new_session=True, preexec_fn=e2e._die_with_parent)
        e2e._live.add(self)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise e2e.E2EFailure(f"{self.argv[0]} exited: {self.log()}")
            try:
                if e2e.http("GET", self.ready_url, timeout=2).status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise e2e.E2EFailure(f"{self.argv[0]} did not answer within {timeout} s: "
                                     f"{self.log()}")
            time.sleep(0.1)

    def log(self):
        """The tail of its log."""
        with open(self.log_path, "rb") as f:
            return f.read()[-2000:].decode("utf-8", "replace")


class BundleTests(e2e.DaemonTestCase):
    """
    A bundle of a running daemon's storage (a yanked file, a deleted one),
    imported into other storages.
    """

    def prepare(self, daemon):
        for filename, data in (YANKED, PLAIN, SDIST, DELETED):
            response = e2e.upload(daemon, filename, data)
            self.assertEqual(response.status, 200, response.body)
        headers, body = e2e.form(reason="bad build")
        answer = e2e.http("POST", f"{daemon.url}api/files/{YANKED[0]}/yank", headers, body,
                          auth=(e2e.USER, e2e.PASSWORD))
        self.assertEqual(answer.status, 200, answer.body)
        answer = e2e.http("DELETE", f"{daemon.url}api/files/{DELETED[0]}",
                          auth=(e2e.USER, e2e.PASSWORD))
        self.assertEqual(answer.status, 200, answer.body)

    def exported(self, name="bundle.tar.gz"):
        """Export the shared daemon's storage while it runs; return the bundle's path."""
        path = os.path.join(os.path.abspath(self.mktemp()), name)
        os.makedirs(os.path.dirname(path))
        done = admin(self.daemon, "export", "--to", path)
        self.assertIn("Exported 3 files", done.output)
        self.assertIn("1 tombstone ", done.output)
        self.assertTrue(self.daemon.running())
        return path

    def check_served(self, daemon):
        """The daemon serves the three files with their yank state, and not the deleted one."""
        files = e2e.files_by_name(daemon, "moved")
        self.assertEqual(sorted(files), sorted([YANKED[0], PLAIN[0], SDIST[0]]))
        self.assertEqual(files[YANKED[0]]["yanked"], "bad build")
        self.assertFalse(files[PLAIN[0]].get("yanked", False))
        for filename, data in (YANKED, PLAIN, SDIST):
            self.assertEqual(files[filename]["hashes"]["sha256"], e2e.sha256(data))
        again = e2e.upload(daemon, *DELETED)
        self.assertEqual(again.status, 400, "the deleted name stays deleted")
        self.assertIn(b"deleted", again.body)

    def test_into_local_folder(self):
        """
        An export of a running daemon, imported into a new folder, is served
        whole (yank state and tombstone included) and installs with uv; the
        second import changes nothing.
        """
        bundle = self.exported()
        target = self.new_daemon(start=False)
        first = admin(target, "import", bundle)
        self.assertIn("as a pypid bundle (detected", first.output)
        self.assertEqual(counts(first.output), {"imported": 3, "already there": 0,
                                                "conflicts": 0, "refused": 0,
                                                "tombstones": (1, 0)})
        # The source's audit log came too, kept apart and checked; the
        # import is in the destination's own log, whose chain holds.
        self.assertRegex(first.output, r"audit log of the source: 1 file, [0-9]+ entries, "
                                       r"kept under imported/[0-9a-f]{16}/; its chain is intact")
        own = os.path.join(target.storage, ".pypid", "audit")
        days = [name for name in os.listdir(own) if name.endswith(".jsonl")]
        with open(os.path.join(own, days[0]), encoding="ascii") as f:
            imports = [json.loads(line) for line in f]
        self.assertEqual([e["event"] for e in imports], ["import"] * 5)
        self.assertEqual(sorted(e.get("filename", "") for e in imports),
                         sorted(["", YANKED[0], PLAIN[0], SDIST[0], DELETED[0]]))
        self.assertIn("(pypid-admin)", imports[0]["detail"])
        self.assertIn("0 broken", imports[-1]["detail"])
        before = folder_state(target.storage)
        second = admin(target, "import", bundle)
        self.assertEqual(counts(second.output), {"imported": 0, "already there": 3,
                                                 "conflicts": 0, "refused": 0,
                                                 "tombstones": (0, 1)})
        self.assertIn("already kept under imported/", second.output)
        self.assertEqual(folder_state(target.storage), before)
        self.assertIn("every chain is intact", admin(target, "audit", "verify").output)
        target.start()
        self.check_served(target)
        installed = os.path.abspath(self.mktemp())
        self.clients.uv_install(installed, target.index_url, "moved")
        self.assertEqual(e2e.installed(installed), {"moved": "2.0"})

    def test_into_bucket_beside_its_daemon(self):
        """
        A bundle imported into a bucket while a daemon serves it: the daemon
        serves the files, their yank state and the tombstone from its next
        look at the bucket, without a restart; and that bucket, exported
        beside its daemon, gives the same bundle again.
        """
        bundle = self.exported("bundle.tar")
        target = self.new_daemon(settings=s3_settings(s3server.new_bucket()))
        self.assertEqual(e2e.http("GET", f"{target.index_url}moved/").status, 404)
        done = admin(target, "import", "--from", "bundle", bundle)
        self.assertEqual(counts(done.output)["imported"], 3)

        def served():
            """the daemon on the bucket serves the imported files, the yank too"""
            answer = e2e.http("GET", f"{target.index_url}moved/",
                              {"Accept": "application/vnd.pypi.simple.v1+json"})
            # (an import keeps a file, then its yank: a look between the two
            # sees the file unyanked, and the next one the yank)
            return answer.status == 200 and len(answer.json()["files"]) == 3 and any(
                f.get("yanked") for f in answer.json()["files"])
        wait_until(served, 120)
        self.check_served(target)
        again = admin(target, "import", bundle)
        self.assertEqual(counts(again.output)["already there"], 3)
        # and out of the bucket again, beside its daemon
        path = os.path.join(os.path.abspath(self.mktemp()), "from-bucket.tgz")
        os.makedirs(os.path.dirname(path))
        exported = admin(target, "export", "--to", path)
        self.assertIn("Exported 3 files", exported.output)
        self.assertIn("1 tombstone ", exported.output)
        local = self.new_daemon(start=False)
        self.assertEqual(counts(admin(local, "import", path).output)["imported"], 3)
        local.start()
        self.check_served(local)

    def test_tampered_bundle(self):
        """A file of the bundle with one byte flipped is refused (exit status 1); the rest comes."""
        bundle = self.exported("folder")
        victim = os.path.join(bundle, "files", PLAIN[0])
        with open(victim, "r+b") as f:
            f.seek(100)
            byte = f.read(1)
            f.seek(100)
            f.write(bytes([byte[0] ^ 0x01]))
        target = self.new_daemon(start=False)
        done = admin(target, "import", bundle, check=False)
        self.assertEqual(done.returncode, 1, done.output)
        self.assertEqual(counts(done.output)["refused"], 1)
        self.assertIn(f"files/{PLAIN[0]}: its bytes have sha256", done.output)
        target.start()
        self.assertEqual(sorted(e2e.files_by_name(target, "moved")),
                         sorted([YANKED[0], SDIST[0]]))

    def test_refused_beside_a_running_daemon(self):
        """
        An import into the folder of a running daemon is refused (its index
        would miss the files) and changes nothing; once the daemon is
        stopped, it is taken, and served from the next start.
        """
        bundle = self.exported()
        target = self.new_daemon()
        before = folder_state(target.storage)
        done = admin(target, "import", bundle, check=False)
        self.assertEqual(done.returncode, 1)
        self.assertIn("in use by another pypid process: stop the server", done.output)
        self.assertEqual(folder_state(target.storage), before)
        target.stop()
        self.assertEqual(counts(admin(target, "import", bundle).output)["imported"], 3)
        target.start()
        self.check_served(target)


def devpi_export(case, work, bases, uploads):
    """
    Run the real devpi-server in C{work} with alice's indexes of C{bases}
    (C{{index: [bases]}}, in that order), upload C{uploads}
    (C{{index: dists}}) with twine, stop it and export its data.

    @return: C{(the folder of the export, the time of the uploads)}.
    """
    bin_dir = tool_venv(DEVPI)
    os.makedirs(work)
    serverdir = os.path.join(work, "devpi")
    env = e2e.clean_env(work)
    e2e.run([os.path.join(bin_dir, "devpi-init"), "--serverdir", serverdir,
             "--no-root-pypi", "--root-passwd", "root-secret"], cwd=work, env=env)
    port = e2e.free_port()
    url = f"http://{e2e.HOST}:{port}"
    peer = Peer([os.path.join(bin_dir, "devpi-server"), "--serverdir", serverdir,
                 "--host", e2e.HOST, "--port", str(port)], work, url + "/+api")
    case.addCleanup(peer.kill)
    peer.start()
    json_headers = {"Content-Type": "application/json", "Accept": "application/json"}
    auth = ("alice", "alice-secret")
    answer = e2e.http("PUT", f"{url}/alice", json_headers,
                      json.dumps({"password": auth[1]}).encode())
    case.assertEqual(answer.status, 201, answer.body)
    for index, its_bases in bases.items():
        answer = e2e.http("PUT", f"{url}/alice/{index}", json_headers,
                          json.dumps({"type": "stage", "bases": its_bases}).encode(), auth=auth)
        case.assertEqual(answer.status, 200, answer.body)
    for index, dists in uploads.items():
        twine_upload(case.clients, f"{url}/alice/{index}/", case.dist_dir(*dists), *auth)
    uploaded = time.time()
    for index, its_bases in bases.items():
        # (devpi serves each index's projects and its bases')
        for base in its_bases:
            for dist in uploads.get(base.partition("/")[2], ()):
                project = dist[0].split("-")[0].replace("_", "-")
                page = e2e.http("GET", f"{url}/alice/{index}/+simple/{project}/")
                case.assertEqual(page.status, 200, page.body)
    peer.stop()
    dump = os.path.join(work, "dump")
    e2e.run([os.path.join(bin_dir, "devpi-export"), "--serverdir", serverdir, dump],
            cwd=work, env=env)
    return dump, uploaded


class DevpiTests(e2e.DaemonTestCase):
    """Packages uploaded to a real devpi-server, exported by it, imported by pypid."""

    def test_devpi_export(self):
        """
        Every file of devpi's stage indexes comes across with its uploader
        and upload time; a filename two indexes hold with other bytes is a
        conflict; one index alone imports cleanly, and installs.
        """
        app = make_wheel("devpi-app", "1.0", requires_dist=["devpi-lib"])
        lib = make_sdist("devpi-lib", "1.0")
        other_app = make_wheel("devpi-app", "1.0", module_text="OTHER = True\n")
        dump, uploaded = devpi_export(self, os.path.abspath(self.mktemp()),
                                      {"dev": [], "prod": []},
                                      {"dev": (app, lib), "prod": (other_app,)})
        target = self.new_daemon(start=False)
        everything = admin(target, "import", dump, check=False)
        self.assertIn("as a devpi export (detected", everything.output)
        self.assertEqual(everything.returncode, 1, everything.output)
        self.assertEqual(counts(everything.output)["imported"], 2)
        self.assertEqual(counts(everything.output)["conflicts"], 1)
        self.assertIn(f"{app[0]}: another file of that name is stored (from "
                      f"alice/dev/devpi-app/1.0/{app[0]})", everything.output)
        chosen = admin(target, "import", "--index", "alice/dev", dump)
        self.assertEqual(counts(chosen.output)["already there"], 2)
        with open(os.path.join(target.storage, ".pypid", "files", app[0] + ".json")) as f:
            record = json.load(f)
        self.assertEqual(record["uploader"], "alice")
        self.assertLess(abs(record["upload_time"] - uploaded), 60)
        target.start()
        self.assertEqual(e2e.files_by_name(target, "devpi-app")[app[0]]["hashes"]["sha256"],
                         e2e.sha256(app[1]))
        installed = os.path.abspath(self.mktemp())
        self.clients.pip_install(installed, target.index_url, "--no-deps", "devpi-app")
        self.assertEqual(e2e.installed(installed), {"devpi-app": "1.0"})


class PypiserverTests(e2e.DaemonTestCase):
    """The package folder of a real pypiserver, imported by pypid."""

    def test_pypiserver_folder(self):
        """
        What twine uploaded to pypiserver (and what was copied into nested
        folders) comes across; a file that is not a distribution is refused
        with the reason.
        """
        bin_dir = tool_venv(PYPISERVER)
        work = os.path.abspath(self.mktemp())
        packages = os.path.join(work, "packages")
        os.makedirs(os.path.join(packages, "nested"))
        port = e2e.free_port()
        url = f"http://{e2e.HOST}:{port}"
        peer = Peer([os.path.join(bin_dir, "pypi-server"), "run", "-p", str(port), "-i",
                     e2e.HOST, "-a", ".", "-P", ".", "--disable-fallback", packages],
                    work, url + "/simple/")
        self.addCleanup(peer.kill)
        peer.start()
        app, lib = make_wheel("pps-app", "1.0"), make_sdist("pps-lib", "1.0")
        twine_upload(self.clients, url + "/", self.dist_dir(app, lib), "any", "any")
        nested = make_wheel("pps-nested", "3.0")
        e2e.write_files(os.path.join(packages, "nested"), nested)
        with open(os.path.join(packages, "notes.txt"), "w") as f:
            f.write("not a package\n")
        listing = e2e.http("GET", url + "/simple/pps-nested/")
        self.assertEqual(listing.status, 200, "pypiserver serves the nested file")
        peer.stop()
        target = self.new_daemon(start=False)
        done = admin(target, "import", packages, check=False)
        self.assertIn("as a pypiserver folder (detected", done.output)
        self.assertEqual(done.returncode, 1)
        self.assertEqual(counts(done.output)["imported"], 3)
        self.assertIn("notes.txt: not a distribution: invalid file extension", done.output)
        target.start()
        for project, (filename, data) in (("pps-app", app), ("pps-lib", lib),
                                          ("pps-nested", nested)):
            files = e2e.files_by_name(target, project)
            self.assertEqual(files[filename]["hashes"]["sha256"], e2e.sha256(data))


class PypicloudTests(e2e.DaemonTestCase):
    """A bucket laid out as pypicloud writes it, imported by the real command."""

    def test_pypicloud_bucket(self):
        """
        Objects of a pypicloud bucket come across with their uploader, into
        a local folder; the storage's own prefix of its own bucket is refused
        as a source.
        """
        bucket = s3server.new_bucket()
        client = s3server.client()
        app, lib = make_wheel("cloud-app", "1.0"), make_sdist("cloud-lib", "1.0")
        for key, (filename, data), uploader in (("pypi/9a1e/cloud-app/", app, "erin"),
                                                 ("pypi/cloud-lib/", lib, "frank")):
            client.put_object(Bucket=bucket, Key=key + filename, Body=data, Metadata={
                "name": filename.split("-")[0], "version": "1.0", "uploader": uploader,
                "hash-sha256": e2e.sha256(data)})
        target = self.new_daemon(start=False, settings={
            "s3.access_key": s3server.ACCESS_KEY, "s3.secret_key": s3server.SECRET_KEY,
            "s3.region": s3server.REGION})
        done = admin(target, "import", f"s3://{bucket}/pypi/", "--s3-endpoint",
                     s3server.endpoint())
        self.assertIn("as a pypicloud storage (detected", done.output)
        self.assertEqual(counts(done.output)["imported"], 2)
        with open(os.path.join(target.storage, ".pypid", "files", app[0] + ".json")) as f:
            self.assertEqual(json.load(f)["uploader"], "erin")
        target.start()
        self.assertEqual(e2e.files_by_name(target, "cloud-lib")[lib[0]]["hashes"]["sha256"],
                         e2e.sha256(lib[1]))
        on_bucket = self.new_daemon(start=False, settings=s3_settings(bucket))
        refused = admin(on_bucket, "import", f"s3://{bucket}/packages/sub/", check=False)
        self.assertEqual(refused.returncode, 1)
        self.assertIn("must not be inside one another", refused.output)


class DevpiIndexesTests(e2e.DaemonTestCase):
    """
    A devpi user's two indexes, one based on the other, exported by the real
    devpi-server and imported into pypid as two indexes (issue 26).
    """

    def test_two_indexes_kept(self):
        """
        The import names the C{[index:...]} sections to add (C{dev} based on
        C{prod}, as in devpi) and imports nothing; with them pasted in, it
        imports each index's files into its own index, and pip and uv
        install from C{/dev/simple/} what devpi's C{alice/dev} served (its
        project and prod's dependency) and from C{/prod/simple/} prod's
        alone.
        """
        lib = make_wheel("devpi-base-lib", "1.0")
        app = make_wheel("devpi-dev-app", "1.0", requires_dist=["devpi-base-lib"])
        dump, _ = devpi_export(self, os.path.abspath(self.mktemp()),
                               {"prod": [], "dev": ["alice/prod"]},
                               {"prod": (lib,), "dev": (app,)})
        # devpi itself serves dev's project with prod's dependency (checked
        # while it ran: devpi_export)
        target = self.new_daemon(start=False)
        maps = ["--map", "alice/dev=dev", "--map", "alice/prod=prod"]
        refused = admin(target, "import", *maps, dump, check=False)
        self.assertEqual(refused.returncode, 1, refused.output)
        self.assertIn("nothing was imported", refused.output)
        header = "Add these sections to the configuration, then import again:\n\n"
        self.assertIn(header, refused.output)
        sections = refused.output.split(header, 1)[1].split("\n\n[", 1)
        sections = sections[0] + ("\n\n[" + sections[1] if len(sections) > 1 else "")
        sections = "\n".join(line for line in sections.splitlines()
                             if line.startswith("[index:") or line.startswith("bases ")
                             or not line.strip())
        self.assertEqual([line.split(";")[0].strip() for line in sections.splitlines()
                          if line.strip()],
                         ["[index:dev]", "bases = prod", "[index:prod]"])
        self.assertFalse(os.path.exists(os.path.join(target.storage, ".indexes")))
        with open(target.config_path, "a", encoding="utf-8") as f:
            f.write("\n" + sections + "\n")
        imported = admin(target, "import", *maps, dump)
        self.assertIn("Into the index dev:", imported.output)
        self.assertIn("Into the index prod:", imported.output)
        self.assertEqual(sorted(os.listdir(os.path.join(target.storage, ".indexes"))),
                         ["dev", "prod"])
        self.assertIn(lib[0], os.listdir(os.path.join(target.storage, ".indexes", "prod")))
        self.assertIn(app[0], os.listdir(os.path.join(target.storage, ".indexes", "dev")))
        target.start()
        for install in (self.clients.pip_install, self.clients.uv_install):
            into = os.path.abspath(self.mktemp())
            install(into, target.url + "dev/simple/", "devpi-dev-app")
            self.assertEqual(e2e.installed(into),
                             {"devpi-dev-app": "1.0", "devpi-base-lib": "1.0"}, install)
            into = os.path.abspath(self.mktemp())
            install(into, target.url + "prod/simple/", "devpi-base-lib")
            self.assertEqual(e2e.installed(into), {"devpi-base-lib": "1.0"}, install)
            into = os.path.abspath(self.mktemp())
            missing = install(into, target.url + "prod/simple/", "devpi-dev-app", check=False)
            self.assertNotEqual(missing.returncode, 0, missing.output)
        self.assertEqual(e2e.http("GET", target.url + "prod/simple/devpi-dev-app/").status, 404)
        self.assertEqual(e2e.http("GET", target.index_url + "devpi-dev-app/").status, 404)
        with open(os.path.join(target.storage, ".indexes", "dev", ".pypid", "files",
                               app[0] + ".json")) as f:
            self.assertEqual(json.load(f)["uploader"], "alice")
