"""Install the systemd user units: a socket that starts the daemon on the first git or pip call.

The unit texts live here, not only in ``systemd/``, because a wheel carries no files outside the
package; ``systemd/`` holds the same units rendered for a system-wide ``/usr/bin/credhelper``
(a test keeps the two identical). ``ExecStart`` must be absolute, so it is rendered at install
time from the interpreter running this code.
"""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..atomic import write_atomic
from ..errors import CredhelperError

SOCKET_UNIT = """\
[Unit]
Description=credhelper socket: short-lived Entra ID tokens for git, pip and npm

[Socket]
# The same path credhelper's clients use when XDG_RUNTIME_DIR is set (%t is XDG_RUNTIME_DIR).
ListenStream=%t/credhelper/daemon.sock
SocketMode=0600
DirectoryMode=0700
RemoveOnStop=yes

[Install]
WantedBy=sockets.target
"""

# Only hardening a user manager can apply without user namespaces: PrivateTmp=, ProtectSystem=,
# ProtectHome= and friends make an unprivileged manager turn on PrivateUsers=, and the unit then
# fails to start wherever unprivileged user namespaces are off (hardened kernels, Ubuntu 24.04's
# AppArmor policy). The seccomp-based options below need only NoNewPrivileges=.
SERVICE_UNIT = """\
[Unit]
Description=credhelper daemon: short-lived Entra ID tokens for git, pip and npm
Requires=credhelper.socket
After=credhelper.socket

[Service]
Type=notify
NotifyAccess=main
ExecStart={command} daemon
ExecReload={command} reload
Restart=on-failure
RestartSec=2s
UMask=0077
NoNewPrivileges=yes
LockPersonality=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RestrictNamespaces=yes
SystemCallArchitectures=native

[Install]
Also=credhelper.socket
"""

UNIT_NAMES = ("credhelper.socket", "credhelper.service")
SYSTEMCTL_TIMEOUT = 30.0


def credhelper_command() -> List[str]:
    """The absolute command that runs this credhelper: its console script, else ``python -m``."""
    script = Path(sys.executable).parent / "credhelper"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "credhelper"]


def _systemd_quote(word: str, executable: bool) -> str:
    """Quote one ExecStart word for systemd: double quotes for spaces, ``%%`` for ``%`` (its
    specifiers), and ``$$`` for ``$`` in arguments (systemd expands variables there only)."""
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    if not executable:
        escaped = escaped.replace("$", "$$")
    if escaped == word and word and not any(c.isspace() for c in word):
        return word
    return f'"{escaped}"'


def render_units(command: Optional[Sequence[str]] = None) -> Dict[str, str]:
    """The unit files, by name, with ``ExecStart`` pointing at ``command`` (default: this one)."""
    words = list(command) if command else credhelper_command()
    rendered = " ".join(_systemd_quote(word, i == 0) for i, word in enumerate(words))
    return {
        "credhelper.socket": SOCKET_UNIT,
        "credhelper.service": SERVICE_UNIT.format(command=rendered),
    }


def unit_dir() -> Path:
    """``$XDG_CONFIG_HOME/systemd/user``: where a user's own units go."""
    config = os.environ.get("XDG_CONFIG_HOME")
    if not config or not os.path.isabs(config):
        config = os.path.join(os.environ.get("HOME") or os.path.expanduser("~"), ".config")
    return Path(config) / "systemd" / "user"


def user_manager_available() -> bool:
    """True when ``systemctl --user`` reaches a running user manager."""
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return False
    try:
        result = subprocess.run(
            [systemctl, "--user", "show", "--property=Version", "--value"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=SYSTEMCTL_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _write(path: Path, text: str) -> None:
    """Write ``text`` atomically (temp file, fsync, rename), mode 0644 like any unit file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode("utf-8"), 0o644)


def _socket_running() -> bool:
    """True when credhelper.socket is both enabled and active in the user manager."""
    for query in ("is-enabled", "is-active"):
        try:
            result = subprocess.run(
                ["systemctl", "--user", query, "--quiet", "credhelper.socket"],
                stdin=subprocess.DEVNULL, capture_output=True, timeout=SYSTEMCTL_TIMEOUT,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        if result.returncode != 0:
            return False
    return True


def _systemctl(*args: str) -> None:
    argv = ["systemctl", "--user", *args]
    try:
        result = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=SYSTEMCTL_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CredhelperError(f"{shlex.join(argv)} failed: {exc}") from exc
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        raise CredhelperError(f"{shlex.join(argv)} failed: {reason}")


def install_units(dry_run: bool = False) -> List[str]:
    """Write the units and enable the socket, like ``configure``: one line per change (the same
    lines, with nothing done, for ``dry_run``); a second run returns ``[]``."""
    changes = []
    for name, text in render_units().items():
        path = unit_dir() / name
        current = _read(path)
        if current != text:
            changes.append(f"systemd: {path}: {'new' if current is None else 'updated'} unit")
            if not dry_run:
                _write(path, text)
    if not user_manager_available():
        changes.append("systemd: no user manager is running here; when one is, run: "
                       "systemctl --user daemon-reload && "
                       "systemctl --user enable --now credhelper.socket")
        return changes
    steps: List[Tuple[str, ...]] = []
    if changes:
        steps.append(("daemon-reload",))
    if changes or not _socket_running():
        steps.append(("enable", "--now", "credhelper.socket"))
    for step in steps:
        changes.append("systemd: " + shlex.join(["systemctl", "--user", *step]))
        if not dry_run:
            _systemctl(*step)
    return changes
