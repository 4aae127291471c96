"""
A real OpenLDAP server for the tests: Debian's C{slapd}, configured by the
test itself in a folder of its own (a C{slapd.conf}, an C{mdb} database
filled with C{slapadd}), listening on a free loopback port with StartTLS
(and C{ldaps://} on a second port) from a certificate of L{tests.harness.tlsca}.

The tree (L{TREE}) holds people under C{ou=people}, a service account under
C{ou=services}, and groups of both kinds under C{ou=groups}:
C{groupOfNames} (C{member}) and C{groupOfUniqueNames} (C{uniqueMember}).
Changes made while it runs (a user removed from a group) go through
C{ldapmodify} as the directory's manager, over StartTLS, as an operator's
tool would.
"""

import base64
import os
import subprocess
import time

from tests.harness.e2e import (
    ChildProcess,
    E2EFailure,
    _die_with_parent,
    _live,
    free_port,
    start_on_free_port,
)
from tests.harness.system import require
from tests.harness.tlsca import TestCA

SUFFIX = "dc=example,dc=test"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
MANAGER = f"cn=manager,{SUFFIX}"
MANAGER_PASSWORD = "manager-secret"
SERVICE = f"cn=pypid,ou=services,{SUFFIX}"
SERVICE_PASSWORD = "service-secret"

#: user id -> (password, groups of groupOfNames, groups of groupOfUniqueNames)
PEOPLE_ENTRIES = {
    "alice": ("alice-pässword", ["dev"], []),
    "bob": ("bob-password", ["pypi-admins"], []),
    "carol": ("carol-password", [], []),
    "dave": ("dave-password", [], ["qa"]),
    "zoë": ("zoë-password", ["dev"], []),
    "erin": ("erin-password", ["dev"], []),
    # a name made of every character a filter must escape
    "o*(brien)\\": ("brien-password", ["dev"], []),
}


def dn_of(uid):
    """The DN of a person, escaped as a DN (RFC 4514) needs."""
    escaped = "".join("\\" + c if c in ',+"\\<>;=#' else c for c in uid)
    return f"uid={escaped},{PEOPLE}"


def _ldif_value(name, value):
    """One LDIF line, base64 when the value is not plain ASCII (RFC 2849)."""
    if value.isascii() and value.isprintable() and not value.startswith((" ", ":", "<")):
        return f"{name}: {value}"
    return f"{name}:: {base64.b64encode(value.encode()).decode()}"


def tree_ldif():
    """The LDIF of the test directory."""
    entries = [
        [f"dn: {SUFFIX}", "objectClass: dcObject", "objectClass: organization",
         "o: example", "dc: example"],
        [f"dn: {PEOPLE}", "objectClass: organizationalUnit", "ou: people"],
        [f"dn: {GROUPS}", "objectClass: organizationalUnit", "ou: groups"],
        [f"dn: ou=services,{SUFFIX}", "objectClass: organizationalUnit", "ou: services"],
        [f"dn: {SERVICE}", "objectClass: organizationalRole", "objectClass: simpleSecurityObject",
         "cn: pypid", f"userPassword: {SERVICE_PASSWORD}"],
    ]
    names, unique = {}, {}
    for uid, (password, groups, unique_groups) in PEOPLE_ENTRIES.items():
        entries.append([_ldif_value("dn", dn_of(uid)), "objectClass: inetOrgPerson",
                        _ldif_value("uid", uid), _ldif_value("cn", uid), "sn: test",
                        _ldif_value("userPassword", password)])
        for group in groups:
            names.setdefault(group, []).append(dn_of(uid))
        for group in unique_groups:
            unique.setdefault(group, []).append(dn_of(uid))
    for group, members in names.items():
        entries.append([f"dn: cn={group},{GROUPS}", "objectClass: groupOfNames", f"cn: {group}",
                        *[_ldif_value("member", member) for member in members]])
    for group, members in unique.items():
        entries.append([f"dn: cn={group},{GROUPS}", "objectClass: groupOfUniqueNames",
                        f"cn: {group}", *[_ldif_value("uniqueMember", m) for m in members]])
    return "\n\n".join("\n".join(entry) for entry in entries) + "\n"


