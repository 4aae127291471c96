"""
The harness of the end-to-end tests: the real daemon, run with C{twistd} in
a subprocess, and the real clients (pip, uv, twine) run as blocking
subprocesses against it.

L{Daemon} writes a configuration in a test's temporary folder, starts the
server on a free loopback port, waits for C{/health}, and stops, kills or
restarts it on the same storage and snapshot; its log is kept in the folder
and its tail is attached to every failure (see L{E2EFailure}).
L{Clients} runs pip, uv and twine isolated from the machine's configuration.
L{http} and L{upload} speak raw HTTP, without following redirects.
L{DaemonTestCase} shares one daemon among the tests of a class.
"""

import atexit
import base64
import ctypes
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from functools import cache
from html.parser import HTMLParser
from http import client as httpclient
from urllib.parse import quote, urlencode, urljoin, urlsplit

from argon2 import Parameters, Type
from packaging.utils import parse_sdist_filename, parse_wheel_filename
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.hashes import hash_password
from tests import BYTECODE, CHECKOUT
from tests.harness.shared import CLASS_SHARED, class_shared

VENV_BIN = os.path.dirname(sys.executable)
TWISTD = os.path.join(VENV_BIN, "twistd")
TWINE = os.path.join(VENV_BIN, "twine")
UV = os.path.join(VENV_BIN, "uv")

HOST = "127.0.0.1"

#: The account every test daemon knows.
USER = "uploader"
PASSWORD = "s3cret-pässword"

#: Seconds the server gets to answer /health after it is started: a safety
#: limit, far above what a start takes even on a loaded machine (importing
#: pypid alone takes seconds there).
STARTUP_TIMEOUT = 60.0
#: Seconds the server gets to exit after SIGTERM before it is killed: longer
#: than the server's own wait for the requests in flight
#: (L{pypid.daemon.listeners.DRAIN_TIMEOUT}) plus its last snapshot, so a
#: request still running at the end of a test is not "did not stop".
STOP_TIMEOUT = 60.0
#: Seconds a client run (pip, uv, twine) may take.
CLIENT_TIMEOUT = 120.0
#: Seconds a raw HTTP request may take.
HTTP_TIMEOUT = 30.0

# Cheap argon2id: the tests verify passwords often, and the cost is not what
# they are about.
_CHEAP = Parameters(type=Type.ID, version=19, salt_len=16, hash_len=32,
                    time_cost=1, memory_cost=64, parallelism=1)

_PR_SET_PDEATHSIG = 1


@cache
def password_hash(password=PASSWORD):
    """The argon2id hash of C{password} for a C{[users]} section, made once."""
    return hash_password(password, parameters=_CHEAP)


# -- failures carry the server's log ---------------------------------------------

#: Daemons whose log tails are attached to failures of the running test.
_watched = []


class E2EFailure(AssertionError):
    """
    An end-to-end check failed; the message ends with the log tail of every
    daemon the running test uses.
    """

    def __init__(self, message=""):
        tails = [d.log_context() for d in _watched]
        if tails:
            message = f"{message}\n" + "\n".join(tails)
        super().__init__(message)


def watch(daemon):
    """Attach C{daemon}'s log tail to failures of the running test."""
    if daemon not in _watched:
        _watched.append(daemon)


def _forget_watched():
    del _watched[:]


# -- processes -----------------------------------------------------------------------


#: The thread trial runs the tests in (a child forked from it has its ident).
_MAIN_THREAD = threading.main_thread().ident


