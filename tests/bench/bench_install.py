"""
Install time against a static mirror (issue 43): the wall time of real
C{uv} and C{pip} installs, with empty client caches into fresh targets,
from pypid and from nginx serving the same files as a static PEP 503 tree,
over HTTP and over HTTPS, and through a pypid whose upstream cache is warm.

What users of an index feel is how long an install takes, not how many
requests a second a page gets. This measures that:

  - a corpus of C{--projects} projects (default 150) with dependencies
    between them (C{--roots} of them, default 10, pull in all the others),
    1 to 8 versions each, a wheel and an sdist per version, and for a fifth
    of the projects platform wheels for four Pythons and four platforms
    (only the running interpreter's is large); the newest versions' wheels
    are sized like a real set (lognormal, a few kB to many MB, C{--total-mb}
    in all, default 100), their metadata carries a README of a few kB;
  - nginx (one worker, as C{../shared/bench/} runs it, or C{--workers})
    serving the files, a page per project with C{data-requires-python},
    C{data-core-metadata} and the C{.metadata} files (PEP 658/714), on
    HTTP/1.1 and on HTTPS with h2;
  - pypid (C{twistd}, started as the end-to-end tests start it, with
    C{--set pypid.workers=N} for C{--workers N}) with the files uploaded,
    on a plain C{tcp:} listener and on its C{https:} one,
    and a second pypid with no files and C{[upstream] mode = cache} pointed
    at nginx's plain tree, warmed by one install of each client first
    (always one worker: pypid refuses several with an upstream);
  - with C{--servers ...,nginx-h1}, over HTTPS: the same nginx without h2,
    so that pypid's own TLS listener is compared on its own protocol;
  - with C{--servers ...,h2proxy}, over HTTPS: nginx terminating TLS with
    h2 in front of a pypid on plain HTTP (files uploaded), the set-up
    docs/operations.rst gives for HTTP/2 (pypid keeps no h2 stack of its
    own); its server CPU is nginx's and pypid's together;
  - the jobs: C{uv pip compile} (resolution only), C{uv pip install
    --target} and C{pip install --target}, each with a cache folder of its
    own and a clean environment (no C{PIP_*}, C{UV_*} or
    C{REQUESTS_CA_BUNDLE}; the test CA given with C{SSL_CERT_FILE} and
    C{--cert}); both servers' certificates have ECDSA P-256 keys, as
    certbot makes by default (C{--key rsa} for RSA 2048, whose handshakes
    cost the server several times the CPU); nginx offers TLS 1.3 as pypid
    does (Debian's nginx 1.22 offers only TLS 1.2 unless told, and resumes
    every session a client offers there);
  - the servers pinned to CPU 0 and the clients to CPU 1 (C{taskset}); with
    C{--workers N} (default 1) pypid runs N worker processes and nginx
    N C{worker_processes}, the servers pinned to CPUs 0 to N-1 (the
    clients stay on CPU 1); in each round every job runs against each
    server, in alternating order (ABBA), after one untimed warm-up install
    per server.

The report gives, per job and protocol, the median wall time of each server
and the median of the rounds' paired ratios pypid/nginx with their range,
and the server CPU (utime + stime of its process tree) per install. ::

    .venv/bin/python tests/bench/bench_install.py [--rounds 5] [--projects 150]
        [--total-mb 100] [--protocols http,https] [--jobs uv-compile,uv,pip]
        [--servers pypid,nginx,proxy,base,h2proxy,nginx-h1] [--twistd PATH] [--base-twistd PATH]
        [--key ec|rsa] [--workers N] [--keep DIR] [--json OUT]

C{--twistd} runs another checkout's daemon (its venv's C{twistd}) as
C{pypid}; C{--base-twistd} runs one as C{base}, a second hosted pypid
measured in the same rounds, for an A/B of a change (the report adds
the pypid/base ratios). Needs nginx and taskset (Debian:
C{nginx}, C{util-linux}); uv and pip come with the test extras. Not a test
(trial loads only C{test_*.py}).
"""

import argparse
import concurrent.futures
import hashlib
import html
import json
import math
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.harness.distributions import make_sdist, make_wheel  # noqa: E402
from tests.harness.e2e import (  # noqa: E402
    HOST,
    PASSWORD,
    UV,
    VENV_BIN,
    Daemon,
    clean_env,
    free_port,
    http,
    upload,
)
from tests.harness.e2e_tls import TLSDaemon  # noqa: E402
from tests.harness.tlsca import TestCA  # noqa: E402

