"""The user units: systemd itself accepts them, and install_units writes and enables them."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from credhelper import paths
from credhelper.commands import install_systemd
from credhelper.errors import CredhelperError

ROOT = Path(__file__).resolve().parents[1]
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")


def _verify(tmp_path: Path, units: dict) -> subprocess.CompletedProcess:
    """Run ``systemd-analyze --user verify`` on rendered units, isolated from the real home."""
    unit_dir = tmp_path / "units"
    unit_dir.mkdir(exist_ok=True)
    for name, text in units.items():
        (unit_dir / name).write_text(text)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path / "home"),
        "XDG_RUNTIME_DIR": str(runtime), "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    # --user: a user manager's rules; it needs XDG_RUNTIME_DIR. --man=no: no man pages here.
    return subprocess.run(
        [ANALYZE, "--user", "--man=no", "verify", *(str(unit_dir / n) for n in units)],
        env=env, capture_output=True, text=True, timeout=60,
    )


@needs_analyze
def test_systemd_accepts_the_rendered_units(tmp_path):
    result = _verify(tmp_path, install_systemd.render_units())
    # verify exits 0 on unknown keys and bad values too; it only complains on stderr.
    assert (result.returncode, result.stderr) == (0, "")


@needs_analyze
def test_verify_would_catch_a_broken_unit(tmp_path):
    units = install_systemd.render_units()
    units["credhelper.service"] = units["credhelper.service"].replace(
        "NoNewPrivileges=yes", "NoNewPrivileges=perhaps\nPrivateSecrets=yes")
    result = _verify(tmp_path, units)
    assert "Failed to parse boolean value" in result.stderr and "PrivateSecrets" in result.stderr


@needs_analyze
def test_exec_start_survives_spaces_and_specifiers(tmp_path):
    odd = tmp_path / "my tools" / "cred%helper$x"
    odd.parent.mkdir()
    odd.write_text("#!/bin/sh\n")
    odd.chmod(0o755)
    units = install_systemd.render_units([str(odd), "--flag"])
    assert 'ExecStart="' in units["credhelper.service"]
    # verify resolves ExecStart's first word and fails when that file does not exist.
    result = _verify(tmp_path, units)
    assert (result.returncode, result.stderr) == (0, "")


def test_units_in_the_repository_are_the_rendered_template():
    rendered = install_systemd.render_units(["/usr/bin/credhelper"])
    for name, text in rendered.items():
        assert (ROOT / "systemd" / name).read_text() == text, f"systemd/{name} drifted; re-render it"


def test_socket_unit_listens_where_clients_look(monkeypatch):
    monkeypatch.delenv("CREDHELPER_SOCKET", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    listen = [line for line in install_systemd.SOCKET_UNIT.splitlines()
              if line.startswith("ListenStream=")]
    assert listen == ["ListenStream=%t/credhelper/daemon.sock"]
    assert paths.socket_path() == Path("/run/user/1000/credhelper/daemon.sock")


def test_default_command_is_absolute_and_runnable():
    command = install_systemd.credhelper_command()
    assert os.path.isabs(command[0]) and os.access(command[0], os.X_OK)


@pytest.fixture
def fake_systemctl(tmp_path, monkeypatch):
    """A ``systemctl`` on PATH that logs its arguments; behaviour set by FAKE_* variables."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "systemctl.log"
    script = bin_dir / "systemctl"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{log}"\n'
        'case "$2" in\n'
        '  show) exit "${FAKE_NO_MANAGER:-0}" ;;\n'
        '  is-enabled) exit "${FAKE_DISABLED:-0}" ;;\n'
        '  enable) if [ -n "$FAKE_ENABLE_FAILS" ]; then\n'
        '    echo "Failed to enable unit: Unit file credhelper.socket does not exist." >&2; exit 1\n'
        "  fi ;;\n"
        "esac\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("FAKE_NO_MANAGER", "FAKE_DISABLED", "FAKE_ENABLE_FAILS"):
        monkeypatch.delenv(name, raising=False)
    return log


def _calls(log: Path) -> list:
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return calls


def test_install_writes_units_and_enables_the_socket(tmp_path, fake_systemctl):
    unit_dir = tmp_path / "config" / "systemd" / "user"
    assert install_systemd.install_units() == [
        f"systemd: {unit_dir / 'credhelper.socket'}: new unit",
        f"systemd: {unit_dir / 'credhelper.service'}: new unit",
        "systemd: systemctl --user daemon-reload",
        "systemd: systemctl --user enable --now credhelper.socket",
    ]
    for name, text in install_systemd.render_units().items():
        assert (unit_dir / name).read_text() == text
        assert stat.S_IMODE((unit_dir / name).stat().st_mode) == 0o644
    assert _calls(fake_systemctl) == [
        "--user show --property=Version --value",
        "--user daemon-reload",
        "--user enable --now credhelper.socket",
    ]


def test_a_second_run_changes_nothing(fake_systemctl):
    install_systemd.install_units()
    _calls(fake_systemctl)
    assert install_systemd.install_units() == []
    assert _calls(fake_systemctl) == [
        "--user show --property=Version --value",
        "--user is-enabled --quiet credhelper.socket",
        "--user is-active --quiet credhelper.socket",
    ]


def test_a_disabled_socket_is_enabled_again(fake_systemctl, monkeypatch):
    install_systemd.install_units()
    monkeypatch.setenv("FAKE_DISABLED", "1")
    assert install_systemd.install_units() == ["systemd: systemctl --user enable --now credhelper.socket"]


def test_an_edited_unit_is_put_back(tmp_path, fake_systemctl):
    install_systemd.install_units()
    service = tmp_path / "config" / "systemd" / "user" / "credhelper.service"
    service.write_text(service.read_text().replace("Restart=on-failure", "Restart=no"))
    assert install_systemd.install_units()[0] == f"systemd: {service}: updated unit"
    assert "Restart=on-failure" in service.read_text()


def test_install_without_a_user_manager_says_what_to_run(tmp_path, fake_systemctl, monkeypatch):
    monkeypatch.setenv("FAKE_NO_MANAGER", "1")
    report = install_systemd.install_units()
    assert (tmp_path / "config" / "systemd" / "user" / "credhelper.socket").exists()
    assert _calls(fake_systemctl) == ["--user show --property=Version --value"]
    assert "systemctl --user enable --now credhelper.socket" in report[-1]


def test_dry_run_reports_the_same_lines_and_touches_nothing(tmp_path, fake_systemctl):
    planned = install_systemd.install_units(dry_run=True)
    assert not (tmp_path / "config").exists()
    assert _calls(fake_systemctl) == ["--user show --property=Version --value"]  # a query only
    assert planned == install_systemd.install_units()


def test_a_failing_systemctl_is_one_clear_error(fake_systemctl, monkeypatch):
    monkeypatch.setenv("FAKE_ENABLE_FAILS", "1")
    with pytest.raises(CredhelperError) as info:
        install_systemd.install_units()
    assert str(info.value) == (
        "systemctl --user enable --now credhelper.socket failed: "
        "Failed to enable unit: Unit file credhelper.socket does not exist."
    )
