"""
The grammar of C{[ldap]}: RFC 4515 search filters and C{ldap://} and
C{ldaps://} URLs, checked by the configuration and filled by the directory
(L{pypid.auth.ldap}).

L{parse_filter} is held to ldaptor's C{parseFilter} by
C{tests/unit/auth/test_ldap.py}'s C{LdaptorDifferentialTests}, which counts
the filters each reads alike and the known disagreements.

A user name enters a filter escaped by ldaptor's C{escape} (RFC 4515's
escaping of C{*}, C{(}, C{)}, C{\\} and NUL), and the filter is then parsed
by L{parse_filter}: so a name is only ever one assertion value, never
filter syntax (C{alic*} matches no one but a user called C{alic*}).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, NoReturn
from urllib.parse import unquote, urlsplit

import attrs
from ldaptor.protocols import pureldap

DEFAULT_PORTS = {"ldap": 389, "ldaps": 636}


# -- filters (RFC 4515) ----------------------------------------------------------------------


class FilterError(ValueError):
    """A search filter cannot be read; the message says where and why."""


# RFC 4512: descr (keystring) or numericoid, then ";options".
_OID = r"(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)"
_ATTRIBUTE = re.compile(_OID + r"(?:;[A-Za-z0-9-]+)*\Z")
_ITEM = re.compile(
    r"(?P<attr>[^:=~<>]*)(?P<dn>:dn)?(?::(?P<rule>" + _OID + r"))?(?P<op>:=|~=|>=|<=|=)",
    re.IGNORECASE)
_HEX = re.compile(r"[0-9A-Fa-f]{2}")


#: ldaptor's objects (filters, messages, the client): the library has no types.
_Ldaptor = Any


def _decode_value(text: str, where: int) -> bytes:
    """The octets of an assertion value: C{\\XX} escapes decoded, the rest as UTF-8."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            if not _HEX.match(text, i + 1):
                raise FilterError(f"at {where + i}: '\\' must be followed by two hex digits "
                                  "(RFC 4515 escapes '*' as \\2a, '(' as \\28, ')' as \\29, "
                                  "'\\' as \\5c)")
            out.append(int(text[i + 1:i + 3], 16))
            i += 3
            continue
        if c == "\0":
            raise FilterError(f"at {where + i}: NUL must be escaped as \\00")
        out += c.encode("utf-8", "surrogatepass")
        i += 1
    return bytes(out)


