"""
Build real, installable wheels and sdists in memory for the tests.

The wheels are complete (METADATA, WHEEL, RECORD with correct hashes and a
tiny importable module), so twine, pip and uv accept them; nothing here needs
a build backend or the network.
"""

import base64
import hashlib
import io
import json
import tarfile
import zipfile


def metadata_text(name, version, requires_python=None, requires_dist=(), summary=None,
                  metadata_version="2.1", extra_headers=()):
    """Return core metadata text for a distribution."""
    lines = [
        f"Metadata-Version: {metadata_version}",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {summary or 'Test project ' + name}",
    ]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    for req in requires_dist:
        lines.append(f"Requires-Dist: {req}")
    lines.extend(extra_headers)
    return "\n".join(lines) + "\n\nA test project.\n"


def _record_hash(data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def wheel_text(tag="py3-none-any"):
    """
    The WHEEL file of a wheel whose filename carries C{tag} (expanded, one
    Tag line each; a build tag first, C{1-py3-none-any}, is its Build line).
    """
    *build, python, abi, platform = tag.split("-")
    tags = "".join(f"Tag: {p}-{a}-{pl}\n" for p in python.split(".") for a in abi.split(".")
                   for pl in platform.split("."))
    built = "".join(f"Build: {b}\n" for b in build)
    return f"Wheel-Version: 1.0\nGenerator: pypid-tests\nRoot-Is-Purelib: true\n{built}{tags}"


def make_wheel(name, version, requires_python=None, requires_dist=(), tag="py3-none-any",
               metadata=None, extra_files=(), module_text=None, variant=None,
               variant_json=None):
    """
    Return C{(filename, bytes)} of a wheel for C{name} C{version}.

    @param metadata: exact METADATA text to use instead of the generated one.
    @param extra_files: C{(arcname, bytes)} pairs added to the archive.
    @param variant: a variant wheel's label (PEP 825), put after its tags;
        its C{variant.json} is C{variant_json} (bytes, or an object dumped),
        by default L{variant_document} of the label.
    """
    dist = name.replace("-", "_").replace(".", "_").lower()
    filename = f"{dist}-{version}-{tag}.whl"
    distinfo = f"{dist}-{version}.dist-info"
    if variant is not None:
        filename = f"{dist}-{version}-{tag}-{variant}.whl"
        if variant_json is None:
            variant_json = variant_document(variant)
        if not isinstance(variant_json, bytes):
            variant_json = json.dumps(variant_json).encode()
        extra_files = (*extra_files, (f"{distinfo}/variant.json", variant_json))
    if metadata is None:
        metadata = metadata_text(name, version, requires_python, requires_dist)
    meta_bytes = metadata.encode("utf-8") if isinstance(metadata, str) else metadata
    module = (module_text or f"VERSION = {version!r}\n").encode("utf-8")
    files = [
        (f"{dist}/__init__.py", module),
        *extra_files,
        (f"{distinfo}/METADATA", meta_bytes),
        (f"{distinfo}/WHEEL", wheel_text(tag).encode()),
    ]
    record = "".join(f"{arc},{_record_hash(data)},{len(data)}\n" for arc, data in files)
    record += f"{distinfo}/RECORD,,\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for arc, data in files:
            zf.writestr(arc, data)
        zf.writestr(f"{distinfo}/RECORD", record)
    return filename, buf.getvalue()


#: the schema URL of the variant wheels the tests make (PEP 825, format 0.1.1)
VARIANT_SCHEMA = "https://variants-schema.wheelnext.example/peps/825/v0.1.1.json"


def variant_document(label, properties=None, namespaces=("x86_64",)):
    """
    A wheel's C{variant.json} (PEP 825) for C{label}: C{properties}
    (namespace -> feature -> values), by default C{x86_64 :: level :: <label>}
    (none for C{null}).
    """
    if properties is None:
        properties = {} if label == "null" else {"x86_64": {"level": [label]}}
    return {"$schema": VARIANT_SCHEMA, "default-priorities": {"namespace": list(namespaces)},
            "variants": {label: properties}}


def make_sdist(name, version, requires_python=None, requires_dist=(), metadata=None,
               metadata_version="2.2", extra_files=()):
    """Return C{(filename, bytes)} of a PEP 625 sdist with a PKG-INFO."""
    dist = name.replace("-", "_").replace(".", "_").lower()
    filename = f"{dist}-{version}.tar.gz"
    top = f"{dist}-{version}"
    if metadata is None:
        metadata = metadata_text(name, version, requires_python, requires_dist,
                                 metadata_version=metadata_version)
    meta_bytes = metadata.encode("utf-8") if isinstance(metadata, str) else metadata
    pyproject = (
        "[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n"
        f"[project]\nname = \"{name}\"\nversion = \"{version}\"\n"
    ).encode()
    members = [
        (f"{top}/PKG-INFO", meta_bytes),
        (f"{top}/pyproject.toml", pyproject),
        (f"{top}/{dist}/__init__.py", f"VERSION = {version!r}\n".encode()),
        *extra_files,
    ]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for arc, data in members:
            info = tarfile.TarInfo(arc)
            info.size = len(data)
            info.mtime = 1700000000
            tf.addfile(info, io.BytesIO(data))
    return filename, buf.getvalue()


class ZeroFill:
    """
    A readable stand-in for C{size} zero bytes, so that tests can put huge
    members in archives without holding them in memory.
    """

    def __init__(self, size):
        self.size = size
        self._left = size

    def read(self, n=-1):
        """Return up to C{n} more zero bytes."""
        if n is None or n < 0 or n > self._left:
            n = self._left
        self._left -= n
        return bytes(n)


def make_zip(members, compresslevel=1):
    """
    Return the bytes of a deflated zip holding C{members}.

    @param members: C{(arcname, data)} pairs; C{data} is L{bytes} or a
        L{ZeroFill}, which is streamed in chunks.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as zf:
        for arc, data in members:
            if isinstance(data, ZeroFill):
                with zf.open(arc, "w", force_zip64=data.size > 0x7FFFFFFF) as out:
                    while chunk := data.read(1 << 20):
                        out.write(chunk)
            else:
                zf.writestr(arc, data)
    return buf.getvalue()


def zip_members(data):
    """The C{(arcname, bytes)} members of zip bytes, in order."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(info.filename, zf.read(info)) for info in zf.infolist()]


def set_zip_member_size(data, arcname, file_size):
    """
    Return zip bytes in which member C{arcname} declares C{file_size} as its
    uncompressed size, in both its local and its central directory header,
    whatever it really holds.
    """
    data = bytearray(data)
    name = arcname.encode("utf-8")
    # Central directory header: signature, 24 bytes in is the uncompressed
    # size, 28 the name length, 46 the name.
    pos = 0
    while (pos := data.find(b"PK\x01\x02", pos)) >= 0:
        name_length = int.from_bytes(data[pos + 28:pos + 30], "little")
        if bytes(data[pos + 46:pos + 46 + name_length]) == name:
            data[pos + 24:pos + 28] = file_size.to_bytes(4, "little")
            local = int.from_bytes(data[pos + 42:pos + 46], "little")
            # Local file header: the uncompressed size is 22 bytes in.
            data[local + 22:local + 26] = file_size.to_bytes(4, "little")
            return bytes(data)
        pos += 4
    raise KeyError(arcname)


def make_tarball(members, mode="w:gz", compresslevel=1):
    """
    Return the bytes of a tarball holding C{members}.

    @param members: C{(arcname, data)} pairs; C{data} is L{bytes}, a
        L{ZeroFill}, or L{None} for a directory.
    @param mode: the C{tarfile} write mode, choosing the compression.
    """
    buf = io.BytesIO()
    kwargs = {"compresslevel": compresslevel} if mode in ("w:gz", "w:bz2") else {}
    with tarfile.open(fileobj=buf, mode=mode, **kwargs) as tf:
        for arc, data in members:
            info = tarfile.TarInfo(arc)
            info.mtime = 1700000000
            if data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            elif isinstance(data, ZeroFill):
                info.size = data.size
                tf.addfile(info, data)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_sdist_zip(name, version, metadata=None, metadata_version="2.2"):
    """Return C{(filename, bytes)} of a legacy C{.zip} sdist with a PKG-INFO."""
    dist = name.replace("-", "_").replace(".", "_").lower()
    top = f"{dist}-{version}"
    if metadata is None:
        metadata = metadata_text(name, version, metadata_version=metadata_version)
    meta_bytes = metadata.encode("utf-8") if isinstance(metadata, str) else metadata
    data = make_zip([
        (f"{top}/", b""),
        (f"{top}/PKG-INFO", meta_bytes),
        (f"{top}/setup.py", b"from setuptools import setup\nsetup()\n"),
    ])
    return f"{top}.zip", data


def write_random_wheel(directory, name, version, payload_size, chunk_size=1 << 20):
    """
    Write a wheel whose one big member holds C{payload_size} random bytes,
    stored uncompressed, and return its path.

    The payload is streamed from C{os.urandom} in chunks, so building a wheel
    of hundreds of megabytes holds only one chunk in memory; the RECORD
    digest is computed on the way.
    """
    import os

    dist = name.replace("-", "_").replace(".", "_").lower()
    filename = f"{dist}-{version}-py3-none-any.whl"
    distinfo = f"{dist}-{version}.dist-info"
    small = [
        (f"{dist}/__init__.py", f"VERSION = {version!r}\n".encode()),
        (f"{distinfo}/METADATA", metadata_text(name, version).encode("utf-8")),
        (f"{distinfo}/WHEEL",
         b"Wheel-Version: 1.0\nGenerator: pypid-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
    ]
    payload = f"{dist}/payload.bin"
    path = os.path.join(directory, filename)
    digest = hashlib.sha256()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        with zf.open(payload, "w", force_zip64=payload_size > 0x7FFFFFFF) as out:
            left = payload_size
            while left:
                chunk = os.urandom(min(chunk_size, left))
                digest.update(chunk)
                out.write(chunk)
                left -= len(chunk)
        for arc, data in small:
            zf.writestr(arc, data)
        record_hash = "sha256=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
        record = f"{payload},{record_hash},{payload_size}\n"
        record += "".join(f"{arc},{_record_hash(data)},{len(data)}\n" for arc, data in small)
        record += f"{distinfo}/RECORD,,\n"
        zf.writestr(f"{distinfo}/RECORD", record)
    return path