def _die_with_parent():
    """
    In the child, before exec: get SIGTERM when the test process dies.

    Linux sends it when the thread that forked the child ends, not the
    process: a child started from another thread (a pool of a test that
    asks for the class's daemon from several threads at once) would be
    stopped with that thread, so it gets no such signal; it is killed at
    exit like the others (L{_live}).
    """
    if threading.get_ident() != _MAIN_THREAD:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def free_port():
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def clean_env(home, **extra):
    """
    An environment made from scratch (so no C{PIP_*}, C{UV_*}, C{TWINE_*}
    or proxy variable leaks in), with C{HOME} in a test folder.
    """
    env = {
        "PATH": os.pathsep.join([VENV_BIN, "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": home,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
        **BYTECODE,
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        "NO_COLOR": "1",
    }
    env.update(extra)
    return env


def run(argv, *, cwd, env, timeout=CLIENT_TIMEOUT, check=True, what=None):
    """
    Run a blocking command and return its L{subprocess.CompletedProcess}
    (stdout and stderr merged in C{.output}).

    @raise E2EFailure: it timed out, or C{check} and it failed.
    """
    what = what or os.path.basename(argv[0])
    started = time.monotonic()
    try:
        done = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout, preexec_fn=_die_with_parent)
    except subprocess.TimeoutExpired as e:
        output = (e.output or b"").decode("utf-8", "replace")
        raise E2EFailure(f"{what} timed out after {timeout} s: {argv}\n{output}")
    done.output = done.stdout.decode("utf-8", "replace")
    done.seconds = time.monotonic() - started
    if check and done.returncode != 0:
        raise E2EFailure(f"{what} failed with exit code {done.returncode}: {argv}\n{done.output}")
    return done


def wait_for(predicate, timeout, message, interval=0.02):
    """Poll C{predicate} until it is true; fail with C{message} after C{timeout} s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise E2EFailure(message() if callable(message) else message)
        time.sleep(interval)


# -- the daemon ------------------------------------------------------------------------


class ChildProcess:
    """
    A process the tests start and must stop (it is also killed when the
    test process exits, see L{_live}).

    @ivar what: what to call it in failures.
    """

    what = "process"
    process = None

    def stop(self, timeout=STOP_TIMEOUT):
        """Stop it with SIGTERM (SIGKILL after C{timeout} s); return its exit code."""
        if self.process is None or self.process.poll() is not None:
            _live.discard(self)
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)
            raise E2EFailure(f"the {self.what} did not stop within {timeout} s of SIGTERM")
        finally:
            _live.discard(self)

    def kill(self):
        """Kill it with SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
        _live.discard(self)


def start_on_free_port(child, launch, ready, log, timeout=30, attempts=5):
    """
    Start a server a test runs (nginx, Prometheus) on a free loopback port,
    trying another port when the one chosen was taken meanwhile.

    @param child: the L{ChildProcess}; its C{process} and C{port} are set.
    @param launch: C{launch(port) -> Popen}.
    @param ready: C{ready() -> bool}, whether it answers (an L{OSError} is
        a no).
    @param log: C{log() -> str}, what it wrote, for the failure.
    @return: C{child}, serving.
    """
    for _attempt in range(attempts):
        port = free_port()
        child.process = launch(port)
        _live.add(child)
        child.port = port
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and child.process.poll() is None:
            try:
                if ready():
                    return child
            except OSError:
                pass
            time.sleep(0.05)
        text = log()
        child.kill()
        if "address already in use" not in text.lower():
            raise E2EFailure(f"{child.what} did not start:\n{text[-3000:]}")
    raise E2EFailure(f"could not find a free port for {child.what}")


class Daemon(ChildProcess):
    """
    One pypid server run by C{twistd} in a folder of its own.

    @ivar directory: the folder: configuration, log, storage and snapshot.
    @ivar storage: the package folder.
    @ivar snapshot: the snapshot file.
    @ivar settings: C{{"section.key": value}} passed as C{--set} arguments.
    @ivar port: the port of the running (or last) server.
    """

    what = "server"

    def __init__(self, directory, settings=None, users=None, config_text=None):
        """
        @param settings: C{--set} overrides, C{{"section.key": value}}.
        @param users: C{{name: password}}; default: L{USER} with L{PASSWORD}.
        @param config_text: the whole configuration file, instead of the one
            written from the other arguments.
        """
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.storage = os.path.join(self.directory, "packages")
        self.snapshot = os.path.join(self.directory, "var", "index.json")
        self.config_path = os.path.join(self.directory, "pypid.ini")
        self.log_path = os.path.join(self.directory, "server.log")
        self.home = os.path.join(self.directory, "home")
        os.makedirs(self.home, exist_ok=True)
        self.settings = dict(settings or {})
        #: more environment variables of the server's process: the source of
        #: the checkout the tests run from first (a worktree's tests run its
        #: own code, not that of the checkout the virtualenv was installed from)
        self.environ = {"PYTHONPATH": os.path.join(CHECKOUT, "src")}
        self.users = {USER: PASSWORD} if users is None else dict(users)
        self.process = None
        self.port = None
        self.starts = 0
        self._log_offset = 0
        self._write_config(config_text)

    def _write_config(self, config_text):
        if config_text is None:
            lines = [
                "[pypid]",
                f"snapshot = {self.snapshot}",
                "snapshot_interval = 30",
                "[storage]",
                "backend = local",
                f"path = {self.storage}",
                "[auth]",
                "upload = authenticated",
                # (a deletion deletes at once, as the tests of tombstones,
                # exports and bundles expect; the recycle bin's own tests
                # set retention.recycle_bin, which --set gives over this)
                "[retention]",
                "recycle_bin = 0",
                "[users]",
            ]
            lines += [f"{name} = {password_hash(pw)}" for name, pw in self.users.items()]
            config_text = "\n".join(lines) + "\n"
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write(config_text)

    # -- addresses -----------------------------------------------------------

    @property
    def url(self):
        """The server's root URL, with a trailing slash."""
        return f"http://{HOST}:{self.port}/"

    @property
    def index_url(self):
        """The simple index URL."""
        return self.url + "simple/"

    def authed_index_url(self, user=USER, password=PASSWORD):
        """The simple index URL with credentials in it, as pip and uv take them."""
        return f"http://{quote(user, safe='')}:{quote(password, safe='')}@{HOST}:{self.port}/simple/"

    @property
    def pid(self):
        """The server's process id."""
        return self.process.pid

    @property
    def temp_dir(self):
        """Where the server spools uploads."""
        return os.path.join(self.storage, ".pypid", "tmp")

    # -- running ---------------------------------------------------------------

    def command(self, port):
        """The argv of the server."""
        argv = [TWISTD, "-n", "--pidfile=", "pypid", "--config", self.config_path,
                "--listen", f"tcp:{port}:interface={HOST}"]
        for key, value in self.settings.items():
            argv += ["--set", f"{key}={value}"]
        return argv

    def running(self):
        """Whether the server process is alive."""
        return self.process is not None and self.process.poll() is None

    def start(self, port=None, timeout=STARTUP_TIMEOUT):
        """
        Start the server and wait until it answers C{/health}; on a port
        collision, try again with another port.

        @param port: the port to use (a restart keeps its port); default: a free one.
        """
        if self.running():
            raise E2EFailure("the server is already running")
        watch(self)
        for attempt in range(5):
            chosen = port if port is not None and attempt == 0 else free_port()
            if self._start_once(chosen, timeout):
                return self
        raise E2EFailure("could not find a free port for the server")

    def listening_line(self, port):
        """What the log says once the server listens on C{port}."""
        return f"Listening on tcp:{port}:".encode()

    def health(self):
        """The status of C{/health} now."""
        return http("GET", self.url + "health", timeout=1).status

    def port_taken(self):
        """A port was in use: another start follows (with another port)."""

    def _start_once(self, port, timeout):
        self.port = port
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"==== e2e: start #{self.starts} on port {port} ====\n".encode())
            self._log_offset = log.tell()
            self.process = subprocess.Popen(
                self.command(port), cwd=self.directory, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT,
                env=clean_env(self.home, PYTHONUNBUFFERED="1", **self.environ),
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        _live.add(self)
        deadline = time.monotonic() + timeout
        listening = self.listening_line(port)
        while True:
            if self.process.poll() is not None:
                text = self.log_since_start()
                if b"Cannot listen" in text and b"Address already in use" in text:
                    self.port_taken()
                    return False
                raise E2EFailure(
                    f"the server exited with code {self.process.returncode} during start-up")
            if listening in self.log_since_start():
                try:
                    if self.health() == 200:
                        return True
                except OSError:
                    pass
            if time.monotonic() > deadline:
                self.kill()
                raise E2EFailure(f"the server did not answer /health within {timeout} s")
            time.sleep(0.03)


    def stop_cleanly(self):
        """
        Stop the server with SIGTERM and check that it shut down in order:
        twistd exits with the signal that stopped it (or 0), after its log
        says so.
        """
        code = self.stop()
        if code not in (0, -signal.SIGTERM) or b"Server Shut Down." not in self.log_since_start():
            raise E2EFailure(f"the server did not shut down cleanly on SIGTERM (exit code {code})")
        return code

    def restart(self, clean=True):
        """Stop (or kill, unless C{clean}) and start again on the same storage and port."""
        if clean:
            self.stop_cleanly()
        else:
            self.kill()
        return self.start(port=self.port)

    # -- looking inside ------------------------------------------------------------

    def log_since_start(self):
        """The log bytes written since the last start."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                return f.read()
        except FileNotFoundError:
            return b""

    def wait_for_log(self, needle, timeout=30.0):
        """Wait until the log since the last start holds C{needle}; return that log."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_since_start()
            if needle in text:
                return text
            if time.monotonic() > deadline:
                raise E2EFailure(f"{needle!r} not logged within {timeout} s:\n"
                                 + self.log_context())
            time.sleep(0.02)

    def log_text(self):
        """The whole log."""
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_context(self, lines=40):
        """The last lines of the log, for a failure message."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                tail = f.read().decode("utf-8", "replace").splitlines()[-lines:]
        except FileNotFoundError:
            tail = ["(no log)"]
        state = "running" if self.running() else "not running"
        return (f"---- server log tail ({self.log_path}, {state}) ----\n"
                + "\n".join(tail) + "\n---- end of server log ----")

    def memory(self):
        """C{VmHWM} and C{VmRSS} of the server, in bytes, from /proc."""
        values = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    number, unit = rest.split()
                    values[key] = int(number) * 1024
        return values

    def stored_names(self):
        """The names of every file in the storage folder, outside C{.pypid}."""
        names = []
        for _folder, dirs, files in os.walk(self.storage):
            dirs[:] = [d for d in dirs if d != ".pypid"]
            names += files
        return sorted(names)

    def temp_files(self):
        """The files in the upload spool folder."""
        try:
            return sorted(os.listdir(self.temp_dir))
        except FileNotFoundError:
            return []


#: Child processes (daemons, upstreams) that may still run, killed at exit
#: whatever happens.
_live = set()


def spawn(child, argv, **popen):
    """
    Start C{child}'s process (a L{ChildProcess}) with C{argv}: it gets
    SIGTERM when the test process dies, and is killed at its exit.
    """
    child.process = subprocess.Popen(argv, preexec_fn=_die_with_parent, **popen)
    _live.add(child)
    return child.process


@atexit.register
def _stop_all():
    for daemon in list(_live):
        try:
            daemon.kill()
        except Exception:
            pass


# -- raw HTTP ---------------------------------------------------------------------------


class Response:
    """
    An HTTP answer: C{status}, C{reason}, C{headers} (an
    L{http.client.HTTPMessage}, case-insensitive) and the C{body} bytes.
    """

    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def header(self, name):
        """One header's value, or L{None}."""
        return self.headers.get(name)

    def json(self):
        """The body parsed as JSON."""
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.reason!r} {len(self.body)} bytes>"


