"""
Reading an htpasswd file, so that pypiserver's users can move over as they
are. L{parse_htpasswd} is pure logic over the text; L{read_htpasswd} reads
the file first (the configuration calls it once, at start-up).

bcrypt (C{$2y$}, C{$2b$}, C{$2a$}) and argon2id entries are accepted. The
weak schemes htpasswd can also write are refused, with the line named, so
the administrator re-hashes those passwords: plaintext, DES crypt, MD5
(C{$apr1$}, C{$1$}), SHA-1 (C{{SHA}}), and the SHA-2 crypt schemes
(C{$5$}, C{$6$}), which are fast enough to guess offline.
"""

from __future__ import annotations

import re

from pypid.auth.basic import USER_NAME
from pypid.auth.hashes import check_hash_format, is_bcrypt

_WEAK = (
    ("$apr1$", "Apache MD5"),
    ("$1$", "MD5 crypt"),
    ("{SHA}", "SHA-1"),
    ("$5$", "SHA-256 crypt"),
    ("$6$", "SHA-512 crypt"),
)


def parse_htpasswd(text: str, source: str) -> dict[str, str]:
    """
    The users of an htpasswd file: C{{name: hash}}.

    @param source: the file's name, for messages.
    @raise ValueError: naming the file, the line and the user (never the
        hash) of the first entry that cannot be used.
    """
    users = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition(":")
        where = f"{source}:{number}"
        if not sep or not USER_NAME.match(name):
            raise ValueError(f"{where}: expected user:hash, with a user name of 1 to 64 "
                             "letters, digits, '.', '_', '@' or '-'")
        if name in users:
            raise ValueError(f"{where}: user {name!r} is listed twice")
        users[name] = _check(value.strip(), f"{where}: user {name!r}")
    return users


def read_htpasswd(path: str) -> dict[str, str]:
    """
    Read the htpasswd file at C{path} and return its users: C{{name: hash}}.

    @raise ValueError: when the file cannot be read or is not UTF-8 text,
        or as L{parse_htpasswd} does; the message names the file.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    return parse_htpasswd(text, path)


def _check(value: str, where: str) -> str:
    if is_bcrypt(value):
        return value
    for prefix, scheme in _WEAK:
        if value.startswith(prefix):
            raise ValueError(f"{where}: {scheme} hashes are too weak; set the password again "
                             "with htpasswd -B (bcrypt) or pypid-passwd (argon2id)")
    if value.startswith("$argon2"):
        try:
            check_hash_format(value)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        return value
    if value.startswith("$2"):
        raise ValueError(f"{where}: not a well-formed bcrypt hash")
    if len(value) == 13 and re.match(r"^[./A-Za-z0-9]{13}$", value):
        raise ValueError(f"{where}: DES crypt hashes are too weak; set the password again "
                         "with htpasswd -B (bcrypt) or pypid-passwd (argon2id)")
    raise ValueError(f"{where}: a plaintext password or an unknown scheme is never accepted; "
                     "use htpasswd -B (bcrypt) or pypid-passwd (argon2id)")
