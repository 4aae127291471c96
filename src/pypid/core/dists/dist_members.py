"""
What the members of a distribution must be that the zip and tar readers
(L{pypid.core.dists.dist_zip}, L{pypid.core.dists.dist_tar}) both hold
them to: an sdist's layout (L{SdistLayout}: one top-level directory named
for the file, one PKG-INFO, no name twice, links that stay inside), the
C{<name>-<version>} naming it shares with a wheel's C{.dist-info}
directory, and the error for a metadata file over its size limit.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable

from pypid.core.dists.member_names import MemberNames, UnsafeArchive, check_member_name
from pypid.core.dists.metadata import InvalidDistribution, short_text, version_of
from pypid.core.dists.names import ParsedFilename, normalize


def too_large(member: str, limit: int) -> InvalidDistribution:
    """The error for a metadata file over the size limit."""
    return InvalidDistribution(
        f"{member} is larger than {limit} bytes", field="metadata"
    )


def is_named_for(stem: str, parsed: ParsedFilename) -> bool:
    """
    Whether C{<name>-<version>} names the filename's project and version,
    whichever dash separates them.
    """
    expected = version_of(parsed.version)
    if expected is None:
        return False
    i = stem.find("-")
    while i >= 0:
        if normalize(stem[:i]) == parsed.project and version_of(stem[i + 1:]) == expected:
            return True
        i = stem.find("-", i + 1)
    return False


def _split_member_name(name: str) -> list[str]:
    """
    Split an sdist member name into path parts, ignoring a leading C{./} and
    the trailing C{/} of a directory.

    @raise InvalidDistribution: on an absolute path or a C{..} part, which
        no sdist has any use for (and pip refuses to unpack).
    """
    parts = name.split("/")
    while len(parts) > 1 and parts[0] == ".":
        parts.pop(0)
    if parts == ["."]:
        return []
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if parts[0] == "" or ".." in parts:
        raise InvalidDistribution(
            f"the sdist has a member outside its directory: {short_text(name)}"
        )
    return parts


class SdistLayout:
    """
    Follows an sdist's members in order: they must share one top-level
    directory, in which a single PKG-INFO is the metadata.

    Given the parsed filename (uploads), the directory must also be named
    for the filename's project and version, and no path may appear twice.
    """

    def __init__(self, expected: ParsedFilename | None = None) -> None:
        self.top: str | None = None
        self.pkg_info_seen = False
        self._expected = expected
        self._seen: set[str] | None = set() if expected is not None else None
        # the names as a file system would take them (case, Unicode forms)
        self._names: MemberNames | None = MemberNames() if expected is not None else None
        # symbolic links by path, and hard links as (path, target)
        self._symlinks: dict[str, str] = {}
        self._hardlinks: list[tuple[str, str]] = []
        #: the path of the member last added, as an extractor writes it
        self.path: str | None = None

    def add(self, name: str) -> bool:
        """
        Account for one member; return whether it is C{<top>/PKG-INFO}.
        """
        parts = _split_member_name(name)
        if not parts:
            self.path = None
            return False
        if self.top is None:
            self.top = parts[0]
            if self._expected is not None and not is_named_for(self.top, self._expected):
                raise InvalidDistribution(
                    f"the sdist's top-level directory {short_text(self.top)} is not named "
                    f"<name>-<version> for {self._expected.project!r} "
                    f"{self._expected.version!r}"
                )
        elif parts[0] != self.top:
            raise InvalidDistribution(
                "an sdist must hold a single top-level directory, found "
                f"{short_text(self.top)} and {short_text(parts[0])}"
            )
        if self._seen is not None:
            # (the spelling an extractor writes: no empty or "." parts)
            path = "/".join(p for p in parts if p not in ("", "."))
            if path in self._seen:
                raise InvalidDistribution(
                    f"the sdist holds {short_text(path)} more than once"
                )
            self._seen.add(path)
            self.path = path
        if parts[1:] != ["PKG-INFO"]:
            return False
        if self.pkg_info_seen:
            raise InvalidDistribution("the sdist holds more than one PKG-INFO")
        self.pkg_info_seen = True
        return True

    def require_pkg_info(self) -> None:
        """Refuse an sdist in which no PKG-INFO was seen."""
        if not self.pkg_info_seen:
            raise InvalidDistribution(
                "the sdist has no PKG-INFO in its top-level directory"
            )

    def check_name(self, name: str, is_dir: bool) -> None:
        """
        Apply the zip name rules of L{pypid.core.dists.member_names} to a tarball
        member's name (uploads): printable, no backslash or colon, capped
        in length, and not a second name for one file.
        """
        while name.startswith("./"):
            name = name[2:]
        if name in ("", "."):
            return
        try:
            check_member_name(name)
            # (called with an expected filename only, which made _names)
            self._names.add(name, is_dir)  # type: ignore[union-attr]
        except UnsafeArchive as e:
            raise InvalidDistribution(f"the sdist's {e}") from None

    def check_names(self) -> None:
        """Refuse two names for one file, once every name is known."""
        try:
            # (called with an expected filename only, which made _names)
            self._names.check()  # type: ignore[union-attr]
        except UnsafeArchive as e:
            raise InvalidDistribution(f"the sdist's {e}") from None

    def add_link(self, member: tarfile.TarInfo, symbolic: bool) -> None:
        """
        Account for a link (the member L{add} took last): an absolute target
        is refused now, the rest once every link is known (L{check_links}).
        """
        target = member.linkname
        if not target or target.startswith("/") or "\x00" in target:
            raise _link_outside(member.name)
        # (self.path is set: _check_tar_member calls this only then)
        if symbolic:
            self._symlinks[self.path] = target  # type: ignore[index]
        else:
            self._hardlinks.append((self.path, target))  # type: ignore[arg-type]

    def check_links(self) -> None:
        """
        Refuse links that an extractor would follow out of the top-level
        directory.

        Checking each link's target as text is not enough: C{a/up -> ..}
        and C{a/up/up -> ..} each stay inside, yet a member written under
        C{a/up/up/up/} lands outside, because the extractor follows the
        links in its path. So no member may lie under a symbolic link (a
        link is a file to L{check_names}, which refuses a name under a
        file, and runs first), and a link's target may not pass through
        another link on its way (only its last step may be one): then the
        text of every path is where it really leads, and a target that
        stays inside as text stays inside.
        """
        links = self._symlinks
        for path, target in links.items():
            self._follow(path, path.rpartition("/")[0].split("/"), target)
        for path, target in self._hardlinks:
            self._follow(path, [], target)

    def _follow(self, path: str, start: Iterable[str], target: str) -> None:
        """Walk C{target} from the directory C{start}, as the link C{path} leads."""
        parts = list(start)
        steps = [step for step in target.split("/") if step not in ("", ".")]
        for index, step in enumerate(steps):
            if step == "..":
                if len(parts) <= 1:
                    raise _link_outside(path)
                parts.pop()
                continue
            parts.append(step)
            if parts[0] != self.top:
                raise _link_outside(path)
            if index < len(steps) - 1 and "/".join(parts) in self._symlinks:
                raise InvalidDistribution(
                    f"the sdist's link {short_text(path)} leads through another link"
                )
        if len(parts) < 2 and not (parts and parts[0] == self.top):
            raise _link_outside(path)


def _link_outside(name: str) -> InvalidDistribution:
    return InvalidDistribution(f"the sdist's link {short_text(name)} points outside its directory")
