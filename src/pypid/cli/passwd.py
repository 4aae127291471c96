"""
C{pypid-passwd}: turn a password into the argon2id hash that goes in the
configuration's C{[users]} section. It prints the hash and nothing else on
standard output, so that C{pypid-passwd < secret.txt} yields just the hash.
"""

from __future__ import annotations

import argparse
import sys
from getpass import getpass
from typing import AnyStr, TextIO

from pypid.auth.basic import MAX_PASSWORD_BYTES, decode_password
from pypid.auth.hashes import hash_password
from pypid.cli.broken_pipe import quiet_on_broken_pipe
from pypid.cli.common import ArgumentParser, UsageError

_DESCRIPTION = """\
Print an argon2id hash of a password, for the [users] section of pypid's
configuration file.

On a terminal the password is asked for twice and not echoed. Otherwise one
line is read from standard input (its trailing newline removed), so that

    pypid-passwd < password.txt

prints just the hash.
"""

_EPILOG = """\
Put the hash in the configuration file, one line per user:

    [users]
    alice = <the hash>

and restart pypid, or send it SIGHUP (systemctl reload pypid): the new
password works at once, even for a user the failed logins locked out.
"""


def _parser() -> ArgumentParser:
    """Return the command line parser; C{--help} is handled by L{main}."""
    parser = ArgumentParser(prog="pypid-passwd", description=_DESCRIPTION, epilog=_EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            add_help=False)
    parser.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    return parser


def _read_password(stdin: TextIO, stderr: TextIO) -> tuple[str, str | None]:
    """The password from the terminal (asked twice) or C{stdin}, and an error message or L{None}."""
    if stdin.isatty():
        first = getpass("Password: ", stream=stderr)
        second = getpass("Repeat password: ", stream=stderr)
        if first != second:
            return "", "the passwords do not match"
        return first, None
    # Bytes when there are bytes underneath, decoded as the server decodes
    # what clients send, so a password that is not UTF-8 still round-trips.
    binary = getattr(stdin, "buffer", None)
    line: str | bytes
    line = binary.readline() if binary is not None else stdin.readline()
    if not line:
        raise EOFError  # (not even an empty line: nothing was given)
    # The newline only: spaces may be part of the password.  A CR before it
    # is a Windows line ending, not a character anyone typed.
    if isinstance(line, str):
        return _strip_newline(line, "\n", "\r"), None
    return decode_password(_strip_newline(line, b"\n", b"\r")), None


def _strip_newline(line: AnyStr, newline: AnyStr, cr: AnyStr) -> AnyStr:
    """C{line} without its trailing newline, and a CR before it."""
    if line.endswith(newline):
        line = line[:-1]
        if line.endswith(cr):
            line = line[:-1]
    return line


def _encodable(password: str) -> bool:
    """Whether C{password} can be encoded as UTF-8 (no lone surrogates)."""
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@quiet_on_broken_pipe
def main(argv: list[str] | None = None, stdin: TextIO | None = None,
         stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """
    Run C{pypid-passwd}: print a hash of the password and return 0, or explain
    on C{stderr} and return 1 (a refused password) or 2 (a bad command line,
    or no password given). The streams are C{sys}'s when L{None}.
    """
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr

    parser = _parser()
    try:
        options = parser.parse_args(argv)
    except UsageError as e:
        return parser.refuse(stderr, str(e))
    if options.help:
        parser.print_help(stdout)
        return 0

    try:
        password, problem = _read_password(stdin, stderr)
    except EOFError:
        stderr.write("\npypid-passwd: no password given: type it at a terminal, or give it "
                     "as one line on standard input (pypid-passwd < file)\n")
        return 2
    except KeyboardInterrupt:
        stderr.write("\npypid-passwd: interrupted\n")
        return 1
    if problem is None and not password:
        problem = "the password is empty"
    if problem is None and not _encodable(password):
        problem = "the password is not valid text"
    if problem is None and len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        problem = f"the password is longer than {MAX_PASSWORD_BYTES} bytes"
    if problem is not None:
        stderr.write(f"pypid-passwd: {problem}\n")
        return 1

    stdout.write(hash_password(password) + "\n")
    stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
