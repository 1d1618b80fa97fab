"""cargo: the real cargo fetches a crate from the emulator's auth-required sparse registry through
cargo-credential-entra; the provider's protocol (v1, JSON lines) spoken by hand as cargo does.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from harness import BIN, Workspace

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

PROVIDER = str(BIN / "cargo-credential-entra")
CARGO = shutil.which("cargo")


def _cargo_supports_providers() -> bool:
    if CARGO is None:
        return False
    version = subprocess.run([CARGO, "--version"], capture_output=True, text=True).stdout.split()
    try:
        major, minor = (int(x) for x in version[1].split(".")[:2])
    except (IndexError, ValueError):
        return False
    return (major, minor) >= (1, 74)


needs_cargo = pytest.mark.skipif(not _cargo_supports_providers(), reason=(
    "needs cargo >= 1.74 (credential providers); none on PATH, and neither PyPI, npm nor "
    "Debian 12 (cargo 0.66) offers one"))


@pytest.fixture(scope="module")
def cws(module_ws: Workspace) -> Workspace:
    """A daemon routing the feed host (which holds the cargo registry) to the workspace."""
    module_ws.default_config()
    module_ws.env["CARGO_HOME"] = str(module_ws.root / "cargo-home")
    module_ws.env["CARGO_HTTP_CAINFO"] = str(module_ws.em.ca_file)
    module_ws.env["CARGO_TERM_COLOR"] = "never"
    # rustup's cargo finds its toolchain under the real HOME, not the workspace's
    module_ws.env["RUSTUP_HOME"] = os.environ.get("RUSTUP_HOME") or os.path.expanduser("~/.rustup")
    module_ws.start_daemon()
    return module_ws


def converse(ws: Workspace, requests: List[Any], args: Optional[List[str]] = None
             ) -> List[Dict[str, Any]]:
    """Run the provider as cargo does; the hello and each answer, parsed."""
    lines = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in requests)
    done = ws.run([PROVIDER, *(args or ["--cargo-plugin"])], input=lines, check=False)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def request(index_url: str, kind: str = "get", **extra: Any) -> Dict[str, Any]:
    message = {"v": 1, "registry": {"index-url": index_url, "name": "entra"}, "kind": kind,
               "operation": "read", "args": []}
    message.update(extra)
    return message


def test_hello_then_a_bearer_token_for_a_routed_index(cws: Workspace) -> None:
    hello, answer = converse(cws, [request(cws.em.cargo_index)])
    assert hello == {"v": [1]}
    ok = answer["Ok"]
    assert ok["kind"] == "get" and ok["token"].startswith("Bearer ")
    assert ok["cache"] == "expires" and isinstance(ok["expiration"], int)
    assert ok["operation_independent"] is True
    claims = cws.em.idp.check_access_token(ok["token"][len("Bearer "):])
    assert claims["aud"] == "499b84ac-1321-427f-aa17-267ca6975798"


@pytest.mark.parametrize("index", [
    "sparse+https://index.crates.io/", "https://github.com/rust-lang/crates.io-index",
    "sparse+http://{feed}/cargo/", "sparse+https://{feed}.evil.example/cargo/",
])
def test_other_indexes_are_not_ours(cws: Workspace, index: str) -> None:
    url = index.format(feed=cws.em.feed_base[len("https://"):])
    _, answer = converse(cws, [request(url)])
    assert answer == {"Err": {"kind": "url-not-supported"}}


def test_login_logout_unsupported_and_bad_lines_answered(cws: Workspace) -> None:
    answers = converse(cws, [
        request(cws.em.cargo_index, "login", token="x"), request(cws.em.cargo_index, "logout"),
        "not json", "[1, 2]", dict(request(cws.em.cargo_index), v=2),
        request(cws.em.cargo_index)])
    assert answers[1] == answers[2] == {"Err": {"kind": "operation-not-supported"}}
    assert [a["Err"]["kind"] for a in answers[3:6]] == ["other"] * 3
    assert "Ok" in answers[6]  # the provider kept going after the bad lines


def test_without_cargo_plugin_it_explains_itself(cws: Workspace) -> None:
    done = cws.run([PROVIDER], check=False)
    assert done.returncode == 2 and "credential provider" in done.stderr and done.stdout == ""


def test_configure_cargo_keeps_the_rest_and_removes_exactly(cws: Workspace) -> None:
    path = Path(cws.env["CARGO_HOME"]) / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    before = ('# mine\n[net]\nretry = 3\n\n[registries.entra]\n'
              f'index = "{cws.em.cargo_index}"\n')
    path.write_text(before)
    out = cws.credhelper("configure", "cargo").stdout
    assert "global-credential-providers" in out
    doc = tomllib.loads(path.read_text())
    default, ours = doc["registry"]["global-credential-providers"]
    # the provider runs as configure git's helper does: python -IS, no site, no shim
    script = Path(ours)
    assert default == "cargo:token" and script.parent == cws.state_dir
    assert script.read_text().startswith("#!") and " -IS\n" in script.read_text().splitlines(True)[0]
    assert script.stat().st_mode & 0o777 == 0o700
    assert doc["net"] == {"retry": 3} and path.read_text().startswith(before)
    assert "already configured" in cws.credhelper("configure", "cargo").stdout
    cws.credhelper("configure", "cargo", "--remove")
    assert tomllib.loads(path.read_text()) == tomllib.loads(before + "\n[registry]\n")
    assert not script.exists()


@needs_cargo
def test_real_cargo_fetches_a_crate_from_the_authenticated_registry(cws: Workspace) -> None:
    em = cws.em
    cargo_home = Path(cws.env["CARGO_HOME"])
    cargo_home.mkdir(parents=True, exist_ok=True)
    (cargo_home / "config.toml").write_text(f'[registries.entra]\nindex = "{em.cargo_index}"\n')
    project = cws.root / "app"
    (project / "src").mkdir(parents=True, exist_ok=True)
    (project / "src" / "main.rs").write_text("fn main() { println!(\"{}\", hello_private::hello()); }\n")
    (project / "Cargo.toml").write_text(
        '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n'
        'hello-private = { version = "1.0", registry = "entra" }\n')
    refused = cws.run([CARGO, "fetch"], cwd=project, check=False, timeout=300)
    # no provider yet: cargo has no token to send
    assert refused.returncode != 0 and "credential-provider" in refused.stderr, refused.stderr[-2000:]
    cws.credhelper("configure", "cargo")
    done = cws.run([CARGO, "fetch"], cwd=project, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    crates = list((cargo_home / "registry" / "cache").glob("*/hello-private-1.0.0.crate"))
    assert crates, done.stderr[-2000:]
    fetched = [e for e in em.feeds.log if e["path"].startswith("/cargo/api/v1/crates/hello-private")]
    assert fetched and fetched[-1]["status"] == 200 and fetched[-1]["auth"] == "bearer"


def test_configure_all_takes_cargo_only_for_a_routed_registry(cws: Workspace) -> None:
    if CARGO is None:
        pytest.skip("configure all looks for cargo on PATH")
    path = Path(cws.env["CARGO_HOME"]) / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('[registries.public]\nindex = "sparse+https://index.example/"\n')
    cws.credhelper("configure", "all")
    assert "global-credential-providers" not in path.read_text()
    path.write_text(f'[registries.entra]\nindex = "{cws.em.cargo_index}"\n')
    cws.credhelper("configure", "all")
    assert "global-credential-providers" in path.read_text()
    cws.credhelper("configure", "cargo", "--remove")


def test_doctor_says_when_a_routed_registry_has_no_provider(cws: Workspace) -> None:
    path = Path(cws.env["CARGO_HOME"]) / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[registries.entra]\nindex = "{cws.em.cargo_index}"\n')

    def cargo_check() -> Dict[str, Any]:
        done = cws.credhelper("doctor", "--json", check=False, cwd=str(cws.root))
        [found] = [c for c in json.loads(done.stdout)["checks"] if c["name"] == "cargo"]
        return found

    assert cargo_check()["fix"] == "run: credhelper configure cargo"
    cws.credhelper("configure", "cargo")
    assert cargo_check()["status"] == "ok"
    cws.credhelper("configure", "cargo", "--remove")