PIP = os.path.join(VENV_BIN, "pip")
PY = f"cp{sys.version_info.major}{sys.version_info.minor}"
PYTHONS = ("cp310", "cp311", "cp312", "cp313")
PLATFORMS = ("manylinux_2_17_x86_64.manylinux2014_x86_64", "manylinux_2_17_aarch64",
             "macosx_11_0_arm64", "win_amd64")
#: The platform wheel this machine installs (the bench needs an x86_64 Linux).
HERE = "manylinux_2_17_x86_64.manylinux2014_x86_64"
SERVER_CPU, CLIENT_CPU = "0", "1"
TICK = os.sysconf("SC_CLK_TCK")

README = """# {name}

{name} is one of the projects of the install benchmark. It does what a
library does: it has functions, classes and a changelog.

## Install

    pip install {name}

## Use

```python
import {module}
print({module}.VERSION)
```

## Changelog

""" + "".join(f"- {n}.0: fixed bug number {n * 7}, and made things faster.\n" for n in range(40))


# -- the corpus ---------------------------------------------------------------------------------


def project_name(i):
    return f"inst-proj-{i:03d}"


def plan_corpus(projects, roots, total_mb, seed=43):
    """
    The corpus as data: per project its versions, its dependencies, whether
    it has platform wheels, and the payload size of its newest wheel.
    """
    rnd = random.Random(seed)
    deps = {i: set() for i in range(projects)}
    for j in range(roots, projects):
        deps[rnd.randrange(0, j)].add(j)
    for i in range(projects):
        for _ in range(rnd.choice((0, 0, 1, 2))):
            if i + 1 < projects:
                deps[i].add(rnd.randrange(i + 1, projects))
    raw = [min(rnd.lognormvariate(math.log(60_000), 2.0), 30e6) for _ in range(projects)]
    scale = total_mb * 1e6 / sum(raw)
    plan = []
    for i in range(projects):
        versions = [f"{major}.{minor}.0" for major in range(1, 3) for minor in range(4)]
        versions = versions[:rnd.randint(1, 8)]
        plan.append({
            "name": project_name(i), "versions": versions,
            "deps": sorted(project_name(d) for d in deps[i]),
            "platform": rnd.random() < 0.2, "size": max(2_000, int(raw[i] * scale)),
        })
    return plan


def write_corpus(plan, folder, seed=43):
    """Write every file of the plan into C{folder}; return the filenames."""
    os.makedirs(folder, exist_ok=True)
    rnd = random.Random(seed)
    names = []
    for project in plan:
        name, newest = project["name"], project["versions"][-1]
        requires = [f"{d}>=1.0" for d in project["deps"]] + ['pytest>=7 ; extra == "test"']
        module = name.replace("-", "_")
        for version in project["versions"]:
            metadata = "\n".join([
                "Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
                f"Summary: {name}, a project of the install benchmark",
                "Requires-Python: >=3.8", "Description-Content-Type: text/markdown",
                "Provides-Extra: test", *[f"Requires-Dist: {r}" for r in requires],
            ]) + "\n\n" + README.format(name=name, module=module)
            size = project["size"] if version == newest else 2_000
            tags = ["py3-none-any"]
            if project["platform"] and version == newest:
                tags = [f"{py}-{py}-{plat}" for py in PYTHONS for plat in PLATFORMS]
            for tag in tags:
                big = tag == "py3-none-any" or (tag.startswith(PY + "-") and tag.endswith(HERE))
                payload = rnd.randbytes(size if big else 2_000)
                filename, data = make_wheel(name, version, tag=tag, metadata=metadata,
                                            extra_files=[(f"{module}/data.bin", payload)])
                names.append(_write(folder, filename, data))
            filename, data = make_sdist(name, version, metadata=metadata)
            names.append(_write(folder, filename, data))
    return names


def _write(folder, filename, data):
    with open(os.path.join(folder, filename), "wb") as f:
        f.write(data)
    return filename


