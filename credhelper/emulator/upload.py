"""PyPI's legacy upload API (``POST /pypi/legacy/``), as twine and ``uv publish`` speak it.

A ``multipart/form-data`` body with ``:action=file_upload``, the project's ``name`` and
``version``, a ``content`` file part and its ``sha256_digest``. The feed server authenticates
the request before it gets here; this module only reads and checks the form, so a malformed
upload is a 400 with a reason, as on PyPI, never a crash of the server.
"""

import hashlib
import re
from email.parser import BytesParser
from email.policy import HTTP
from typing import Dict, Optional, Tuple

from . import packages

MAX_UPLOAD = 64 * 1024 * 1024
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*\.(whl|tar\.gz|zip)$")


class UploadError(ValueError):
    """The upload is malformed; the message is the 400's reason."""


def _parts(content_type: str, body: bytes) -> Tuple[Dict[str, str], Optional[Tuple[str, bytes]]]:
    """Form fields and the one ``content`` file (filename, data) of a multipart body."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise UploadError("expected multipart/form-data")
    head = "Content-Type: {}\r\nMIME-Version: 1.0\r\n\r\n".format(content_type).encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise UploadError("the multipart body could not be read")
    fields: Dict[str, str] = {}
    content = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if name == "content":
            filename = part.get_param("filename", header="content-disposition")
            content = (str(filename or ""), data)
        elif isinstance(name, str):
            fields[name] = data.decode("utf-8", "replace")
    return fields, content


def read_upload(content_type: str, body: bytes) -> Tuple[str, str, str, bytes]:
    """(normalized project name, version, file name, file data) of a well-formed upload."""
    if len(body) > MAX_UPLOAD:
        raise UploadError("upload too large")
    fields, content = _parts(content_type, body)
    if fields.get(":action") != "file_upload":
        raise UploadError("unsupported :action {!r}".format(fields.get(":action")))
    name, version = fields.get("name", "").strip(), fields.get("version", "").strip()
    if not name or not version:
        raise UploadError("name and version are required")
    if content is None or not content[1]:
        raise UploadError("no file in the 'content' part")
    filename, data = content
    if not _FILENAME.match(filename):
        raise UploadError("invalid file name {!r}".format(filename))
    normalized = packages.normalize(name)
    if not re.sub(r"[-_.]+", "-", filename.lower()).startswith(normalized + "-"):
        raise UploadError("file {!r} does not belong to project {!r}".format(filename, name))
    digest = fields.get("sha256_digest")
    if digest and digest.lower() != hashlib.sha256(data).hexdigest():
        raise UploadError("sha256_digest does not match the file")
    return normalized, version, filename, data
