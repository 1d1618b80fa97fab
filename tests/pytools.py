"""The pinned Python tools `make test` puts in .tools/ (uv, poetry, twine, pip wheels), and the
environment each of them runs with against the emulator: nothing of credhelper inside them.
"""

import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from credhelper.emulator import packages
from harness import Workspace

TOOLS = Path(__file__).resolve().parent.parent / ".tools"


def _one(pattern: str) -> Path:
    found = sorted(TOOLS.glob(pattern))
    if not found:
        pytest.fail(f"{TOOLS}/{pattern} is missing: run `make test` (it installs the pinned tools)")
    return found[-1]


def uv() -> Path:
    """uv from PyPI, installed on its own."""
    return _one("uv-*/bin/uv")


def poetry() -> Path:
    """poetry in a venv of its own (as pipx installs it)."""
    return _one("poetry-*/bin/poetry")


def twine() -> Path:
    """twine in a venv of its own."""
    return _one("twine-*/bin/twine")


def pip_wheels() -> List[Path]:
    """The pinned pip wheels: the newest pip, and the newest that still runs on Python 3.9."""
    wheels = sorted(TOOLS.glob("wheels/pip-*.whl"))
    if len(wheels) < 2:
        pytest.fail(f"{TOOLS}/wheels lacks the pinned pip wheels: run `make test`")
    return wheels


def fresh_venv(where: Path, pip_wheel: Path) -> Path:
    """A venv that has never heard of credhelper (nor keyring), with this pip; its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True,
                   timeout=120)
    python = where / "bin" / "python"
    # a wheel runs as a zip: pip installs itself into the venv without any index
    subprocess.run([str(python), str(pip_wheel / "pip"), "install", "-q", "--no-index",
                    "--disable-pip-version-check", str(pip_wheel)], check=True, timeout=300,
                   stdin=subprocess.DEVNULL)
    return python


def tool_env(ws: Workspace, **extra: str) -> Dict[str, str]:
    """The workspace env for pip, uv, poetry and twine: the emulator's CA, caches in the workspace.

    The harness sets ``PIP_NO_INPUT``; it goes, so pip runs with its defaults unless a test asks.
    """
    env = {k: v for k, v in ws.env.items() if not k.startswith(("UV_", "POETRY_", "TWINE_"))}
    env.pop("PIP_NO_INPUT", None)
    ca = str(ws.em.ca_file)
    env.update({
        "SSL_CERT_FILE": ca, "REQUESTS_CA_BUNDLE": ca,   # uv (rustls), poetry and twine (requests)
        "UV_CACHE_DIR": str(ws.root / "uv-cache"), "UV_PYTHON": sys.executable,
        "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1",
        "POETRY_CACHE_DIR": str(ws.root / "poetry-cache"),
        "POETRY_VIRTUALENVS_IN_PROJECT": "true",
    })
    env.update(extra)
    return env


def publishable(where: Path, name: str, version: str = "1.0.0") -> Path:
    """A built wheel of a tiny project, in a dist directory of its own."""
    where.mkdir(parents=True, exist_ok=True)
    filename, data = packages.wheel(name, version)
    (where / filename).write_bytes(data)
    return where / filename


def no_token_in(ws: Workspace, *texts: str) -> bool:
    """None of the tokens the emulator issued appears in ``texts``."""
    secrets = [s for s in ws.em.idp.secrets_issued() if len(s) >= 16]
    return not any(s in text for s in secrets for text in texts)


def installed(site: Path, project: str) -> bool:
    """Whether ``project``'s module landed in ``site``."""
    return (site / packages.module_name(project) / "__init__.py").exists()