def wheel_metadata(path):
    """The METADATA of a wheel file."""
    import zipfile
    with zipfile.ZipFile(path) as zf:
        member = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return zf.read(member)


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def write_static_tree(files_dir, root):
    """
    The static PEP 503 tree nginx serves: C{simple/} and a page per project
    linking C{../../packages/F#sha256=...} with C{data-requires-python} and
    the C{.metadata} attributes of PEP 658/714, the files hard-linked.
    """
    packages = os.path.join(root, "packages")
    os.makedirs(packages, exist_ok=True)
    by_project = {}
    for filename in sorted(os.listdir(files_dir)):
        source = os.path.join(files_dir, filename)
        target = os.path.join(packages, filename)
        if not os.path.exists(target):
            os.link(source, target)
        with open(source, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        attrs = ' data-requires-python="&gt;=3.8"'
        if filename.endswith(".whl"):
            metadata = wheel_metadata(source)
            with open(target + ".metadata", "wb") as f:
                f.write(metadata)
            m = hashlib.sha256(metadata).hexdigest()
            attrs += f' data-dist-info-metadata="sha256={m}" data-core-metadata="sha256={m}"'
        project = normalize(filename.split("-")[0])
        by_project.setdefault(project, []).append(
            f'<a href="../../packages/{filename}#sha256={digest}"{attrs}>{html.escape(filename)}</a><br/>')
    simple = os.path.join(root, "simple")
    os.makedirs(simple, exist_ok=True)
    with open(os.path.join(simple, "index.html"), "w") as f:
        f.write("<!DOCTYPE html><html><body>\n" + "".join(
            f'<a href="{p}/">{p}</a>\n' for p in sorted(by_project)) + "</body></html>\n")
    for project, links in by_project.items():
        os.makedirs(os.path.join(simple, project), exist_ok=True)
        with open(os.path.join(simple, project, "index.html"), "w") as f:
            f.write(f"<!DOCTYPE html><html><body><h1>{project}</h1>\n" + "\n".join(links)
                    + "\n</body></html>\n")


# -- the servers ------------------------------------------------------------------------------


def tree_cpu(pid):
    """Seconds of CPU (utime + stime) used by C{pid} and its living descendants, and
    by the children they waited for."""
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])
    return total / TICK


def descendants(pid):
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            kids = []
        found += kids
        todo += kids
    return found


def server_cpus(workers):
    """The CPUs (a C{taskset} list) the servers run on: CPU 0, or 0 to N-1 for N workers."""
    return SERVER_CPU if workers == 1 else f"0-{workers - 1}"


