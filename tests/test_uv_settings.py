"""Where doctor's uv index check looks for uv's settings: the files uv 0.13.9 itself reads, in
the order it reads them (``uv-settings``: ``$UV_CONFIG_FILE``; else the nearest ``uv.toml``, or
``pyproject.toml`` with ``[tool.uv]``, from the current directory up; then the user's
``uv.toml``). Real files in a temporary tree; ``judge`` runs on what those files hold.
"""

from pathlib import Path
from typing import List

import pytest

from credhelper.commands.doctor import uvindex
from credhelper.commands.doctor.report import FAIL, OK, WARN

def settings_files(start: Path) -> List[Path]:
    return [path for path, _doc, _error in uvindex.uv_settings(start)]


PROJECT = '[project]\nname = "p"\nversion = "0.1.0"\n'
SERVED = {"pkgs.example.com": object()}


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("UV_CONFIG_FILE", "UV_NO_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    return tmp_path


def test_the_nearest_pyproject_with_tool_uv_wins_one_without_is_passed_over(tree: Path) -> None:
    (tree / "a" / "pyproject.toml").write_text(PROJECT + "[tool.uv]\n")
    (tree / "a" / "b" / "pyproject.toml").write_text(PROJECT)  # no [tool.uv]: uv skips it
    assert settings_files(tree / "a" / "b" / "c") == [tree / "a" / "pyproject.toml"]


def test_uv_toml_beats_pyproject_in_the_same_directory(tree: Path) -> None:
    (tree / "a" / "b" / "pyproject.toml").write_text(PROJECT + "[tool.uv]\n")
    (tree / "a" / "b" / "uv.toml").write_text("")
    assert settings_files(tree / "a" / "b" / "c") == [tree / "a" / "b" / "uv.toml"]


def test_the_users_uv_toml_comes_last(tree: Path) -> None:
    user = tree / "config" / "uv" / "uv.toml"
    user.parent.mkdir(parents=True)
    user.write_text("")
    (tree / "a" / "uv.toml").write_text("")
    assert settings_files(tree / "a" / "b") == [tree / "a" / "uv.toml", user]


def test_uv_config_file_replaces_the_search_and_uv_no_config_ends_it(
        tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tree / "a" / "uv.toml").write_text("")
    monkeypatch.setenv("UV_CONFIG_FILE", str(tree / "elsewhere.toml"))
    assert settings_files(tree / "a") == [tree / "elsewhere.toml"]
    monkeypatch.setenv("UV_NO_CONFIG", "1")
    assert settings_files(tree / "a") == []


@pytest.mark.parametrize("entry, status", [
    ({"name": "x", "url": "https://pkgs.example.com/feed/pypi/simple/"}, WARN),
    ({"name": "x", "url": "https://pkgs.example.com/feed/pypi/simple/", "authenticate": "auto"}, WARN),
    ({"name": "x", "url": "https://pkgs.example.com/feed/pypi/simple/", "authenticate": "always"}, OK),
    ({"name": "x", "url": "https://pkgs.example.com/feed/pypi/simple/", "authenticate": "never"}, FAIL),
    # uv fetches a password before the first request when the URL names a user
    ({"name": "x", "url": "https://me@pkgs.example.com/feed/pypi/simple/"}, None),
    ({"name": "x", "url": "https://pypi.org/simple/"}, None),   # not a host credhelper serves
    ({"name": "x", "url": "./wheels"}, None),                   # a local flat index
    ({"name": "x"}, None),
])
def test_judge(entry: dict, status: object) -> None:
    found = uvindex._judge(Path("/p/pyproject.toml"), entry, SERVED)
    assert (found.status if found else None) == status
    if found is not None:
        assert found.message.startswith("/p/pyproject.toml: index 'x' (https://pkgs.example.com/")