def basic(user=USER, password=PASSWORD):
    """An C{Authorization} header value for HTTP Basic."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def http(method, url, headers=None, body=None, auth=None, timeout=HTTP_TIMEOUT):
    """
    Make one request and return its L{Response}; redirects are not followed
    and error statuses are answers, not exceptions.

    @param auth: C{(user, password)} for HTTP Basic, or L{None}.
    """
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    headers = dict(headers or {})
    if auth is not None:
        headers["Authorization"] = basic(*auth)
    conn = httpclient.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, resp.reason, resp.headers, data)
    finally:
        conn.close()


def form_login(url, user, password):
    """
    Log in through the pages' form at C{url} (the site's root), as a
    browser does (issue 44); the session's cookie, as a C{Cookie} header's
    value.
    """
    response = http("POST", url + "login", {"Content-Type": "application/x-www-form-urlencoded"},
                    urlencode({"user": user, "password": password}).encode("utf-8"))
    if response.status != 303:
        raise E2EFailure(f"{user} could not log in: {response.status} {response.body!r}")
    return response.header("Set-Cookie").split(";")[0]


def with_cookie(url, cookie=None):
    """C{(status, body)} of a C{GET} of C{url} sending only C{cookie} (or nothing)."""
    response = http("GET", url, {"Cookie": cookie} if cookie else None)
    return response.status, response.body


def sha256(data):
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path):
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# -- uploads without a client -------------------------------------------------------------


def upload_form(filename, data, *, boundary=None, fields=None):
    """
    Return C{(content_type, body)} of the multipart form twine sends for one
    file, with the name and version read from the filename.

    @param fields: C{(name, value)} pairs replacing or adding to the defaults.
    """
    base = os.path.basename(filename)
    try:
        if base.endswith(".whl"):
            name, version, _build, tags = parse_wheel_filename(base)
            filetype, pyversion = "bdist_wheel", sorted({t.interpreter for t in tags})[0]
        else:
            name, version = parse_sdist_filename(base)
            filetype, pyversion = "sdist", "source"
    except ValueError:
        # A filename made up to be refused: the fields say what it claims.
        stem = base.split(".", 1)[0].split("-")
        name, version = stem[0], stem[1] if len(stem) > 1 else "1.0"
        filetype, pyversion = "bdist_wheel", "py3"
    values = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": str(name),
        "version": str(version),
        "filetype": filetype,
        "pyversion": pyversion,
        "metadata_version": "2.1",
        "sha256_digest": sha256(data),
    }
    values.update(fields or {})
    boundary = boundary or uuid.uuid4().hex
    parts = []
    for key, value in values.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'
            f"{value}\r\n".encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)


def upload(daemon, filename, data, auth=(USER, PASSWORD), path="", fields=None):
    """POST one file to the daemon's upload URL the way twine does; return the L{Response}."""
    ctype, body = upload_form(filename, data, fields=fields)
    return http("POST", daemon.url + path, {"Content-Type": ctype}, body, auth=auth)


