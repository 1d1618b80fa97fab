"""`credhelper configure`: real git, real files under tmp_path; idempotent; nothing else touched."""

import os
import stat
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

from credhelper.commands import configure
from credhelper.config import parse
from credhelper.errors import ConfigError

CONFIG = """\
[accounts.work]
authority = "https://login.microsoftonline.com/contoso"
client_id = "app"
flow = "device_code"
[accounts.other]
authority = "https://login.microsoftonline.com/fabrikam"
client_id = "app2"
flow = "device_code"

[[routes]]
url = "https://dev.azure.com/contoso/"
account = "work"
preset = "azure-devops"
[[routes]]
url = "https://dev.azure.com/fabrikam/"
account = "other"
preset = "azure-devops"
[[routes]]
url = "https://pkgs.example:8443/"
account = "work"
scopes = ["api://credhelper-feed/.default"]

[npm]
registries = ["https://pkgs.example:8443/npm/registry/", "https://pkgs.example:8443/npm/two/"]
"""


@pytest.fixture
def env(tmp_path, monkeypatch) -> Dict[str, Path]:
    """Point git, pip, npm and credhelper at files under tmp_path, never the real ones."""
    home = tmp_path / "home"
    home.mkdir()
    places = {
        "home": home,
        "gitconfig": home / ".gitconfig-test",
        "npmrc": home / ".npmrc",
        "state": tmp_path / "state",
        "xdg_config": home / ".config",
    }
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(places["xdg_config"]))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(places["gitconfig"]))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("CREDHELPER_STATE_DIR", str(places["state"]))
    monkeypatch.setenv("NPM_CONFIG_USERCONFIG", str(places["npmrc"]))
    monkeypatch.delenv("npm_config_userconfig", raising=False)
    monkeypatch.delenv("PIP_CONFIG_FILE", raising=False)
    return places


@pytest.fixture
def cfg():
    return parse(CONFIG, Path("config.toml"))


def git_get_all(key: str) -> List[str]:
    done = subprocess.run(["git", "config", "--global", "-z", "--get-all", key],
                          capture_output=True, text=True)
    return done.stdout.split("\0")[:-1]


