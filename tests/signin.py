"""Helpers for the person sign-in tests: device-code config, `credhelper login` driven as a
person would (read the code, approve it at the emulator), JWT claims, pip through keyring.
"""

import base64
import json
import re
import signal
import subprocess
import sys
from typing import Any, Dict, List, Optional, Tuple

from harness import BIN, Workspace

FEED_SCOPE = "api://credhelper-feed/.default"
CODE = re.compile(r"enter the code ([A-Z0-9]+)")


def device_account(ws: Workspace, tenant: Optional[str] = None,
                   client_id: str = "public-app") -> Dict[str, Any]:
    """A device_code account on the emulator (any tenant path segment works there)."""
    return {"authority": f"{ws.em.idp_base}/{tenant or ws.em.tenant}", "client_id": client_id,
            "flow": "device_code", "ca_bundle": str(ws.em.ca_file)}


def person_config(ws: Workspace, npm: bool = False) -> None:
    """One person ('work') routed to the whole feed host."""
    ws.write_config({"work": device_account(ws)},
                    [{"url": f"{ws.em.feed_base}/", "account": "work", "preset": "azure-devops"}],
                    npm=[ws.em.npm_url] if npm else ())


class Login:
    """A running `credhelper login` whose first line (the code) has been read."""

    def __init__(self, ws: Workspace, *args: str) -> None:
        self.proc = subprocess.Popen([str(BIN / "credhelper"), "login", *args], env=ws.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.first_line = self.proc.stdout.readline()
        match = CODE.search(self.first_line)
        assert match, f"no code in {self.first_line!r}; stderr: {self._stderr_now()}"
        self.user_code = match.group(1)

    def _stderr_now(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stderr.read() if self.proc.stderr else ""

    def interrupt(self) -> None:
        """What Ctrl-C does in a terminal."""
        self.proc.send_signal(signal.SIGINT)

    def finish(self, timeout: float = 30) -> Tuple[int, str, str]:
        """Exit code, the rest of stdout, stderr."""
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err


def sign_in(ws: Workspace, account: Optional[str] = None, user: str = "alice@contoso.com") -> str:
    """`credhelper login [account]`, approved at the emulator as ``user``; returns stdout."""
    login = Login(ws, *([account] if account else []))
    ws.em.idp.approve(login.user_code, user=user)
    code, out, err = login.finish()
    assert code == 0, f"login exited {code}: {err}"
    return login.first_line + out


def claims(token: str) -> Dict[str, Any]:
    """The payload of a JWT, unverified (the emulator checks signatures; we check identity)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def pip_install(ws: Workspace, target: str, *packages: str, check: bool = True
                ) -> subprocess.CompletedProcess:
    """pip install from the private index, credentials from keyring (our backend) only."""
    env = {k: v for k, v in ws.env.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    cmd: List[str] = [sys.executable, "-m", "pip", "install", "--no-deps", "--only-binary", ":all:",
                      "--no-cache-dir", "--keyring-provider", "import",
                      "--index-url", ws.em.pypi_url, "--target", target, *packages]
    return ws.run(cmd, check=check, env=env)


def two_accounts_config(ws: Workspace) -> None:
    """'work' (tenant contoso) serves git, 'other' (tenant fabrikam) serves the Python index;
    both use the same public client id, as people do with a well-known multi-tenant app."""
    ws.write_config(
        {"work": device_account(ws), "other": device_account(ws, tenant="fabrikam")},
        [{"url": f"{ws.em.feed_base}/git/", "account": "work", "preset": "azure-devops"},
         {"url": f"{ws.em.feed_base}/pypi/", "account": "other", "scopes": [FEED_SCOPE]}])


def stderr_lines(text: str) -> List[str]:
    """Our own lines on a tool's stderr."""
    return [line for line in text.splitlines() if line.startswith("credhelper:")]