class Nginx:
    """nginx with one worker (or C{workers}), on a plain and a TLS port (h2 offered by ALPN)."""

    name = "nginx"
    #: what the TLS listener offers beside HTTP/1.1
    h2 = " http2"

    def __init__(self, folder, root, files, workers=1):
        self.folder, self.root, self.workers = folder, root, workers
        self.port, self.tls_port = free_port(), free_port()
        self._write_conf(folder, files)
        self.process = None

    def serve(self):
        """What the server block serves: the static tree."""
        return f"root {self.root};\n        index index.html;"

    def upstreams(self):
        """The C{http} block's upstream servers (none)."""
        return ""

    def _write_conf(self, folder, files):
        os.makedirs(os.path.join(folder, "tmp"), exist_ok=True)
        fullchain = os.path.join(folder, "fullchain.pem")
        with open(fullchain, "wb") as out:
            for path in (files.certificate, files.chain):
                with open(path, "rb") as f:
                    out.write(f.read())
        conf = f"""
worker_processes {self.workers};
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    types {{ text/html html; }}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000;
    client_body_temp_path {folder}/tmp; proxy_temp_path {folder}/tmp;
    fastcgi_temp_path {folder}/tmp; uwsgi_temp_path {folder}/tmp; scgi_temp_path {folder}/tmp;
    {self.upstreams()}
    server {{
        listen {HOST}:{self.port};
        listen {HOST}:{self.tls_port} ssl{self.h2};
        ssl_certificate {fullchain};
        ssl_certificate_key {files.key};
        ssl_protocols TLSv1.2 TLSv1.3;
        {self.serve()}
    }}
}}
"""
        self.conf = os.path.join(folder, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)

    def start(self):
        self.process = subprocess.Popen(
            ["taskset", "-c", server_cpus(self.workers), "nginx", "-p", self.folder,
             "-c", self.conf],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                if http("GET", self.url("http") + "simple/", timeout=1).status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                with open(os.path.join(self.folder, "error.log")) as f:
                    raise RuntimeError(f"nginx did not start:\n{f.read()[-2000:]}")
            time.sleep(0.05)

    def url(self, protocol):
        port = self.tls_port if protocol == "https" else self.port
        return f"{protocol}://{HOST}:{port}/"

    @property
    def pid(self):
        return self.process.pid

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            self.process.wait(10)


class NginxH1(Nginx):
    """The same nginx without h2: HTTP/1.1 over TLS, as pypid's own listener speaks."""

    name = "nginx-h1"
    h2 = ""


class NginxH2Proxy(Nginx):
    """
    nginx terminating TLS with h2 in front of a pypid on plain HTTP (issue
    61: pypid keeps no HTTP/2 stack of its own), as docs/operations.rst
    and etc/container/compose.yaml configure it; its server CPU is the
    proxy's and pypid's together.
    """

    name = "h2proxy"

    def __init__(self, folder, files, backend, workers=1):
        self.backend = backend
        super().__init__(folder, None, files, workers)

    def upstreams(self):
        return f"upstream pypid {{ server {HOST}:{self.backend.port}; keepalive 32; }}"

    def serve(self):
        return ("location / { proxy_pass http://pypid; proxy_http_version 1.1; "
                'proxy_set_header Connection ""; proxy_set_header Host $http_host; '
                "proxy_set_header X-Forwarded-Proto https; proxy_buffering on; "
                "proxy_max_temp_file_size 0; }")

    @property
    def pids(self):
        return [self.process.pid, self.backend.pid]

    def stop(self):
        super().stop()
        self.backend.stop()


class _Pinned:
    """Runs the daemon's C{twistd} (or another checkout's) on the servers' CPUs."""

    twistd = None
    #: the CPUs it runs on (L{server_cpus})
    cpus = SERVER_CPU

    def command(self, port):
        argv = super().command(port)
        if self.twistd:
            argv[0] = self.twistd
        return ["taskset", "-c", self.cpus, *argv]


def worker_settings(workers):
    """The C{--set} overrides that run a daemon with C{workers} worker processes."""
    return {"pypid.workers": str(workers)} if workers > 1 else {}


class PlainPypid(_Pinned, Daemon):
    pass


class TLSPypid(_Pinned, TLSDaemon):
    """pypid on its C{https:} listener, checked with the bench's own CA."""

    ca_root = None

    def health(self):
        return https_request(self.ca_root, "GET", self.url + "health").status


def https_request(ca_root, method, url, headers=None, body=None, auth=None):
    """One HTTPS request trusting only C{ca_root}; a L{tests.harness.e2e.Response}."""
    import ssl
    from http import client as httpclient
    from urllib.parse import urlsplit

    from tests.harness.e2e import Response, basic
    parts = urlsplit(url)
    context = ssl.create_default_context(cafile=ca_root)
    conn = httpclient.HTTPSConnection(parts.hostname, parts.port, context=context, timeout=30)
    headers = dict(headers or {})
    if auth is not None:
        headers["Authorization"] = basic(*auth)
    try:
        conn.request(method, parts.path, body=body, headers=headers)
        resp = conn.getresponse()
        return Response(resp.status, resp.reason, resp.headers, resp.read())
    finally:
        conn.close()


def pypid_config(daemon, upstream=None):
    """The daemon's configuration: the files uploaded by the bench's user, or none and a
    cache of C{upstream}."""
    lines = ["[pypid]", f"snapshot = {daemon.snapshot}", "[storage]", "backend = local",
             f"path = {daemon.storage}", "[auth]", "upload = authenticated", "[users]",
             f"uploader = {_hash()}"]
    if upstream:
        lines += ["[upstream]", "mode = cache", f"url = {upstream}"]
    else:
        lines += ["[upstream]", "mode = none"]
    return "\n".join(lines) + "\n"


def _hash():
    from tests.harness.e2e import password_hash
    return password_hash(PASSWORD)


# -- the clients ------------------------------------------------------------------------------


def client_env(work, ca):
    env = clean_env(os.path.join(work, "home"), SSL_CERT_FILE=ca, UV_NO_CONFIG="1",
                    UV_PYTHON_DOWNLOADS="never", UV_CACHE_DIR=os.path.join(work, "uv-cache"),
                    PIP_NO_INPUT="1")
    os.makedirs(env["HOME"], exist_ok=True)
    return env


def job_argv(job, index, work, ca, roots):
    target = os.path.join(work, "target")
    if job == "uv-compile":
        requirements = os.path.join(work, "requirements.in")
        with open(requirements, "w") as f:
            f.write("\n".join(roots) + "\n")
        return [UV, "--no-config", "--no-progress", "pip", "compile", "--python", sys.executable,
                "--index-url", index, "--quiet", "-o", os.path.join(work, "out.txt"),
                requirements]
    if job == "uv":
        return [UV, "--no-config", "--no-progress", "pip", "install", "--python", sys.executable,
                "--target", target, "--index-url", index, "--quiet", *roots]
    if job == "pip":
        return [PIP, "--isolated", "--disable-pip-version-check", "--no-input", "install",
                "--cache-dir", os.path.join(work, "pip-cache"), "--cert", ca,
                "--target", target, "--index-url", index, "--quiet", *roots]
    raise ValueError(job)


def run_job(job, index, scratch, ca, roots, server_pid, expect):
    """One timed run into a fresh target with an empty cache: (wall s, server CPU s)."""
    work = tempfile.mkdtemp(dir=scratch)
    try:
        argv = job_argv(job, index, work, ca, roots)
        env = client_env(work, ca)
        pids = server_pid if isinstance(server_pid, list) else [server_pid]
        cpu = sum(tree_cpu(pid) for pid in pids)
        started = time.monotonic()
        done = subprocess.run(["taskset", "-c", CLIENT_CPU, *argv], env=env, cwd=work,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=900)
        wall = time.monotonic() - started
        cpu = sum(tree_cpu(pid) for pid in pids) - cpu
        if done.returncode != 0:
            raise RuntimeError(f"{job} from {index} failed:\n{done.stdout.decode()[-3000:]}")
        check_result(job, work, expect)
        return wall, cpu
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check_result(job, work, expect):
    """The run installed (or resolved) every project of the corpus, at its newest version."""
    if job == "uv-compile":
        with open(os.path.join(work, "out.txt")) as f:
            got = {normalize(a): b for a, b in re.findall(r"^([a-z0-9-]+)==(\S+)", f.read(), re.M)}
    else:
        got = {}
        for entry in os.listdir(os.path.join(work, "target")):
            m = re.match(r"(.+)-([^-]+)\.dist-info$", entry)
            if m:
                got[normalize(m.group(1))] = m.group(2)
    if got != expect:
        missing = sorted(set(expect) - set(got))[:5]
        raise RuntimeError(f"{job}: got {len(got)} projects, expected {len(expect)}; "
                           f"missing {missing}")


# -- the run ----------------------------------------------------------------------------------


def upload_all(daemon, files_dir, protocol):
    def one(filename):
        with open(os.path.join(files_dir, filename), "rb") as f:
            data = f.read()
        if protocol == "https":
            from tests.harness.e2e import upload_form
            ctype, body = upload_form(filename, data)
            response = https_request(daemon.ca_root, "POST", daemon.url,
                                     {"Content-Type": ctype}, body, auth=("uploader", PASSWORD))
        else:
            response = upload(daemon, filename, data, auth=("uploader", PASSWORD))
        if response.status != 200:
            raise RuntimeError(f"upload of {filename}: {response.status} {response.body[:200]}")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(one, sorted(os.listdir(files_dir))))


