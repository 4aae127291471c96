"""
File records made up for the pure tests: L{make_record} and L{file_url} (the
index's, from L{tests.unit.core.indexes.test_index}) and L{record} at C{T0} (the views',
from L{tests.unit.core.indexes.test_views}); and L{LaterRecords}, a project loaded later.
"""

from collections.abc import Callable, Iterable

import attrs

from pypid.core.dists.model import FileRecord


def file_url(record):
    """The file URL the tests' index links files by."""
    return f"https://files.example/{record.project}/{record.filename}"


def make_record(project="holy-grail", version="1.0", kind="wheel", name=None, **kwargs):
    """Return a record for a file of C{project} C{version}."""
    dist = project.replace("-", "_")
    if kind == "wheel":
        filename, packagetype = f"{dist}-{version}-py3-none-any.whl", "bdist_wheel"
    else:
        filename, packagetype = f"{dist}-{version}.tar.gz", "sdist"
    values = dict(
        filename=filename,
        project=project,
        name=name or project,
        version=version,
        packagetype=packagetype,
        path=filename,
        size=100,
        sha256="a" * 64,
        upload_time=1767225600.0,
    )
    values.update(kwargs)
    return FileRecord(**values)


T0 = 1767225600.0


def record(project="foo", version="1.0", kind="wheel", filename=None, **kwargs):
    """A hosted file of C{project} C{version}."""
    dist = project.replace("-", "_")
    if filename is None:
        filename = (f"{dist}-{version}-py3-none-any.whl" if kind == "wheel"
                    else f"{dist}-{version}.tar.gz")
    values = dict(filename=filename, project=project, name=project, version=version,
                  packagetype="bdist_wheel" if kind == "wheel" else "sdist", path=None,
                  size=100, sha256="a" * 64, upload_time=T0)
    values.update(kwargs)
    return FileRecord(**values)


@attrs.frozen
class LaterRecords:
    """
    A L{pypid.core.indexes.project.LaterProject} whose records
    C{source()} gives (for the tests' plain callables).
    """

    name: str
    display_name: str
    count: int
    source: Callable[[], Iterable[FileRecord]]

    def __call__(self):
        """The records C{source()} gives."""
        return self.source()
