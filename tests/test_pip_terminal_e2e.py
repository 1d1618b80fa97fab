"""pip at a terminal before sign-in: the sign-in code on the terminal, not `User for HOST:`.

pip runs in a real pseudo-terminal (util-linux `script`), in a fresh venv that has never heard of
credhelper or keyring, with only what `credhelper configure pip` set up: the netrc block (empty
for a person not signed in yet) and `~/.local/bin/keyring`, which pip asks after the 401 and
before it would prompt. The test plays the person: it reads the code off the terminal and
approves it at the emulator.
"""

import os
import re
import select
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest

from harness import BIN, Workspace
from pytools import fresh_venv, installed, no_token_in, pip_wheels, tool_env
from signin import CODE, person_config

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(shutil.which("script") is None,
                                 reason="util-linux `script` (Debian bsdutils) is not installed")]

PROMPT = "User for "


def at_terminal(cmd: list, env: Dict[str, str], cwd: Path, react: Callable[[str], None],
                timeout: float = 180, user: str = "") -> Tuple[int, str]:
    """Run ``cmd`` with a pseudo-terminal as its controlling terminal; exit code and all output.

    ``react`` sees the output so far after each read (to act on what a person would see). A
    prompt for a user name ends the run at once, unless ``user`` is given: then it is typed in.
    """
    proc = subprocess.Popen(["script", "-qefc", shlex.join(cmd), "/dev/null"], env=env,
                            cwd=str(cwd), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    output = b""
    typed = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                output += chunk
                text = output.decode(errors="replace")
                if PROMPT in text and not user:
                    break
                if PROMPT in text and not typed:
                    assert proc.stdin is not None
                    proc.stdin.write(user.encode() + b"\n")
                    proc.stdin.flush()
                    typed = True
                react(text)
            elif proc.poll() is not None:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        code = proc.wait(timeout=30)
    return code, output.decode(errors="replace").replace("\r\n", "\n")


def person_at_the_terminal(ws: Workspace) -> Tuple[Callable[[str], None], List[str]]:
    """What a person does: read the code off the terminal, sign in at the emulator (once)."""
    approved: List[str] = []

    def react(text: str) -> None:
        found = CODE.search(text)
        if found and not approved:
            ws.em.idp.approve(found.group(1), user="alice@contoso.com")
            approved.append(found.group(1))

    return react, approved


def a_person_with_pip_configured(ws: Workspace) -> Tuple[Dict[str, str], str]:
    """A person's account (not signed in), `configure pip` with ~/.local/bin on PATH, the daemon
    up; pip's environment and what `configure` printed."""
    person_config(ws)
    env = terminal_env(ws)
    (ws.home / ".local" / "bin").mkdir(parents=True)
    configured = ws.credhelper("configure", "pip", env=env).stdout
    ws.start_daemon()
    return env, configured


def terminal_env(ws: Workspace) -> Dict[str, str]:
    """pip's environment: ~/.local/bin on PATH, and no other keyring command anywhere on it."""
    path = os.pathsep.join([str(ws.home / ".local" / "bin"), "/usr/local/bin", "/usr/bin", "/bin"])
    return tool_env(ws, PATH=path, TERM="dumb")


def test_pip_at_a_terminal_shows_the_code_then_installs(ws: Workspace) -> None:
    env, configured = a_person_with_pip_configured(ws)
    link = ws.home / ".local" / "bin" / "keyring"
    assert f"pip: {link} -> " in configured
    assert os.path.realpath(link) == os.path.realpath(BIN / "credhelper-keyring")
    doctor = ws.credhelper("doctor", env=env, check=False, cwd=str(ws.root)).stdout
    assert f"pip at a terminal asks {link}, which shows the sign-in code" in doctor
    ws.em.feeds.add_wheel("at-terminal", "1.0.0")
    python = fresh_venv(ws.root / "venv", pip_wheels()[-1])  # pip 26.2+ asks keyring by URL
    site = ws.root / "site"
    person, approved = person_at_the_terminal(ws)

    code, out = at_terminal([str(python), "-m", "pip", "install", "--no-deps", "--no-cache-dir",
                             "--target", str(site), "--index-url", ws.em.pypi_url, "at-terminal"],
                            env, ws.root, person)
    assert PROMPT not in out, "pip prompted instead of asking credhelper"
    assert approved, "no sign-in code reached the terminal"
    assert re.search(r"needs 'work' signed in: open https://\S+ and enter the code", out)
    assert "signed in as alice@contoso.com (work)" in out
    assert code == 0 and installed(site, "at-terminal")
    assert "Traceback" not in out and no_token_in(ws, out)
    # signed in now: the daemon's netrc block serves the next install with no word at all
    assert ws.run([str(python), "-m", "pip", "install", "--no-deps", "--no-cache-dir", "--no-input",
                   "--target", str(ws.root / "site2"), "--index-url", ws.em.pypi_url,
                   "at-terminal"], env=env, stdin=subprocess.DEVNULL).returncode == 0

    removed = ws.credhelper("configure", "pip", "--remove", env=env).stdout
    assert f"pip: removed the link {link}" in removed and not os.path.lexists(link)


def test_without_a_terminal_nothing_waits(ws: Workspace) -> None:
    """The same command line in CI (no controlling terminal): an answer at once, no code shown."""
    env, _ = a_person_with_pip_configured(ws)
    proc = ws.run([str(ws.home / ".local" / "bin" / "keyring"), "--mode=creds", "--output=json",
                   "get", ws.em.pypi_url], env=env, stdin=subprocess.DEVNULL, check=False,
                  timeout=30, start_new_session=True)  # a new session: no controlling terminal
    assert proc.returncode == 1 and proc.stdout == ""
    assert "credhelper: account 'work' needs sign-in: run credhelper login work" in proc.stderr
    assert "enter the code" not in proc.stderr


def test_someone_elses_keyring_is_left_alone(ws: Workspace, tmp_path: Path) -> None:
    person_config(ws)
    theirs = tmp_path / "their-bin"
    theirs.mkdir()
    (theirs / "keyring").write_text("#!/bin/sh\nexit 1\n")
    (theirs / "keyring").chmod(0o755)
    env = terminal_env(ws)
    env["PATH"] = f"{theirs}{os.pathsep}{env['PATH']}"
    (ws.home / ".local" / "bin").mkdir(parents=True)
    out = ws.credhelper("configure", "pip", env=env).stdout
    assert f"another keyring command comes first on PATH ({theirs / 'keyring'})" in out
    assert not os.path.lexists(ws.home / ".local" / "bin" / "keyring")


def test_older_pip_asks_after_a_user_name_then_shows_the_code(ws: Workspace) -> None:
    """pip 26.0.1 (the newest for Python 3.9) asks its keyring only once a user name is typed."""
    env, _ = a_person_with_pip_configured(ws)
    ws.em.feeds.add_wheel("older-pip", "1.0.0")
    python = fresh_venv(ws.root / "venv", pip_wheels()[0])
    assert ws.run([str(python), "-m", "pip", "--version"]).stdout.split()[1] == "26.0.1"
    person, approved = person_at_the_terminal(ws)

    code, out = at_terminal([str(python), "-m", "pip", "install", "--no-deps", "--no-cache-dir",
                             "--target", str(ws.root / "site"), "--index-url", ws.em.pypi_url,
                             "older-pip"], env, ws.root, person, user="me")
    assert approved and "Password:" not in out
    assert code == 0 and installed(ws.root / "site", "older-pip")
    assert "Traceback" not in out and no_token_in(ws, out)


def test_pip_in_credhelpers_own_venv_signs_in_through_the_keyring_backend(ws: Workspace) -> None:
    """The import provider (credhelper's keyring backend, in process) does the same at a terminal."""
    person_config(ws)
    env = terminal_env(ws)
    ws.credhelper("configure", "pip", env=env)
    ws.start_daemon()
    ws.em.feeds.add_wheel("own-venv", "1.0.0")
    person, approved = person_at_the_terminal(ws)

    code, out = at_terminal([sys.executable, "-m", "pip", "install", "--no-deps", "--no-cache-dir",
                             "--keyring-provider", "import", "--target", str(ws.root / "site"),
                             "--index-url", ws.em.pypi_url, "own-venv"], env, ws.root, person)
    assert PROMPT not in out and approved
    assert "signed in as alice@contoso.com (work)" in out
    assert code == 0 and installed(ws.root / "site", "own-venv")
    assert "Traceback" not in out and no_token_in(ws, out)
