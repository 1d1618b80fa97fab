"""How `make` installs credhelper into .venv: one plain path entry, no import hook.

Every Python start (each git helper call among them) reads the .pth files in site-packages; an
editable install that adds a meta-path finder would run code on every one of those starts.
"""

import sysconfig
from pathlib import Path

import pytest

import credhelper

ROOT = Path(__file__).resolve().parent.parent


def test_an_editable_install_is_one_plain_path_entry() -> None:
    if Path(credhelper.__file__).resolve().parent.parent != ROOT:
        pytest.skip("credhelper is installed from a wheel here, not from this checkout")
    site = Path(sysconfig.get_paths()["purelib"])
    pth = sorted(site.glob("__editable__.credhelper-*.pth"))
    assert len(pth) == 1, sorted(p.name for p in site.glob("*credhelper*"))
    lines = [line for line in pth[0].read_text().splitlines() if line.strip()]
    assert lines == [str(ROOT)]  # a directory, not an `import` line
    assert not list(site.glob("__editable__*credhelper*finder*.py"))
