"""``credhelper demo``: the whole product, offline, against the bundled emulator.

Everything lives in a fresh temporary folder with its own HOME, so the user's real git, pip and
npm configuration is never touched and no token lands inside the repository checkout. By default
the workspace signs itself in (workload identity federation); ``--device-code`` shows a person's
sign-in instead: ``credhelper login`` prints a code and the emulator's page, and the demo plays
the person, filling that page's form as a browser would.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import ssl
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..errors import CredhelperError

FEDERATION_AUDIENCE = "api://AzureADTokenExchange"
DEMO_PERSON = "alice@contoso.com"


def _say(text: str) -> None:
    print(text, flush=True)


def _run(cmd: List[str], env: Dict[str, str], cwd: Optional[Path] = None) -> str:
    """Run a step, echo it and its output indented; a failure ends the demo."""
    shown = " ".join(cmd[:1] + [c for c in cmd[1:]])
    _say(f"  $ {shown}")
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=180)
    for line in proc.stdout.rstrip().splitlines():
        _say(f"    {line}")
    if proc.returncode != 0:
        raise CredhelperError(f"demo step failed (exit {proc.returncode}): {shown}")
    return proc.stdout


def _wait_for(path: Path, timeout: float, what: str, contains: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and contains in path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise CredhelperError(f"{what} did not appear within {timeout:g}s ({path})")


def _write_config(root: Path, info: Dict[str, Any], gp: Path, account: str) -> Path:
    path = root / "home" / ".config" / "credhelper" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if account == "person":
        identity = f"""# Written by `credhelper demo --device-code`: a person signs in once.
[accounts.person]
authority = "{info['idp_base']}/{info['tenant']}"
client_id = "{info['apps']['device_code']}"
flow = "device_code"
"""
    else:
        command = json.dumps([str(gp), "idp", "token", "--audience", FEDERATION_AUDIENCE])
        identity = f"""# Written by `credhelper demo`: the workspace's own identity, no secret anywhere.
[accounts.workspace]
authority = "{info['idp_base']}/{info['tenant']}"
client_id = "{info['apps']['federated']}"
flow = "federated"
assertion_command = {command}
"""
    path.write_text(f"""{identity}ca_bundle = "{info['ca_file']}"

[[routes]]
url = "{info['feed_base']}/"
account = "{account}"
preset = "azure-devops"