def write_exe(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


# git ---------------------------------------------------------------------------------------

def test_git_resets_helpers_per_origin_and_is_idempotent(env, cfg):
    unrelated = ('[user]\n\tname = Alice\n[credential]\n\thelper = store\n'
                 '[credential "https://github.com"]\n\thelper = gh\n')
    env["gitconfig"].write_text(unrelated)
    changes = configure.configure_git(cfg)
    assert len(changes) == 3, changes
    assert git_get_all("credential.https://dev.azure.com.helper") == ["", "entra"]
    assert git_get_all("credential.https://pkgs.example:8443.helper") == ["", "entra"]
    assert git_get_all("credential.https://dev.azure.com.useHttpPath") == ["true"]
    assert git_get_all("credential.https://pkgs.example:8443.useHttpPath") == []
    assert git_get_all("credential.https://github.com.helper") == ["gh"]
    assert git_get_all("credential.helper") == ["store"]
    assert git_get_all("user.name") == ["Alice"]
    assert env["gitconfig"].read_text().startswith(unrelated)
    assert configure.configure_git(cfg) == []


def test_git_dry_run_writes_nothing(env, cfg):
    env["gitconfig"].write_text("[user]\n\tname = Alice\n")
    before = env["gitconfig"].read_bytes()
    planned = configure.configure_git(cfg, dry_run=True)
    assert env["gitconfig"].read_bytes() == before
    assert configure.configure_git(cfg) == planned


def test_git_replaces_a_foreign_helper_for_our_origin(env, cfg):
    subprocess.run(["git", "config", "--global", "--add",
                    "credential.https://dev.azure.com.helper", "manager"], check=True)
    changes = configure.configure_git(cfg)
    assert any("was: 'manager'" in line for line in changes)
    assert git_get_all("credential.https://dev.azure.com.helper") == ["", "entra"]


def test_git_credential_fill_uses_only_our_helper(env, cfg, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    write_exe(bin_dir / "git-credential-entra",
              f'echo "entra $1" >> {calls}\n'
              '[ "$1" = get ] && printf "username=entra\\npassword=tok-entra\\n"\nexit 0\n')
    write_exe(bin_dir / "git-credential-other",
              f'echo "other $1" >> {calls}\n'
              '[ "$1" = get ] && printf "username=x\\npassword=tok-other\\n"\nexit 0\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")
    subprocess.run(["git", "config", "--global", "credential.helper", "other"], check=True)
    configure.configure_git(cfg)

    def credential(action: str, host: str, extra: str = "") -> str:
        request = f"protocol=https\nhost={host}\npath=contoso/p/_git/r\n{extra}\n"
        return subprocess.run(["git", "credential", action], input=request, text=True,
                              capture_output=True, check=True, cwd=tmp_path).stdout

    assert "password=tok-entra" in credential("fill", "dev.azure.com")
    credential("approve", "dev.azure.com", "username=entra\npassword=tok-entra\n")
    assert "password=tok-other" in credential("fill", "github.com")
    log = calls.read_text().splitlines()
    # the reset keeps git from offering our token to the global helper's store
    assert "other store" not in log and "entra store" in log
    assert "other get" in log


# pip ---------------------------------------------------------------------------------------

def pip_conf(env) -> Path:
    return env["xdg_config"] / "pip" / "pip.conf"


def test_pip_creates_the_setting_and_is_idempotent(env):
    changes = configure.configure_pip()
    assert len(changes) == 1
    assert pip_conf(env).read_text() == "[global]\nkeyring-provider = import\n"
    assert configure.configure_pip() == []


def test_pip_keeps_comments_and_other_settings(env):
    original = ("# my pip settings\n[global]\nindex-url = https://pkgs.example/simple/\n"
                "  https://second.example/\n; trailing comment\n\n[install]\nno-cache-dir = 1\n")
    pip_conf(env).parent.mkdir(parents=True)
    pip_conf(env).write_text(original)
    pip_conf(env).chmod(0o640)
    configure.configure_pip()
    text = pip_conf(env).read_text()
    assert text == original.replace("  https://second.example/\n",
                                    "  https://second.example/\nkeyring-provider = import\n")
    assert stat.S_IMODE(pip_conf(env).stat().st_mode) == 0o640
    assert configure.configure_pip() == []


def test_pip_replaces_another_provider(env, tmp_path, monkeypatch):
    path = tmp_path / "custom.conf"
    monkeypatch.setenv("PIP_CONFIG_FILE", str(path))
    path.write_text("[global]\nkeyring_provider = subprocess\ntimeout = 5\n")
    assert "was: subprocess" in configure.configure_pip()[0]
    assert path.read_text() == "[global]\nkeyring-provider = import\ntimeout = 5\n"
    assert not pip_conf(env).exists()


def test_pip_dry_run_writes_nothing(env):
    assert configure.configure_pip(dry_run=True)
    assert not pip_conf(env).exists()


def test_pip_refuses_devnull(env, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    with pytest.raises(ConfigError, match="PIP_CONFIG_FILE"):
        configure.configure_pip()


# pnpm / npm --------------------------------------------------------------------------------

NPMRC = ("registry=https://registry.npmjs.org/\r\n"
         "# >>> credhelper >>>\n//pkgs.example:8443/npm/registry/:_authToken=abc\n"
         "# <<< credhelper <<<\n"
         "//other.example/:tokenHelper=/usr/bin/other\n"
         "strict-ssl=true")


def test_pnpm_writes_helpers_and_npmrc_lines(env, cfg, tmp_path):
    fake = write_exe(tmp_path / "credhelper", 'printf "%s|" "$@"\n')
    env["npmrc"].write_bytes(NPMRC.encode())
    changes = configure.configure_pnpm(cfg, credhelper_exe=str(fake))
    assert len(changes) == 4, changes
    text = env["npmrc"].read_bytes().decode()
    assert text.startswith(NPMRC + "\n")
    added = text[len(NPMRC) + 1:].splitlines()
    assert [line.split("=")[0] for line in added] == [
        "//pkgs.example:8443/npm/registry/:tokenHelper", "//pkgs.example:8443/npm/two/:tokenHelper"]
    assert stat.S_IMODE(env["npmrc"].stat().st_mode) == 0o600
    script = Path(added[0].split("=", 1)[1])
    assert script.is_absolute() and str(script).startswith(str(env["state"] / "pnpm"))
    assert stat.S_IMODE(script.stat().st_mode) == 0o700
    assert stat.S_IMODE(script.parent.stat().st_mode) == 0o700
    out = subprocess.run([str(script)], capture_output=True, text=True, check=True).stdout
    assert out == "token|--header-value|https://pkgs.example:8443/npm/registry/|"
    assert configure.configure_pnpm(cfg, credhelper_exe=str(fake)) == []


def test_pnpm_updates_its_line_in_place(env, cfg, tmp_path):
    fake = write_exe(tmp_path / "credhelper", "exit 0\n")
    env["npmrc"].write_text("a=1\n//pkgs.example:8443/npm/registry/:tokenHelper=/old\nb=2\n")
    configure.configure_pnpm(cfg, credhelper_exe=str(fake))
    lines = env["npmrc"].read_text().splitlines()
    assert lines[0] == "a=1" and lines[2] == "b=2"
    assert lines[1].startswith("//pkgs.example:8443/npm/registry/:tokenHelper=" + str(env["state"]))


def test_pnpm_dry_run_writes_nothing(env, cfg, tmp_path):
    fake = write_exe(tmp_path / "credhelper", "exit 0\n")
    env["npmrc"].write_bytes(NPMRC.encode())
    assert configure.configure_pnpm(cfg, dry_run=True, credhelper_exe=str(fake))
    assert env["npmrc"].read_bytes().decode() == NPMRC and not env["state"].exists()


def test_npm_remove_deletes_only_the_block(env, cfg):
    env["npmrc"].write_bytes(NPMRC.encode())
    assert configure.configure_npm(cfg) == []
    assert configure.configure_npm(cfg, remove=True, dry_run=True)
    assert env["npmrc"].read_bytes().decode() == NPMRC
    assert configure.configure_npm(cfg, remove=True)
    assert env["npmrc"].read_bytes().decode() == (
        "registry=https://registry.npmjs.org/\r\n//other.example/:tokenHelper=/usr/bin/other\n"
        "strict-ssl=true")
    assert configure.configure_npm(cfg, remove=True) == []


def test_npm_refuses_an_unterminated_block(env, cfg):
    env["npmrc"].write_text("a=1\n# >>> credhelper >>>\n//x/:_authToken=t\n")
    with pytest.raises(ConfigError, match="has no"):
        configure.configure_npm(cfg, remove=True)
    assert env["npmrc"].read_text() == "a=1\n# >>> credhelper >>>\n//x/:_authToken=t\n"


def test_nerf_dart_matches_npm():
    assert configure.nerf_dart("https://Pkgs.Example:443/a/npm/registry/") == "//pkgs.example/a/npm/registry/"
    assert configure.nerf_dart("https://pkgs.example:8443/a/npm/registry") == "//pkgs.example:8443/a/npm/"
