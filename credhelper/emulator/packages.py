"""Real, minimal packages the feed serves: wheels, sdists and npm tarballs, built in memory.

Each builder returns the file's bytes; the archives are deterministic so their hashes are stable.
"""

import base64
import hashlib
import io
import json
import re
import tarfile
import zipfile
from typing import Dict, List, Tuple

_EPOCH = (2024, 1, 1, 0, 0, 0)
_MTIME = 1704067200


def normalize(name: str) -> str:
    """PEP 503 project name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


def module_name(name: str) -> str:
    """The importable module a project ships: 'hello-private' -> 'hello_private'."""
    return re.sub(r"[-.]+", "_", name).lower()


def _metadata(name: str, version: str, version_line: str = "2.1") -> str:
    return ("Metadata-Version: {}\nName: {}\nVersion: {}\nSummary: {} from the credhelper "
            "emulator\n\n".format(version_line, name, version, name))


def _init_py(name: str, version: str) -> str:
    return '"""{} from the credhelper emulator."""\n__version__ = "{}"\n'.format(name, version)


def wheel(name: str, version: str) -> Tuple[str, bytes]:
    """A pure-Python wheel: (filename, bytes)."""
    module = module_name(name)
    dist_info = "{}-{}.dist-info".format(module, version)
    files: List[Tuple[str, bytes]] = [
        ("{}/__init__.py".format(module), _init_py(name, version).encode()),
        (dist_info + "/METADATA", _metadata(name, version).encode()),
        (dist_info + "/WHEEL", b"Wheel-Version: 1.0\nGenerator: credhelper-emulator\n"
                               b"Root-Is-Purelib: true\nTag: py3-none-any\n\n"),
    ]
    record = "".join("{},sha256={},{}\n".format(
        path, base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode(),
        len(data)) for path, data in files) + dist_info + "/RECORD,,\n"
    files.append((dist_info + "/RECORD", record.encode()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files:
            archive.writestr(zipfile.ZipInfo(path, _EPOCH), data)
    return "{}-{}-py3-none-any.whl".format(module, version), out.getvalue()


def _tar(entries: Dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.PAX_FORMAT) as archive:
        for path, data in entries.items():
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), _MTIME, 0o644
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def sdist(name: str, version: str) -> Tuple[str, bytes]:
    """A setuptools sdist with a pyproject.toml: (filename, bytes)."""
    module = module_name(name)
    root = "{}-{}".format(module, version)
    pyproject = ('[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = '
                 '"setuptools.build_meta"\n\n[project]\nname = "{}"\nversion = "{}"\n'
                 .format(name, version))
    return root + ".tar.gz", _tar({
        root + "/PKG-INFO": _metadata(name, version).encode(),
        root + "/pyproject.toml": pyproject.encode(),
        root + "/{}/__init__.py".format(module): _init_py(name, version).encode(),
    })


def npm_tarball(name: str, version: str) -> bytes:
    """An npm package tarball with ``package/package.json`` and an ``index.js``."""
    manifest = {"name": name, "version": version, "main": "index.js",
                "description": "{} from the credhelper emulator".format(name), "license": "MIT"}
    return _tar({
        "package/package.json": json.dumps(manifest, indent=2).encode(),
        "package/index.js": "module.exports = {{ name: {}, version: {} }};\n".format(
            json.dumps(name), json.dumps(version)).encode(),
    })


def npm_integrity(data: bytes) -> Dict[str, str]:
    """The ``dist`` hashes npm checks: sha1 ``shasum`` and sha512 SRI ``integrity``."""
    return {"shasum": hashlib.sha1(data).hexdigest(),
            "integrity": "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()}