# -- clients that stop reading ------------------------------------------------------------------

#: The state C{TCP_INFO} gives a connection its peer reset (Linux's TCP_CLOSE).
TCP_CLOSE = 7


def asked_never_read(port, path, context=None):
    """
    A connection to C{port} (over TLS when given an L{ssl.SSLContext}) that
    asked for C{path} and will read none of the answer, its receive buffer
    made small first; the caller closes it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(HTTP_TIMEOUT)
        sock.connect((HOST, port))
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="localhost")
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    except BaseException:
        sock.close()
        raise
    return sock


def reset_unread(sock, limit):
    """
    Whether the server resets C{sock}'s connection within C{limit} seconds
    while this side reads nothing (the connection's state, from C{TCP_INFO}).
    """
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == TCP_CLOSE:
            return True
        time.sleep(0.05)
    return False


# -- pages -------------------------------------------------------------------------------------


class _Anchors(HTMLParser):
    """Collects the anchors of a page: C{{text: attributes}}."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found = {}
        self._open = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._open = dict(attrs)

    def handle_data(self, data):
        if self._open is not None:
            self.found[data] = self._open

    def handle_endtag(self, tag):
        if tag == "a":
            self._open = None


def anchors(html_bytes):
    """C{{text: attributes}} of every anchor of a page, attribute values unescaped."""
    parser = _Anchors()
    parser.feed(html_bytes.decode("utf-8"))
    return parser.found


def project_json(daemon, project, auth=None):
    """The PEP 691 page of a project, parsed; fails unless it answers 200."""
    resp = http("GET", f"{daemon.index_url}{project}/",
                {"Accept": "application/vnd.pypi.simple.v1+json"}, auth=auth)
    if resp.status != 200:
        raise E2EFailure(f"GET /simple/{project}/ answered {resp.status}: {resp.body!r}")
    return resp.json()


def files_by_name(daemon, project, auth=None):
    """The PEP 691 file entries of a project, by filename."""
    return {f["filename"]: f for f in project_json(daemon, project, auth)["files"]}


def form(**fields):
    """Headers and body of a urlencoded form."""
    return {"Content-Type": "application/x-www-form-urlencoded"}, urlencode(fields).encode()


def file_url(daemon, project, filename):
    """The absolute URL a project page gives a file."""
    entry = files_by_name(daemon, project)[filename]
    return urljoin(f"{daemon.index_url}{project}/", entry["url"])


# -- clients -------------------------------------------------------------------------------------


def write_files(directory, *distributions):
    """Write C{(filename, bytes)} pairs into C{directory}; return their paths."""
    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)
    paths = []
    for filename, data in distributions:
        path = os.path.join(directory, filename)
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)
    return paths


