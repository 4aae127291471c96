"""
C{pypid-token}: issue, list and revoke a server's API tokens (as an admin).
C{issue} prints the new token once: give it to CI as the password of
C{__token__}; C{list} shows every token, never a secret.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO
from urllib.parse import quote, urlencode

from pypid.cli.broken_pipe import quiet_on_broken_pipe
from pypid.cli.server_client import CliError, add_server_options, json_answer, server_from
from pypid.core.formats.console_pages import when_text


@quiet_on_broken_pipe
def main(argv: list[str] | None = None, out: TextIO = sys.stdout,
         err: TextIO = sys.stderr) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="pypid-token", description="Issue, list and revoke a pypid server's API tokens.")
    add_server_options(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    issue = commands.add_parser("issue", help="issue a token (printed once)")
    issue.add_argument("--actions", default="upload", help="read, upload, or 'read upload'")
    issue.add_argument("--projects", default="", help="names or globs; none for all")
    issue.add_argument("--indexes", default="",
                       help="the indexes it may be used in; none for all")
    issue.add_argument("--expires", default="", help="a duration such as 90d; none for never")
    issue.add_argument("--description", default="")
    commands.add_parser("list", help="list the tokens")
    revoke = commands.add_parser("revoke", help="revoke a token at once")
    revoke.add_argument("id")
    options = parser.parse_args(argv)
    try:
        server = server_from(options)
        if options.command == "issue":
            fields = {"actions": options.actions, "projects": options.projects,
                      "expires": options.expires, "description": options.description}
            if options.indexes:
                fields["indexes"] = options.indexes
            body = urlencode(fields).encode()
            token = json_answer(server, "POST", "api/tokens", {
                "Content-Type": "application/x-www-form-urlencoded"}, body)
            out.write(f"{token['token']}\n")
            scope = f" in {' '.join(token['indexes'])}" if token.get("indexes") else ""
            err.write(f"token {token['id']}: {' '.join(token['actions'])} on "
                      f"{' '.join(token['projects']) or 'every project'}{scope}; "
                      "shown only now\n")
        elif options.command == "list":
            listed = json_answer(server, "GET", "api/tokens")["tokens"]
            for token in listed:
                out.write(f"{token['id']}  {token['user']}  {' '.join(token['actions'])}  "
                          f"{' '.join(token['projects']) or '*'}  "
                          + (f"indexes={','.join(token['indexes'])}  "
                             if token.get("indexes") else "")
                          + (f"ENDED ({token['ended']['reason']})  " if token.get("ended")
                             # (the time as the console shows it, in UTC)
                             else f"expires={when_text(token['expires'])}  ")
                          + f"{token['description']}\n")
        else:
            with server.request("DELETE", f"api/tokens/{quote(options.id)}") as response:
                response.read()
            out.write(f"revoked {options.id}\n")
    except CliError as e:
        err.write(f"pypid-token: {e}\n")
        return e.status
    return 0


if __name__ == "__main__":
    sys.exit(main())