[npm]
registries = ["{info['npm_url']}"]
""")
    return path


def _environment(root: Path, info: Dict[str, Any]) -> Dict[str, str]:
    # The machine's pip and npm settings (find-links, a cafile) would send the tools elsewhere.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "npm_config_", "NPM_CONFIG_"))}
    home = root / "home"
    bindir = Path(sys.executable).parent
    env.update({
        "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_STATE_HOME": str(home / ".local" / "state"), "XDG_CACHE_HOME": str(home / ".cache"),
        "CREDHELPER_SOCKET": str(root / "run" / "daemon.sock"),
        "PATH": f"{bindir}{os.pathsep}{env.get('PATH', '')}",
        "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"), "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0", "GIT_SSL_CAINFO": info["ca_file"],
        "PIP_CERT": info["ca_file"], "PIP_CONFIG_FILE": str(home / ".config" / "pip" / "pip.conf"),
        # npm's cafile replaces Node's CA list, so the emulator's CA goes there too
        "NODE_EXTRA_CA_CERTS": info["ca_file"], "npm_config_cafile": info["ca_file"],
        "NPM_CONFIG_USERCONFIG": str(home / ".npmrc"),
        "npm_config_update_notifier": "false", "npm_config_audit": "false", "npm_config_fund": "false",
    })
    # requests lets REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE beat pip's --cert
    for var in ("XDG_RUNTIME_DIR", "CREDHELPER_CONFIG", "CREDHELPER_STATE_DIR",
                "PYTHON_KEYRING_BACKEND", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        env.pop(var, None)
    return env


def _sign_in_as_a_person(credhelper: List[str], env: Dict[str, str], ca_file: str) -> None:
    """`credhelper login`, and a person approving its code at the page it names."""
    shown = "credhelper login"
    _say(f"  $ {shown}")
    login = subprocess.Popen(credhelper + ["login"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    assert login.stdout is not None
    first = login.stdout.readline().rstrip()
    _say(f"    {first}")
    words = first.split()
    if "open" not in words or "code" not in words:
        login.kill()
        raise CredhelperError(f"demo step failed: {shown} printed no code ({first[:200]})")
    page, code = words[words.index("open") + 1], words[-1]
    _say(f"  (the demo plays you: it opens {page}, types {code}, signs in as {DEMO_PERSON}"
         " and presses Approve)")
    context = ssl.create_default_context(cafile=ca_file)  # the browser trusting the page
    with urllib.request.urlopen(page, context=context, timeout=30) as response:
        response.read()  # the form a person sees
    form = urllib.parse.urlencode({"user_code": code, "user": DEMO_PERSON, "action": "approve"})
    with urllib.request.urlopen(page, data=form.encode(), context=context, timeout=30) as response:
        response.read()
    rest, _ = login.communicate(timeout=120)
    for line in rest.rstrip().splitlines():
        _say(f"    {line}")
    if login.returncode != 0:
        raise CredhelperError(f"demo step failed (exit {login.returncode}): {shown}")


def run_demo(keep: bool = False, device_code: bool = False) -> int:
    """Run the demo (``device_code``: a person signs in); returns the exit code."""
    root = Path(tempfile.mkdtemp(prefix="credhelper-demo-"))
    os.chmod(root, 0o700)
    emulator_dir = root / "emulator"
    credhelper = [sys.executable, "-m", "credhelper"]
    processes: List[subprocess.Popen] = []
    env: Dict[str, str] = {}
    steps = iter(range(1, 9 if device_code else 8))
    total = 8 if device_code else 7

    def step(text: str) -> None:
        _say(f"[{next(steps)}/{total}] {text}")

    try:
        step("Starting the local Entra ID emulator and the private feed server")
        emulator = subprocess.Popen([sys.executable, "-m", "credhelper.emulator", "serve", "--dir",
                                     str(emulator_dir)], stdout=subprocess.DEVNULL,
                                    stderr=open(root / "emulator.log", "w"))
        processes.append(emulator)
        _wait_for(emulator_dir / "emulator.json", 60, "the emulator")  # a busy machine: keys, repos
        info = json.loads((emulator_dir / "emulator.json").read_text())
        _say(f"      identity provider {info['idp_base']}/{info['tenant']}, feeds {info['feed_base']}")

        step("Writing a config: a person who signs in with a device code" if device_code else
             "Writing a config: the workspace's own identity (workload identity federation)")
        gp = root / "bin" / "gp"
        gp.parent.mkdir()
        gp.write_text(f"#!/bin/sh\n# stands in for Gitpod's `gp idp token`\nexec {sys.executable} "
                      f"-m credhelper.emulator gp --dir {emulator_dir} \"$@\"\n")
        gp.chmod(0o755)
        config = _write_config(root, info, gp, "person" if device_code else "workspace")
        env = _environment(root, info)
        _say(f"      {config}")

        step("Starting the credhelper daemon")
        _run(credhelper + ["start"], env)

        if device_code:
            step("Signing in as a person: the code, then the sign-in page")
            _sign_in_as_a_person(credhelper, env, info["ca_file"])

        step("Configuring git, pip and npm (inside the demo's own HOME)")
        _run(credhelper + ["configure", "all"], env)
        _wait_for(Path(env["NPM_CONFIG_USERCONFIG"]), 15, "the npm token block", "_authToken")

        step("git clone over HTTPS, credential from the daemon's git socket (git's cache client)")
        checkout = root / "demo"
        _run(["git", "clone", "--quiet", info["git_url"], str(checkout)], env)

        step("pip install from the private index, token kept fresh in ~/.netrc")
        _wait_for(Path(env["HOME"]) / ".netrc", 15, "the netrc block", "machine ")
        # keyring off, so what serves pip is the netrc block that pip, uv and poetry all read
        _run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(root / "site"),
              "--index-url", info["pypi_url"], "--keyring-provider", "disabled", "--no-input",
              "--no-cache-dir", "hello-private"], env)

        step("npm install from the private registry, token kept fresh in ~/.npmrc")
        project = root / "npm-project"
        project.mkdir()
        (project / ".npmrc").write_text(f"registry={info['npm_url']}\n")
        (project / "package.json").write_text(json.dumps({
            "name": "credhelper-demo", "version": "1.0.0", "private": True,
            "dependencies": {"hello-private": "^1.0.0", "@contoso/hello-scoped": "^1.0.0"}}))
        _run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], env, cwd=project)

        _say("\ncredhelper status:")
        _run(credhelper + ["status"], env)
        lock = json.loads((project / "package-lock.json").read_text())
        installed = sorted(k.split("node_modules/", 1)[1] for k in lock["packages"] if k)
        _say(f"npm packages installed: {', '.join(installed)}")
        _say(f"Python package installed: {', '.join(sorted(p.name for p in (root / 'site').iterdir()))}")
        _say("Cloned repository files:")
        for path in sorted(checkout.iterdir()):
            if path.name != ".git":
                _say(f"  {path.name}")
        return 0
    finally:
        if keep:
            _say(f"\nLeft running (--keep); demo folder: {root}")
        else:
            if env:
                subprocess.run(credhelper + ["stop"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=30)
            for proc in processes:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            shutil.rmtree(root, ignore_errors=True)
