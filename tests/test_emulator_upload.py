"""The feed's PyPI legacy upload API over HTTPS: token-checked like the index, every malformed
upload a 400 with its reason, an upload then served by the simple index. (twine and uv publish
drive it for real in test_python_tools_e2e.)
"""

import hashlib
import ssl
import urllib.error
import urllib.request
import uuid
from typing import Dict, Optional, Tuple

import pytest

from credhelper.emulator import packages


def multipart(fields: Dict[str, str], file: Optional[Tuple[str, bytes]]) -> Tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                     f"{value}\r\n".encode())
    if file is not None:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
                     f'filename="{file[0]}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                     .encode() + file[1] + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def upload(em, body: bytes, content_type: str, token: Optional[str]) -> Tuple[int, str]:
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = "Bearer " + token
    request = urllib.request.Request(em.pypi_upload_url, data=body, method="POST", headers=headers)
    context = ssl.create_default_context(cafile=str(em.ca_file))
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def token(em) -> str:
    return em.idp.issue(em.tenant, "api://credhelper-feed", "app")["access_token"]


def wheel_fields(name: str, data: bytes) -> Dict[str, str]:
    return {":action": "file_upload", "protocol_version": "1", "name": name, "version": "1.0.0",
            "filetype": "bdist_wheel", "sha256_digest": hashlib.sha256(data).hexdigest()}


def test_upload_then_the_index_serves_it(em, token):
    filename, data = packages.wheel("Up.Loaded", "1.0.0")
    body, ctype = multipart(wheel_fields("Up.Loaded", data), (filename, data))
    assert upload(em, body, ctype, None)[0] == 401
    assert upload(em, body, ctype, token)[0] == 200
    status, text = upload(em, body, ctype, token)
    assert status == 400 and "File already exists" in text
    files = em.feeds._python["up-loaded"]
    assert files[filename] == data


@pytest.mark.parametrize("change, reason", [
    (lambda f, fl: (dict(f, **{":action": "submit"}), fl), "unsupported :action"),
    (lambda f, fl: ({k: v for k, v in f.items() if k != "version"}, fl), "name and version"),
    (lambda f, fl: (f, None), "no file"),
    (lambda f, fl: (f, ("../evil.whl", fl[1])), "invalid file name"),
    (lambda f, fl: (f, ("other-1.0.0-py3-none-any.whl", fl[1])), "does not belong"),
    (lambda f, fl: (dict(f, sha256_digest="0" * 64), fl), "sha256_digest does not match"),
])
def test_malformed_uploads_are_400_with_a_reason(em, token, change, reason):
    filename, data = packages.wheel("bad-upload", "1.0.0")
    fields, file = change(wheel_fields("bad-upload", data), (filename, data))
    body, ctype = multipart(fields, file)
    status, text = upload(em, body, ctype, token)
    assert status == 400 and reason in text


def test_a_body_that_is_not_multipart_is_400(em, token):
    status, text = upload(em, b'{"name": "x"}', "application/json", token)
    assert status == 400 and "multipart/form-data" in text