class _FilterParser:
    """A recursive-descent reader of one RFC 4515 filter."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str) -> NoReturn:
        raise FilterError(f"at {self.pos}: {message}")

    def filter(self) -> _Ldaptor:
        if self.text[self.pos:self.pos + 1] != "(":
            self.fail("expected '('")
        self.pos += 1
        kind = self.text[self.pos:self.pos + 1]
        if kind in ("&", "|"):
            self.pos += 1
            parts = []
            while self.text[self.pos:self.pos + 1] == "(":
                parts.append(self.filter())
            if not parts:
                self.fail(f"'{kind}' needs at least one filter")
            result = (pureldap.LDAPFilter_and if kind == "&" else pureldap.LDAPFilter_or)(parts)
        elif kind == "!":
            self.pos += 1
            result = pureldap.LDAPFilter_not(self.filter())
        else:
            end = self.text.find(")", self.pos)
            if end < 0:
                self.fail("')' missing")
            inner = self.text.find("(", self.pos, end)
            if inner >= 0:
                self.pos = inner
                self.fail("'(' inside a value must be escaped as \\28")
            result = self.item(self.text[self.pos:end])
            self.pos = end
        if self.text[self.pos:self.pos + 1] != ")":
            self.fail("expected ')'")
        self.pos += 1
        return result

    def item(self, text: str) -> _Ldaptor:
        start = self.pos
        match = _ITEM.match(text)
        if match is None:
            self.fail("expected an attribute, an operator (=, ~=, >=, <= or :=) and a value")
        attr, op = match.group("attr"), match.group("op")
        value = text[match.end():]
        where = start + match.end()
        if attr and not _ATTRIBUTE.match(attr):
            self.fail(f"{attr!r} is not an attribute description")
        if op == ":=":
            if not attr and not match.group("rule"):
                self.fail("an extensible match needs an attribute or a matching rule")
            if "*" in value:
                self.fail("'*' in an extensible match's value must be escaped as \\2a")
            return pureldap.LDAPFilter_extensibleMatch(
                matchingRule=match.group("rule"), type=attr or None,
                matchValue=_decode_value(value, where),
                dnAttributes=True if match.group("dn") else None)
        if match.group("dn") or match.group("rule") or not attr:
            self.fail("expected an attribute before the operator")
        description = pureldap.LDAPAttributeDescription(value=attr)
        if op != "=":
            if "*" in value:
                self.fail(f"'*' after '{op}' must be escaped as \\2a")
            kind = {"~=": pureldap.LDAPFilter_approxMatch,
                    ">=": pureldap.LDAPFilter_greaterOrEqual,
                    "<=": pureldap.LDAPFilter_lessOrEqual}[op]
            return kind(attributeDesc=description,
                        assertionValue=pureldap.LDAPAssertionValue(_decode_value(value, where)))
        if value == "*":
            return pureldap.LDAPFilter_present(attr)
        if "*" not in value:
            return pureldap.LDAPFilter_equalityMatch(
                attributeDesc=description,
                assertionValue=pureldap.LDAPAssertionValue(_decode_value(value, where)))
        parts = value.split("*")
        substrings = []
        offset = where
        for number, part in enumerate(parts):
            if part:
                made = (pureldap.LDAPFilter_substrings_initial if number == 0
                        else pureldap.LDAPFilter_substrings_final if number == len(parts) - 1
                        else pureldap.LDAPFilter_substrings_any)
                substrings.append(made(_decode_value(part, offset)))
            offset += len(part) + 1
        if not substrings:
            # (RFC 4515's grammar allows it, but RFC 4511's SubstringFilter
            # needs at least one part: a server would refuse the search)
            self.fail(f"a substring assertion needs at least one part between its '*'s "
                      f"(RFC 4511); ({attr}=*) asks whether {attr} is present")
        return pureldap.LDAPFilter_substrings(type=attr, substrings=substrings)


def parse_filter(text: str) -> _Ldaptor:
    """
    Read an RFC 4515 search filter (C{(&(objectClass=person)(uid=alice))})
    into ldaptor's filter objects, ready to be sent.

    @raise FilterError: naming the position and what is wrong.
    """
    parser = _FilterParser(text)
    result = parser.filter()
    if parser.pos != len(text):
        parser.fail("text after the filter's closing ')'")
    return result


#: What a configured filter may refer to: the user name, and the user's DN.
PLACEHOLDERS = ("{user}", "{dn}")
_PLACEHOLDER = re.compile(r"\{(user|dn)\}")

# A value with every character a filter must escape, and a non-ASCII one:
# a placeholder outside a value cannot survive it.
_PROBE = "x*(y)\\\0é"


def fill_filter(template: str, **values: str) -> _Ldaptor:
    """
    The filter C{template} with each C{{name}} replaced by C{values[name]},
    escaped (see the module), and parsed.

    @raise FilterError: when the template is not a filter.
    """
    # (in one pass: a value that spells a placeholder stays a value)
    text = _PLACEHOLDER.sub(
        lambda match: pureldap.escape(values[match.group(1)])
        if match.group(1) in values else match.group(0), template)
    return parse_filter(text)


def check_filter_template(template: str, needed: tuple[str, ...]) -> None:
    """
    Check a configured filter: that it uses at least one of C{needed}
    (C{"{user}"}, C{"{dn}"}), no other C{{...}} placeholder, and is a
    filter whatever the placeholders are replaced with.

    @raise ValueError: saying what is wrong, for the configuration's message.
    """
    if not any(placeholder in template for placeholder in needed):
        raise ValueError("must contain " + " or ".join(needed) + ", such as (uid={user})")
    for placeholder in re.findall(r"\{[^{}]*\}", template):
        if placeholder not in needed:
            raise ValueError(f"{placeholder} is not a placeholder here; use "
                             + " or ".join(needed))
    try:
        parsed = parse_filter(template.replace("{user}", _MARKS["{user}"])
                              .replace("{dn}", _MARKS["{dn}"]))
    except FilterError as e:
        raise ValueError(f"not an LDAP filter (RFC 4515): {e}") from None
    try:
        fill_filter(template, user=_PROBE, dn=_PROBE)
    except FilterError:
        raise ValueError("a placeholder must stand inside a value, as in (uid={user})") \
            from None
    for item in _items(parsed):
        if isinstance(item, pureldap.LDAPFilter_substrings) and any(
                mark.encode() in part.value for part in item.substrings
                for mark in _MARKS.values()):
            raise ValueError("a placeholder must not stand next to an unescaped '*' (a "
                             "substring assertion): (uid={user}*) would find every name "
                             "that starts with the one typed; write (uid={user})")


# What stands for each placeholder while a template is checked: letters only
# (one value wherever it stands), of its length (so errors name template positions).
_MARKS = {"{user}": "QzUsrQ", "{dn}": "QzDn"}


def _items(parsed: _Ldaptor) -> Iterator[_Ldaptor]:
    """Every filter item of C{parsed}, inside and, or and not too."""
    if isinstance(parsed, (pureldap.LDAPFilter_and, pureldap.LDAPFilter_or)):
        for part in parsed.data:
            yield from _items(part)
    elif isinstance(parsed, pureldap.LDAPFilter_not):
        yield from _items(parsed.value)
    else:
        yield parsed


# -- servers -----------------------------------------------------------------------------------


@attrs.frozen
class LDAPServer:
    """One C{[ldap] url}: C{ldap://} (with StartTLS) or C{ldaps://}."""

    scheme: str
    host: str
    port: int

    @property
    def secure(self) -> bool:
        """Whether the connection is TLS from its first byte (C{ldaps://})."""
        return self.scheme == "ldaps"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_ldap_url(text: str) -> LDAPServer:
    """
    Read C{ldap://host[:port]} or C{ldaps://host[:port]} (DNs and filters
    are other keys of C{[ldap]}).

    @raise ValueError: saying what is allowed.
    """
    example = "such as ldaps://ldap.corp.example or ldap://ldap.corp.example:389"
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r} is not an LDAP URL, {example}") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{text!r}: expected ldap:// or ldaps:// and a host, {example}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{text!r}: only a scheme, a host and a port, {example}; the base "
                         "DNs and filters are user_base, user_filter, group_base and "
                         "group_filter")
    return LDAPServer(parts.scheme, unquote(parts.hostname), port or DEFAULT_PORTS[parts.scheme])
