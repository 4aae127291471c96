"""
What the start log says before anything else starts: where the packages
and the snapshot are, as absolute paths (a relative one in a file is read
against the file's folder, a default against the folder the server was
started in: the log says which came out); a warning while a user still has
the password the shipped C{etc/pypid.ini} gives its C{admin}, louder when
a listener is on an address other machines reach (the TLS recipe's
C{https:8443} is every IPv4 address); and that nobody can upload where no
one can log in.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.logger import Logger

from pypid.config import Config
from pypid.config.server_settings import on_network

log = Logger()

#: The hash C{etc/pypid.ini} ships for its user C{admin}, of the password
#: C{admin} (a test holds the file to it).
SHIPPED_HASH = ("$argon2id$v=19$m=19456,t=2,p=1$WTIMj0BMY+mnU/ikHiBajg$"
                "bWa5ijJvMT2D0Rd9VhsiOJEo4MXvbq99ylMwSQ2r1Bo")


def shipped_password_users(config: Config) -> list[str]:
    """The users whose password is still the shipped one."""
    return sorted(name for name, hashed in config.users.items() if hashed == SHIPPED_HASH)


def nobody_logs_in(config: Config) -> bool:
    """
    Whether no one can log in, so no one can upload: the embedded default's
    case (C{twistd -n pypid} with no C{--config}), where twine's upload
    then got a bare 401 and the log had said nothing of it.
    """
    return not (config.users or config.ldap.url or config.sso.issuer or config.publishers)


def storage_line(config: Config) -> str:
    """Where the packages are kept, in one phrase."""
    section = config.bucket
    if section is None:
        return f"local folder {config.storage.path}"
    return section.describe() + (f", prefix {section.prefix}" if section.prefix else "")


class StartNotes(Service):
    """Logs where the data is and the shipped password's warning, as the server starts."""

    def __init__(self, config: Config) -> None:
        self._config = config

    def startService(self) -> None:
        Service.startService(self)
        log.info("Storage: {storage}; snapshot: {snapshot}",
                 storage=storage_line(self._config), snapshot=self._config.server.snapshot)
        network = [line for line in self._config.server.listen if on_network(line)]
        who = (f", and this server is reachable from the network ({', '.join(network)}): "
               "anyone on the network" if network else ": anyone who can reach this server")
        if nobody_logs_in(self._config):
            log.info("No user can log in (no [users], [auth] htpasswd, [ldap], [sso] or "
                     "[publishers]): nobody can upload, and twine gets 401. Run pypid-passwd, "
                     "put the hash it prints in [users] (alice = $argon2id$...), and send SIGHUP")
        for name in shipped_password_users(self._config):
            log.warn("The user {name} still has the password etc/pypid.ini ships (admin){who} "
                     "can log in as {name}. Run pypid-passwd, put the hash it prints in "
                     "[users], and send SIGHUP", name=name, who=who)
