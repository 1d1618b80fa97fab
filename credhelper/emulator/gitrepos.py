"""Bare git repositories served through ``git http-backend`` (CGI), push included."""

import os
import subprocess
import tempfile
from email.parser import Parser
from pathlib import Path
from typing import Dict, Mapping

from .web import Request, Response

_ISOLATED = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
             "GIT_TERMINAL_PROMPT": "0"}


def _git(args: list, cwd: Path, env: Mapping[str, str]) -> None:
    subprocess.run(["git"] + args, cwd=str(cwd), env=dict(env), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)


def _base_env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(_ISOLATED)
    return env


def create_repo(root: Path, name: str) -> Path:
    """A bare repo ``root/name`` with one commit holding a README, unless it exists."""
    path = root / name
    if path.exists():
        return path
    env = _base_env()
    env.update(GIT_AUTHOR_NAME="Emulator", GIT_AUTHOR_EMAIL="emulator@contoso.com",
               GIT_COMMITTER_NAME="Emulator", GIT_COMMITTER_EMAIL="emulator@contoso.com")
    _git(["init", "-q", "--bare", "-b", "main", str(path)], root, env)
    _git(["config", "http.receivepack", "true"], path, env)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        _git(["init", "-q", "-b", "main"], work, env)
        (work / "README.md").write_text("# {}\n\nServed by the credhelper emulator.\n".format(name))
        _git(["add", "README.md"], work, env)
        _git(["commit", "-q", "-m", "Initial commit"], work, env)
        _git(["push", "-q", str(path), "main"], work, env)
    return path


def http_backend(root: Path, request: Request, path_info: str, remote_user: str) -> Response:
    """Run one smart-HTTP request through ``git http-backend`` and relay its answer."""
    env = _base_env()
    env.update({
        "GIT_PROJECT_ROOT": str(root), "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path_info,
        "REQUEST_METHOD": request.method, "REMOTE_USER": remote_user or "anonymous",
        "REMOTE_ADDR": request.client[0], "CONTENT_TYPE": request.headers.get("Content-Type", ""),
        "CONTENT_LENGTH": str(len(request.body)),
        "QUERY_STRING": "&".join("{}={}".format(k, v) for k, v in request.query.items()),
        "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
    })
    for header in ("Content-Encoding", "Git-Protocol"):
        if request.headers.get(header):
            env["HTTP_" + header.upper().replace("-", "_")] = request.headers[header]
    if "HTTP_GIT_PROTOCOL" in env:
        env["GIT_PROTOCOL"] = env["HTTP_GIT_PROTOCOL"]
    result = subprocess.run(["git", "http-backend"], input=request.body, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    if not _:
        head, _, body = result.stdout.partition(b"\n\n")
    headers = Parser().parsestr(head.decode("latin-1"), headersonly=True)
    status = int((headers.get("Status") or "200").split()[0])
    relayed = [(k, v) for k, v in headers.items() if k.lower() != "status"]
    return Response(status, body, relayed)
