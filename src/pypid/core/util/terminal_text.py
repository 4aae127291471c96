"""
Text a client chose (a yank reason, a name, an audit entry's detail)
made safe to print on an operator's terminal, and (L{short_line}) bounded
for another party's answer quoted in an error.
"""

from __future__ import annotations

import re

#: Characters a terminal may act on, shown escaped: C0 and C1 controls, DEL,
#: the line and paragraph separators, and the marks that reorder text
#: (bidirectional controls), and the backslash that escapes them.
_UNSAFE = re.compile(r"[\\\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u061c"
                     r"\u202a-\u202e\u2066-\u2069]")


def escaped(text: str) -> str:
    """
    C{text} with every character a terminal may act on written as an
    escape (C{\\n}, C{\\x1b}, C{\\u2028}, C{\\\\}): one entry is one line,
    and text a client chose sends no escape sequence.
    """
    def escape(match: re.Match[str]) -> str:
        char = match.group()
        if char in _NAMED:
            return _NAMED[char]
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return _UNSAFE.sub(escape, text)


def short_line(text: str, limit: int = 200) -> str:
    """
    C{text} L{escaped} and cut to at most C{limit} characters (C{...}
    ending a cut one). (An HTTP reason phrase must be ASCII besides:
    C{pypid.auth.oidc_errors.short}.)
    """
    line = escaped(text)
    return line if len(line) <= limit else line[:limit - 3] + "..."


_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