class Sampler:
    """
    Something a test measures in a thread of its own while it acts, every
    C{interval} seconds until the block it is used in ends: subclasses
    say what in L{sample}.
    """

    def __init__(self, interval, join_timeout=30):
        self._interval = interval
        self._join_timeout = join_timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(self._join_timeout)

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self._interval)

    def sample(self):
        """Take one sample."""
        raise NotImplementedError


class Clients:
    """
    pip, uv and twine, each run as a subprocess isolated from the machine's
    configuration: a clean environment, C{HOME} and caches in C{directory}.
    """

    def __init__(self, directory):
        self.directory = os.path.abspath(directory)
        self.home = os.path.join(self.directory, "home")
        self.uv_cache = os.path.join(self.directory, "uv-cache")
        os.makedirs(self.home, exist_ok=True)

    def env(self, **extra):
        """The environment of a client."""
        return clean_env(self.home, **extra)

    def _run(self, argv, env=None, **kwargs):
        return run(argv, cwd=self.directory, env=env or self.env(), **kwargs)

    def pip(self, *args, **kwargs):
        """Run C{python -m pip}, ignoring every pip configuration."""
        argv = [sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check",
                "--no-cache-dir", "--no-input", *args]
        return self._run(argv, what="pip", **kwargs)

    def pip_install(self, target, index_url, *requirements, **kwargs):
        """Install into the folder C{target} from the index alone."""
        return self.pip("install", "--progress-bar", "off", "--no-compile", "--only-binary", ":all:",
                        "--target", target, "--index-url", index_url, *requirements, **kwargs)

    def uv(self, *args, environ=None, **kwargs):
        """
        Run uv with no configuration and a private cache.

        @param environ: more environment variables (C{SSL_CERT_FILE}).
        """
        env = self.env(UV_NO_CONFIG="1", UV_CACHE_DIR=self.uv_cache,
                       UV_PYTHON_DOWNLOADS="never", **(environ or {}))
        return self._run([UV, "--no-config", "--no-progress", *args], env=env, what="uv",
                         **kwargs)

    def uv_install(self, target, index_url, *requirements, **kwargs):
        """C{uv pip install} into the folder C{target} from the index alone."""
        return self.uv("pip", "install", "--python", sys.executable, "--target", target,
                       "--index-url", index_url, "--no-build", *requirements, **kwargs)

    def uv_publish(self, daemon, paths, *args, user=USER, password=PASSWORD, **kwargs):
        """C{uv publish} files to the daemon."""
        return self.uv("publish", "--publish-url", daemon.url, "--username", user,
                       "--password", password, "--trusted-publishing", "never", *args,
                       *paths, **kwargs)

    def twine_upload(self, daemon, paths, *args, user=USER, password=PASSWORD, **kwargs):
        """C{twine upload} files to the daemon."""
        argv = [TWINE, "upload", "--repository-url", daemon.url, "-u", user, "-p", password,
                "--non-interactive", "--disable-progress-bar", *args, *paths]
        return self._run(argv, what="twine", **kwargs)