_CONFIG = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {folder}/slapd.pid
TLSCertificateFile {certificate}
TLSCertificateKeyFile {key}
database mdb
maxsize 10485760
suffix "{suffix}"
rootdn "{manager}"
rootpw {manager_password}
directory {folder}/db
access to attrs=userPassword by anonymous auth by self read by * none
access to * by * read
"""


class Slapd(ChildProcess):
    """
    One C{slapd} in C{folder}: started by L{start} on a free loopback port
    (StartTLS on C{ldap://}, and C{ldaps://} on C{tls_port}), stopped and
    started again on the same ports by L{stop} and L{start}.

    @ivar ca: the L{TestCA} whose root signs the server's certificate
        (C{ca.root_path} is the bundle clients trust).
    """

    what = "slapd"

    def __init__(self, folder):
        self.programs = require({"slapd": "slapd", "slapadd": "slapd",
                                 "ldapmodify": "ldap-utils",
                                 "ldapwhoami": "ldap-utils"})
        self.folder = os.path.abspath(folder)
        os.makedirs(os.path.join(self.folder, "db"), exist_ok=True)
        self.ca = TestCA(os.path.join(self.folder, "ca"))
        files = self.ca.issue("slapd")
        self.config = os.path.join(self.folder, "slapd.conf")
        with open(self.config, "w", encoding="utf-8") as f:
            f.write(_CONFIG.format(folder=self.folder, certificate=files.fullchain,
                                   key=files.key, suffix=SUFFIX, manager=MANAGER,
                                   manager_password=MANAGER_PASSWORD))
        ldif = os.path.join(self.folder, "tree.ldif")
        with open(ldif, "w", encoding="utf-8") as f:
            f.write(tree_ldif())
        done = subprocess.run([self.programs["slapadd"], "-q", "-f", self.config, "-l", ldif],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            raise E2EFailure("slapadd failed:\n" + done.stdout.decode("utf-8", "replace"))
        self.log_path = os.path.join(self.folder, "slapd.log")
        self.port = None
        self.tls_port = None

    @property
    def url(self):
        """The C{ldap://} URL (StartTLS)."""
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def tls_url(self):
        """The C{ldaps://} URL."""
        return f"ldaps://127.0.0.1:{self.tls_port}"

    def _launch(self, port):
        if self.tls_port is None or port != self.port:
            self.tls_port = free_port()
        log = open(self.log_path, "ab")
        try:
            return subprocess.Popen(
                [self.programs["slapd"], "-d", "0", "-f", self.config,
                 "-h", f"ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{self.tls_port}/"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent)
        finally:
            log.close()

    def _ready(self):
        done = self.modify_run([self.programs["ldapwhoami"], "-x", "-H", self.url, "-ZZ"],
                               check=False)
        return done.returncode == 0

    def _log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def start(self):
        """Start it (on its former ports, when it ran before); wait until it answers."""
        if self.port is None:
            return start_on_free_port(self, self._launch, self._ready, self._log)
        self.process = self._launch(self.port)
        _live.add(self)
        deadline = time.monotonic() + 20
        while not self._ready():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise E2EFailure("slapd did not start again:\n" + self._log()[-3000:])
            time.sleep(0.05)
        return self

    def modify_run(self, argv, ldif=None, check=True):
        """Run an C{ldap-utils} program against it, trusting the test CA."""
        env = dict(os.environ, LDAPTLS_CACERT=self.ca.root_path, LDAPTLS_REQCERT="demand")
        done = subprocess.run(argv, input=(ldif or "").encode(), env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False,
                              timeout=20)
        if check and done.returncode != 0:
            raise E2EFailure(f"{argv[0]} failed:\n" + done.stdout.decode("utf-8", "replace"))
        return done

    def modify(self, ldif):
        """Apply an LDIF change as the directory's manager (over StartTLS)."""
        self.modify_run([self.programs["ldapmodify"], "-x", "-H", self.url, "-ZZ",
                         "-D", MANAGER, "-w", MANAGER_PASSWORD], ldif)

    def remove_member(self, group, uid):
        """Take a person out of a C{groupOfNames}."""
        self.modify(f"dn: cn={group},{GROUPS}\nchangetype: modify\ndelete: member\n"
                    f"{_ldif_value('member', dn_of(uid))}\n")

    def add_member(self, group, uid):
        """Put a person into a C{groupOfNames}."""
        self.modify(f"dn: cn={group},{GROUPS}\nchangetype: modify\nadd: member\n"
                    f"{_ldif_value('member', dn_of(uid))}\n")
