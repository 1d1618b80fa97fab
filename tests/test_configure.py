"""`credhelper configure`: real git, real files under tmp_path; idempotent; nothing else touched."""

import os
import stat
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

from credhelper.commands import configure, configure_js
from credhelper.config import parse
from credhelper.errors import ConfigError
from credhelper.toolrecord import ToolRecord

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
    monkeypatch.setenv("CREDHELPER_SOCKET", str(tmp_path / "run" / "daemon.sock"))
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
    assert len(changes) == 3, changes  # two origins, one useHttpPath
    ours = ["", f"cache --timeout=60 --socket={env['home'].parent / 'run' / 'daemon-git.sock'}",
            configure.git_fallback_helper(erase=False)]
    assert configure.git_helpers() == ours
    assert git_get_all("credential.https://dev.azure.com.helper") == ours
    assert git_get_all("credential.https://pkgs.example:8443.helper") == ours
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
    assert git_get_all("credential.https://dev.azure.com.helper") == configure.git_helpers()


def test_git_cache_helper_left_out_when_its_socket_path_is_too_long(env, cfg, monkeypatch,
                                                                     tmp_path):
    monkeypatch.setenv("CREDHELPER_SOCKET", str(tmp_path / ("d" * 100) / "daemon.sock"))
    configure.configure_git(cfg)
    # without the git socket, erase must reach the daemon through entra
    fallback = configure.git_fallback_helper(erase=True)
    assert git_get_all("credential.https://dev.azure.com.helper") == ["", fallback]
    assert 'case "$1" in get|erase)' in fallback


def test_git_remove_puts_back_what_configure_replaced(env, cfg):
    env["gitconfig"].write_text('[credential "https://dev.azure.com"]\n\thelper = manager\n'
                                '[user]\n\tname = Alice\n')
    assert configure.configure_git(cfg)
    assert git_get_all("credential.https://dev.azure.com.helper") == configure.git_helpers()
    changes = configure.remove_git(cfg)
    assert "git: credential.https://dev.azure.com.helper back to 'manager'" in changes
    assert git_get_all("credential.https://dev.azure.com.helper") == ["manager"]
    assert git_get_all("credential.https://dev.azure.com.useHttpPath") == []
    assert git_get_all("credential.https://pkgs.example:8443.helper") == []
    assert git_get_all("user.name") == ["Alice"]
    assert configure.remove_git(cfg) == []
    assert configure.configure_git(cfg) and configure.configure_git(cfg) == []
    assert git_get_all("credential.https://dev.azure.com.helper") == configure.git_helpers()


def test_git_remove_without_a_record_takes_out_only_our_helpers(env, cfg):
    env["gitconfig"].write_text('[credential "https://dev.azure.com"]\n\thelper = \n\thelper = entra\n'
                                '[credential "https://pkgs.example:8443"]\n\thelper = store\n')
    assert configure.remove_git(cfg) == ["git: credential.https://dev.azure.com.helper back to unset"]
    assert git_get_all("credential.https://pkgs.example:8443.helper") == ["store"]


