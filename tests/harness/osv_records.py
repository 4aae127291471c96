"""
OSV records of the tests' own (issue 27): schema-valid advisories of PyPI
projects, with ranges, version lists, aliases, severities and withdrawn
entries, written as a folder or a zip as the public databases export them.
"""

import json
import os
import zipfile


def osv_record(id, project, *, aliases=(), events=(), versions=(), severity=None, cvss=None,
               withdrawn=None, summary=None, ecosystem="PyPI", ranges=None):
    """
    A record of one project: C{events} an C{ECOSYSTEM} range's (such as
    C{[{"introduced": "1.0"}, {"fixed": "1.2"}]}), C{versions} its explicit
    list, C{severity} GitHub's word (C{database_specific}), C{cvss} a CVSS
    v3 vector, C{ranges} any ranges instead of C{events}.
    """
    affected = {"package": {"ecosystem": ecosystem, "name": project}}
    if ranges is not None:
        affected["ranges"] = list(ranges)
    elif events:
        affected["ranges"] = [{"type": "ECOSYSTEM", "events": list(events)}]
    if versions:
        affected["versions"] = list(versions)
    record = {"schema_version": "1.6.0", "id": id, "modified": "2026-11-01T00:00:00Z",
              "published": "2026-11-01T00:00:00Z", "aliases": list(aliases),
              "summary": summary if summary is not None else f"{id} in {project}",
              "details": "Found by the tests.", "affected": [affected],
              "references": [{"type": "ADVISORY", "url": f"https://advisories.example/{id}"}]}
    if severity is not None:
        record["database_specific"] = {"severity": severity}
    if cvss is not None:
        record["severity"] = [{"type": "CVSS_V3", "score": cvss}]
    if withdrawn is not None:
        record["withdrawn"] = withdrawn
    return record


#: CVSS v3.1 vectors of each severity.
CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
LOW = "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"


def write_folder(folder, records):
    """Write each record as C{<id>.json} in C{folder}; return the folder."""
    os.makedirs(folder, exist_ok=True)
    for record in records:
        with open(os.path.join(folder, record["id"] + ".json"), "w", encoding="utf-8") as f:
            json.dump(record, f)
    return folder


def write_zip(path, records, extra=()):
    """Write the records as C{<id>.json} entries of a zip (and C{extra} C{(name, bytes)})."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for record in records:
            z.writestr(record["id"] + ".json", json.dumps(record))
        for name, data in extra:
            z.writestr(name, data)
    return path
