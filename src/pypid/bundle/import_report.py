"""What an import of a bundle or another server's files did, for people."""

from __future__ import annotations

import attrs

from pypid.core.util.units import counted


@attrs.define
class ImportReport:
    """
    What an import did, for people; L{failed} when anything was refused or
    in conflict.

    @ivar present: filenames already stored with the same bytes.
    @ivar conflicts: C{(filename, why)}: not taken, and nothing overwritten.
    @ivar refused: C{(origin, why)}: not taken.
    @ivar ignored: C{(origin, why)}: what a source holds that is not a
        distribution by design (documentation, test results); not failures.
    @ivar buried: tombstones added (C{buried_present}: there already).
    @ivar audit_kept: where the source's audit log files were kept (under
        the destination log's C{imported/}), or L{None} when it had none.
    @ivar audit_broken: the broken links of their chains (the source's, as
        it was exported: reported, not refused).
    @ivar audit_notes: what else their check said (pruned days).
    @ivar audit_new: whether any of them was not kept already (by an
        import of the same bundle before).
    @ivar statuses: C{(project, what)} of each project's status kept here
        from the source (C{what} says the status, and who set it there).
    """

    imported: list[str] = attrs.field(factory=list)
    present: list[str] = attrs.field(factory=list)
    conflicts: list[tuple[str, str]] = attrs.field(factory=list)
    refused: list[tuple[str, str]] = attrs.field(factory=list)
    ignored: list[tuple[str, str]] = attrs.field(factory=list)
    buried: list[str] = attrs.field(factory=list)
    buried_present: int = 0
    audit_kept: str | None = None
    audit_files: int = 0
    audit_entries: int = 0
    audit_broken: list[str] = attrs.field(factory=list)
    audit_notes: list[str] = attrs.field(factory=list)
    audit_new: bool = False
    statuses: list[tuple[str, str]] = attrs.field(factory=list)
    statuses_present: int = 0
    #: C{(filename, why)}: wheels whose tags differ from their filename's,
    #: taken because C{allow_tag_mismatch} names their project
    tag_mismatches: list[tuple[str, str]] = attrs.field(factory=list)

    @property
    def failed(self) -> bool:
        """Whether anything was refused or in conflict (the exit status is then 1)."""
        return bool(self.conflicts or self.refused)

    def lines(self, verbose: bool = False) -> list[str]:
        """The report as lines of text."""
        out = []
        if self.statuses or self.statuses_present:
            out.append(f"project statuses: {len(self.statuses)} kept, "
                       f"{self.statuses_present} already there")
            out += [f"  {name}: {what}" for name, what in self.statuses]
        for title, names in (("imported", self.imported), ("already there", self.present)):
            out.append(f"{title}: {len(names)}")
            out += [f"  {name}" for name in names] if verbose else []
        for title, pairs in (("conflicts", self.conflicts), ("refused", self.refused)):
            out.append(f"{title}: {len(pairs)}")
            out += [f"  {name}: {why}" for name, why in pairs]
        if self.tag_mismatches:
            out.append(f"taken although their tags differ from the filename "
                       f"(allow_tag_mismatch): {len(self.tag_mismatches)}")
            out += [f"  {name}: {why}" for name, why in self.tag_mismatches]
        if self.ignored:
            out.append(f"ignored: {len(self.ignored)}")
            out += [f"  {origin}: {why}" for origin, why in self.ignored]
        out.append(f"tombstones: {len(self.buried)} added, {self.buried_present} already there")
        if self.audit_kept is not None:
            state = ("its chain is intact" if not self.audit_broken
                     else f"its chain has {counted(len(self.audit_broken), 'broken link')}")
            kept = "kept" if self.audit_new else "already kept"
            out.append(f"audit log of the source: {counted(self.audit_files, 'file')}, "
                       f"{counted(self.audit_entries, 'entry', 'entries')}, {kept} under "
                       f"{self.audit_kept}; {state}")
            out += [f"  {line}" for line in [*self.audit_broken, *self.audit_notes]]
        return out