def test_git_credential_fill_uses_only_our_helper(env, cfg, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    # the fallback helper configure writes runs this "python" (-I -S launcher ACTION) for get
    python = write_exe(bin_dir / "python",
                       f'[ -f "$3" ] && echo "entra $4 $1 $2" >> {calls}\n'
                       '[ "$4" = get ] && printf "username=entra\\npassword=tok-entra\\n"\nexit 0\n')
    write_exe(bin_dir / "git-credential-other",
              f'echo "other $1" >> {calls}\n'
              '[ "$1" = get ] && printf "username=x\\npassword=tok-other\\n"\nexit 0\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")
    monkeypatch.setattr(configure.sys, "executable", str(python))
    subprocess.run(["git", "config", "--global", "credential.helper", "other"], check=True)
    configure.configure_git(cfg)
    cache_socket = tmp_path / "run" / "daemon-git.sock"

    def credential(action: str, host: str, extra: str = "") -> str:
        request = f"protocol=https\nhost={host}\npath=contoso/p/_git/r\n{extra}\n"
        return subprocess.run(["git", "credential", action], input=request, text=True,
                              capture_output=True, check=True, cwd=tmp_path).stdout

    try:
        assert "password=tok-entra" in credential("fill", "dev.azure.com")
        credential("approve", "dev.azure.com", "username=entra\npassword=tok-entra\n")
        credential("reject", "dev.azure.com", "username=entra\npassword=tok-entra\n")
        assert "password=tok-other" in credential("fill", "github.com")
    finally:
        # with no daemon up, git's store started git's own cache daemon on our git socket
        subprocess.run(["git", "credential-cache", f"--socket={cache_socket}", "exit"],
                       check=False)
    log = calls.read_text().splitlines()
    # the reset keeps git from offering our token to the global helper's store; the fallback
    # starts no Python for store, and Python runs without site
    assert "other store" not in log and "other get" in log
    assert log.count("entra get -I -S") == 1
    # store never starts Python; nor does erase, which the git socket takes to the daemon
    assert not any(line.startswith(("entra store", "entra erase")) for line in log)


# pnpm / npm --------------------------------------------------------------------------------

NPMRC = ("registry=https://registry.npmjs.org/\r\n"
         "# >>> credhelper >>>\n//pkgs.example:8443/npm/registry/:_authToken=abc\n"
         "# <<< credhelper <<<\n"
         "//other.example/:tokenHelper=/usr/bin/other\n"
         "strict-ssl=true")


def test_npm_records_itself_and_remove_deletes_only_the_block(env, cfg):
    env["npmrc"].write_bytes(NPMRC.encode())
    record = ToolRecord()
    assert record.enabled("npm", True) and record.state("npm") is None
    assert configure_js.configure_npm(cfg) == [
        f"npm: the daemon keeps a token block for 2 registries in {env['npmrc']}"]
    assert record.state("npm") == "configured" and configure_js.configure_npm(cfg) == []
    assert configure_js.remove_npm(cfg, dry_run=True)
    assert env["npmrc"].read_bytes().decode() == NPMRC and record.state("npm") == "configured"
    assert configure_js.remove_npm(cfg)
    assert env["npmrc"].read_bytes().decode() == (
        "registry=https://registry.npmjs.org/\r\n//other.example/:tokenHelper=/usr/bin/other\n"
        "strict-ssl=true")
    assert not record.enabled("npm", True)
    assert configure_js.remove_npm(cfg) == []
    assert stat.S_IMODE((env["state"] / "tools.json").stat().st_mode) == 0o600


def test_npm_remove_deletes_a_file_it_created_when_nothing_else_is_in_it(env, cfg):
    configure_js.configure_npm(cfg)
    env["npmrc"].write_text("# >>> credhelper >>>\n//x/:_authToken=t\n# <<< credhelper <<<\n")
    assert configure_js.remove_npm(cfg) and not env["npmrc"].exists()


def test_pnpm_drops_the_tokenhelper_lines_an_older_version_wrote(env, cfg):
    ours = env["state"] / "pnpm" / "pkgs.example-8443-npm-registry-0123abcd"
    ours.parent.mkdir(parents=True)
    ours.write_text("#!/bin/sh\n")
    env["state"].chmod(0o700)
    env["npmrc"].write_text(f"a=1\n//pkgs.example:8443/npm/registry/:tokenHelper={ours}\n"
                            "//other.example/:tokenHelper=/usr/bin/other\nb=2\n")
    record = ToolRecord()
    record.removed("npm")
    changes = configure_js.configure_pnpm(cfg)
    assert len(changes) == 3, changes
    assert env["npmrc"].read_text() == "a=1\n//other.example/:tokenHelper=/usr/bin/other\nb=2\n"
    assert not ours.parent.exists()
    assert record.state("pnpm") == record.state("npm") == "configured"
    assert configure_js.configure_pnpm(cfg) == []
    # pnpm turned the npm block on, so undoing pnpm turns it off again
    assert configure_js.remove_pnpm(cfg) == [] and record.state("npm") == "removed"


def test_pnpm_dry_run_writes_nothing(env, cfg):
    env["npmrc"].write_bytes(NPMRC.encode())
    assert configure_js.configure_pnpm(cfg, dry_run=True)
    assert env["npmrc"].read_bytes().decode() == NPMRC and not env["state"].exists()


def test_npm_refuses_an_unterminated_block(env, cfg):
    env["npmrc"].write_text("a=1\n# >>> credhelper >>>\n//x/:_authToken=t\n")
    with pytest.raises(ConfigError, match="has no"):
        configure_js.remove_npm(cfg)
    assert env["npmrc"].read_text() == "a=1\n# >>> credhelper >>>\n//x/:_authToken=t\n"


def test_yarn_refuses_a_yarnrc_with_its_own_registries(env, cfg, tmp_path):
    (tmp_path / "home" / ".yarnrc.yml").write_text('npmRegistries:\n  "//x": {}\n')
    with pytest.raises(ConfigError, match="its own npmRegistries"):
        configure_js.configure_yarn(cfg)
    assert ToolRecord().state("yarn") is None


# the tool record ---------------------------------------------------------------------------

def test_record_keeps_the_first_undo_data_and_survives_a_broken_file(env):
    record = ToolRecord()
    record.configured("git", {"before": {"k": ["store"]}})
    record.configured("git", {"before": {"k": ["", "entra"]}, "extra": 1})
    assert record.undo("git") == {"before": {"k": ["store"]}, "extra": 1}
    assert record.removed("git") == {"before": {"k": ["store"]}, "extra": 1}
    assert record.undo("git") == {} and not record.enabled("git", True)
    record.path.write_text("{not json")
    assert record.state("git") is None and record.enabled("yarn", False) is False
