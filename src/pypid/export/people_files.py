"""
The pages for people in a static export: the daemon's own pages
(L{pypid.core.formats.pages}), written as files, with search in the browser over
the export's C{packages.json} instead of the server's C{/api/search}::

    index.html                              the landing page
    search/index.html                       search (filled by the script)
    project/<project>/index.html            a project's latest version
    project/<project>/<version>/index.html  each version
    static/pypid.<digest>.css, .js, .svg    the pages' assets

A project's status (PEP 792) and the index's advisories are shown as the
daemon shows them to a reader who is not an admin: a quarantined project
has one page, its status and no file; another project's pages say its
status first thing, and a release the advisories name lists them.

Links are relative, so the tree can be served under any path. There is no
C{/login} (a static copy has no access control) and nothing is described
in the background: a file stored without details gets a page without its
description until the daemon has described it and the project is exported
again. The assets are the daemon's (L{pypid.assets}), under the same names.
"""

from __future__ import annotations

import hashlib

import attrs

from pypid.assets import Assets
from pypid.core.dists.details import Details
from pypid.core.dists.names import WHEEL
from pypid.core.formats import pages, project_page
from pypid.core.formats.catalog import Catalog
from pypid.core.indexes.index import Index
from pypid.core.indexes.project import Project
from pypid.export.plan import People, verdicts


def make_people(base_url: str | None = None, files_url: str | None = None) -> People:
    """
    The L{People} of an export.

    @param base_url: the export's public URL, for the install snippets, or
        L{None} to let the pages' script write the browser's own.
    @param files_url: where the files are served when not in the export.
    """
    assets = Assets.load()
    chrome = pages.Chrome(css=assets.css, js=assets.js, icon=assets.icon, base_url=base_url,
                          files_url=files_url, search="search/", suggest="packages.json",
                          login=None)
    # The markup's version: the modules that write it and the assets it
    # links; another one renders every project again.
    with open(pages.__file__, "rb") as f, open(project_page.__file__, "rb") as g:
        markup = f.read() + g.read()
    version = hashlib.sha256(markup + repr(chrome).encode("utf-8")).hexdigest()[:16]

    def site(index: Index) -> list[tuple[str, bytes]]:
        catalog = Catalog(index)
        projects = [p for p in index.projects() if p.files]
        landing = pages.landing_page(chrome, len(projects),
                                     sum(len(p.files) for p in projects), catalog.recent())
        return [("index.html", landing),
                ("search/index.html", pages.search_page(chrome, None, {}, "../")),
                *assets.files()]

    def project(index: Index, project: Project,
                details: dict[str, bytes | None]) -> list[tuple[str, bytes]]:
        if not project.files:
            return []
        status = index.status(project.name)
        if status is not None and status.quarantined:
            return [(f"project/{project.name}/index.html",
                     project_page.quarantined_page(chrome, project.name, project.display_name,
                                            status, "../../"))]
        advised = verdicts(index, project)
        files = list(project.files.values())
        outputs: list[tuple[str, bytes]] = []
        releases = project_page.releases_of(files)
        latest_view = project_page.project_view(project.name, project.display_name, files,
                                         releases=releases)
        if latest_view is None:  # (a project with files has a latest release)
            return []
        for release in releases:
            view = project_page.project_view(project.name, project.display_name, files,
                                      release.version, details=_details_of(release, details),
                                      releases=releases)
            if view is None:  # (each release of the files has a view)
                continue
            view = attrs.evolve(view, status=status, advisories=advised)
            # (folders named as the URL reads once decoded: "1.0+local")
            outputs.append((f"project/{project.name}/{release.version}/index.html",
                            project_page.project_page(chrome, view, "../../../")))
            if release.version == latest_view.current.version:
                outputs.append((f"project/{project.name}/index.html",
                                project_page.project_page(chrome, view, "../../")))
        return outputs

    return People(site=site, project=project, version=version)


def _details_of(release: project_page.Release, details: dict[str, bytes | None]) -> Details | None:
    """The L{Details} of a release's first wheel that has them, else its sdist's."""
    for f in sorted(release.files, key=lambda f: (f.packagetype != WHEEL, f.filename)):
        data = details.get(f.filename)
        if data is not None:
            try:
                return Details.from_bytes(data)
            except ValueError:
                continue
    return None