def installed(target):
    """The distributions installed in a C{--target} folder: {normalized name: version}."""
    found = {}
    for entry in os.listdir(target):
        if entry.endswith(".dist-info"):
            name, _, version = entry[: -len(".dist-info")].rpartition("-")
            found[name.replace("_", "-").lower()] = version
    return found


# -- test cases --------------------------------------------------------------------------------


class DaemonTestCase(SynchronousTestCase):
    """
    A test case whose tests share one daemon, started on first use and
    stopped when this process moves on to another class (or exits): see
    L{tests.harness.shared}, for under C{trial -j} a class's tests are
    spread over the worker processes, each with a daemon of its own.

    Subclasses set C{settings} (C{--set} overrides) and may override
    L{prepare} to put what every test reads in place once per daemon; a
    test never relies on what another test did to the daemon.
    """

    failureException = E2EFailure
    settings = {}
    users = None

    def setUp(self):
        _forget_watched()
        self.addCleanup(_forget_watched)
        CLASS_SHARED.enter(type(self))
        self.clients = Clients(os.path.abspath(self.mktemp()))

    @property
    def daemon(self):
        """The shared daemon of this class, started (and prepared) on first use."""
        daemon, _ = self._shared_daemon()
        watch(daemon)
        if not daemon.running():
            raise E2EFailure("the shared daemon is not running")
        return daemon

    @property
    def prepared(self):
        """What L{prepare} returned for the class's shared daemon (started if need be)."""
        return self._shared_daemon()[1]

    def _shared_daemon(self):
        return self.shared("daemon", self._start_shared_daemon, lambda made: made[0].stop())

    def shared(self, name, make, close=None):
        """What the tests of this class share under C{name} (see L{tests.harness.shared})."""
        return class_shared(self, name, make, close)

    def shared_folder(self, suffix=""):
        """An empty folder for what the class shares, named after it."""
        cls = type(self)
        folder = os.path.abspath(os.path.join("e2e-shared",
                                              f"{cls.__module__}.{cls.__name__}{suffix}"))
        shutil.rmtree(folder, ignore_errors=True)
        return folder

    def _start_shared_daemon(self):
        daemon = self.make_shared_daemon(self.shared_folder())
        watch(daemon)
        try:
            daemon.start()
            prepared = self.prepare(daemon)
        except BaseException:
            daemon.kill()
            raise
        return daemon, prepared

    def make_shared_daemon(self, folder):
        """The class's shared daemon in C{folder}, not started."""
        return Daemon(folder, settings=self.settings, users=self.users)

    def prepare(self, daemon):
        """
        Put in place what every test of the class reads (once per daemon);
        what it returns, the tests read as L{prepared}.
        """

    def new_daemon(self, settings=None, users=None, config_text=None, start=True):
        """A daemon of this test alone, in its temporary folder, stopped at the end."""
        daemon = Daemon(os.path.abspath(self.mktemp()), settings=settings, users=users,
                        config_text=config_text)
        watch(daemon)
        self.addCleanup(daemon.kill)
        if start:
            daemon.start()
        return daemon

    def dist_dir(self, *distributions):
        """Write distributions into a new folder; return their paths."""
        return write_files(os.path.abspath(self.mktemp()), *distributions)


def processes_naming(*texts):
    """The process ids whose command line holds every one of C{texts} (this process's apart)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                line = f.read()
            if all(text.encode() in line for text in texts):
                found.append(int(name))
        except OSError:
            pass
    return found


def worker_pids(daemon):
    """The process ids of the supervisor's children (its workers)."""
    with open(f"/proc/{daemon.pid}/task/{daemon.pid}/children") as f:
        return [int(pid) for pid in f.read().split()]