def start_pypids(args, work, ca, files_dir, protocol, nginx):
    """The hosted daemon (files uploaded once, kept across protocols) and the proxy."""
    servers = {}
    for kind in [s for s in args.servers if s in ("pypid", "base", "proxy")]:
        folder = os.path.join(work, kind)
        upstream = nginx.url("http") + "simple/" if kind == "proxy" else None
        cls = TLSPypid if protocol == "https" else PlainPypid
        # (a pypid with an upstream runs one worker: it refuses several)
        settings = worker_settings(1 if kind == "proxy" else args.workers)
        if protocol == "https":
            daemon = cls(folder, ca.issue(name=f"{kind}-server-{args.key}", kind=args.key),
                         settings=settings)
            daemon.ca_root = ca.root_path
        else:
            daemon = cls(folder, settings=settings)
        daemon.twistd = args.base_twistd if kind == "base" else args.twistd
        daemon.cpus = server_cpus(args.workers)
        with open(daemon.config_path, "w") as f:
            f.write(pypid_config(daemon, upstream))
        daemon.start()
        if kind in ("pypid", "base") and not os.path.exists(os.path.join(folder, "uploaded")):
            started = time.monotonic()
            upload_all(daemon, files_dir, protocol)
            print(f"  uploaded {len(os.listdir(files_dir))} files to {kind} in "
                  f"{time.monotonic() - started:.1f} s", flush=True)
            open(os.path.join(folder, "uploaded"), "w").close()
        servers[kind] = daemon
    if protocol == "https" and "h2proxy" in args.servers:
        folder = os.path.join(work, "h2proxy")
        daemon = PlainPypid(folder, settings=worker_settings(args.workers))
        daemon.twistd = args.twistd
        daemon.cpus = server_cpus(args.workers)
        with open(daemon.config_path, "w") as f:
            f.write(pypid_config(daemon))
        daemon.start()
        if not os.path.exists(os.path.join(folder, "uploaded")):
            upload_all(daemon, files_dir, "http")
            open(os.path.join(folder, "uploaded"), "w").close()
        servers["h2proxy"] = NginxH2Proxy(os.path.join(work, "nginx-h2proxy"),
                                          ca.issue(name=f"h2proxy-{args.key}", kind=args.key),
                                          daemon, args.workers).start()
    return servers


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--projects", type=int, default=150)
    ap.add_argument("--roots", type=int, default=10)
    ap.add_argument("--total-mb", type=float, default=100)
    ap.add_argument("--protocols", default="http,https")
    ap.add_argument("--jobs", default="uv-compile,uv,pip")
    ap.add_argument("--servers", default="pypid,nginx,proxy")
    ap.add_argument("--twistd", help="the twistd of another checkout's venv")
    ap.add_argument("--base-twistd", help="the twistd of the checkout measured as base")
    ap.add_argument("--key", choices=("ec", "rsa"), default="ec",
                    help="the servers' key: ECDSA P-256 (certbot's default) or RSA 2048")
    ap.add_argument("--workers", type=int, default=1,
                    help="pypid's workers and nginx's worker_processes (servers on CPUs 0 to N-1)")
    ap.add_argument("--keep", help="a folder kept between runs (the corpus is made once)")
    ap.add_argument("--json", help="write the measurements here")
    args = ap.parse_args()
    args.servers = args.servers.split(",")
    if not 1 <= args.workers <= os.cpu_count():
        ap.error(f"--workers must be from 1 to the {os.cpu_count()} CPUs")
    for tool in ("nginx", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"bench_install needs {tool} (Debian: nginx, util-linux)")

    work = os.path.abspath(args.keep) if args.keep else tempfile.mkdtemp(prefix="bench-install-")
    os.makedirs(work, exist_ok=True)
    os.chmod(work, 0o755)  # (nginx's worker runs as nobody)
    plan = plan_corpus(args.projects, args.roots, args.total_mb)
    files_dir = os.path.join(work, "files")
    stamp = os.path.join(work, "corpus.json")
    if not (os.path.exists(stamp) and json.load(open(stamp)) == plan):
        shutil.rmtree(files_dir, ignore_errors=True)
        shutil.rmtree(os.path.join(work, "static"), ignore_errors=True)
        for kind in ("pypid", "base", "proxy", "h2proxy"):
            shutil.rmtree(os.path.join(work, kind), ignore_errors=True)
        started = time.monotonic()
        write_corpus(plan, files_dir)
        write_static_tree(files_dir, os.path.join(work, "static"))
        with open(stamp, "w") as f:
            json.dump(plan, f)
        print(f"corpus written in {time.monotonic() - started:.1f} s", flush=True)
    shutil.rmtree(os.path.join(work, "proxy"), ignore_errors=True)
    files = os.listdir(files_dir)
    size = sum(os.path.getsize(os.path.join(files_dir, f)) for f in files)
    print(f"corpus: {args.projects} projects, {len(files)} files, {size / 1e6:.0f} MB", flush=True)
    expect = {p["name"]: p["versions"][-1] for p in plan}
    roots = [p["name"] for p in plan[:args.roots]]
    ca = TestCA(os.path.join(work, "ca"))
    scratch = os.path.join(work, "scratch")
    os.makedirs(scratch, exist_ok=True)

    nginx = Nginx(os.path.join(work, "nginx"), os.path.join(work, "static"),
                  ca.issue(name=f"nginx-{args.key}", kind=args.key), args.workers).start()
    results = []
    h1 = None
    if "nginx-h1" in args.servers:
        h1 = NginxH1(os.path.join(work, "nginx-h1"), os.path.join(work, "static"),
                     ca.issue(name=f"nginx-h1-{args.key}", kind=args.key), args.workers).start()
    try:
        for protocol in args.protocols.split(","):
            servers = start_pypids(args, work, ca, files_dir, protocol, nginx)
            if "nginx" in args.servers:
                servers["nginx"] = nginx
            if h1 is not None and protocol == "https":
                servers["nginx-h1"] = h1
            try:
                results += measure(args, servers, protocol, scratch, ca.root_path, roots, expect)
            finally:
                for kind, server in servers.items():
                    if kind not in ("nginx", "nginx-h1"):
                        server.stop()
                shutil.rmtree(os.path.join(work, "proxy"), ignore_errors=True)
    finally:
        nginx.stop()
        if h1 is not None:
            h1.stop()
    report(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


def server_pids(server):
    """The processes whose CPU is the server's (a proxy's and its pypid's)."""
    return getattr(server, "pids", None) or server.pid


def index_of(server, protocol):
    if isinstance(server, Nginx):
        return server.url(protocol) + "simple/"
    return server.url + "simple/"


def measure(args, servers, protocol, scratch, ca, roots, expect):
    jobs = args.jobs.split(",")
    names = [s for s in ("pypid", "base", "proxy", "h2proxy", "nginx-h1", "nginx")
             if s in servers]
    print(f"{protocol}: warming up", flush=True)
    for name in names:
        for job in ("uv", "pip"):
            run_job(job, index_of(servers[name], protocol), scratch, ca, roots,
                    server_pids(servers[name]), expect)
    results = []
    for r in range(args.rounds):
        for job in jobs:
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                wall, cpu = run_job(job, index_of(servers[name], protocol), scratch, ca, roots,
                                    server_pids(servers[name]), expect)
                results.append({"protocol": protocol, "job": job, "server": name, "round": r,
                                "wall_s": wall, "server_cpu_s": cpu})
                print(f"  {protocol} round {r} {job:10} {name:6} {wall:7.2f} s "
                      f"(server CPU {cpu:.2f} s)", flush=True)
    return results


def report(results):
    print("\njob          proto  server  wall s (median)  server CPU s  ratio to nginx [min-max]")
    cells = sorted({(r["job"], r["protocol"]) for r in results},
                   key=lambda c: (["uv-compile", "uv", "pip"].index(c[0]), c[1]))
    for job, protocol in cells:
        rows = [r for r in results if r["job"] == job and r["protocol"] == protocol]
        nginx = {r["round"]: r["wall_s"] for r in rows if r["server"] == "nginx"}
        for server in ("pypid", "base", "proxy", "h2proxy", "nginx-h1", "nginx"):
            mine = [r for r in rows if r["server"] == server]
            if not mine:
                continue
            wall = statistics.median(r["wall_s"] for r in mine)
            cpu = statistics.median(r["server_cpu_s"] for r in mine)
            ratios = [r["wall_s"] / nginx[r["round"]] for r in mine if r["round"] in nginx]
            text = (f"{statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]"
                    if ratios and server != "nginx" else "")
            print(f"{job:12} {protocol:6} {server:7} {wall:14.2f}  {cpu:12.2f}  {text}")
        h1 = {r["round"]: r["wall_s"] for r in rows if r["server"] == "nginx-h1"}
        if h1:
            ratios = [r["wall_s"] / h1[r["round"]] for r in rows
                      if r["server"] == "pypid" and r["round"] in h1]
            print(f"{job:12} {protocol:6} pypid/nginx-h1 (both HTTP/1.1 over TLS) "
                  f"{statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]")
        base = {r["round"]: r for r in rows if r["server"] == "base"}
        if base:
            pairs = [(r, base[r["round"]]) for r in rows
                     if r["server"] == "pypid" and r["round"] in base]
            walls = [a["wall_s"] / b["wall_s"] for a, b in pairs]
            cpus = [a["server_cpu_s"] / b["server_cpu_s"] for a, b in pairs if b["server_cpu_s"]]
            print(f"{job:12} {protocol:6} pypid/base wall {statistics.median(walls):.2f} "
                  f"[{min(walls):.2f}-{max(walls):.2f}], server CPU "
                  f"{statistics.median(cpus):.2f} [{min(cpus):.2f}-{max(cpus):.2f}]")


if __name__ == "__main__":
    main()
