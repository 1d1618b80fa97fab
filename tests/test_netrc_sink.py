"""The netrc sink on real files: which hosts it may serve, the block it keeps, and what it leaves.

The files are read back with the standard library's ``netrc`` module, the parser requests (and
so pip, poetry and twine) uses, so "the tool would find it" is checked, not assumed.
"""

import netrc
import os
import stat
from pathlib import Path
from typing import List

import pytest

from credhelper.config import parse
from credhelper.errors import ConfigError
from credhelper.sinks.netrc import NetrcSink, block_entries, has_block, other_entries, plan

ACCOUNTS = """\
[accounts.work]
authority = "https://login.microsoftonline.com/contoso"
client_id = "app"
flow = "device_code"

[accounts.other]
authority = "https://login.microsoftonline.com/contoso"
client_id = "app2"
flow = "device_code"
"""
ADO = '["499b84ac-1321-427f-aa17-267ca6975798/.default"]'


def config(tmp_path: Path, *routes: str):
    text = ACCOUNTS + "".join(f"\n[[routes]]\n{r}\n" for r in routes)
    return parse(text, tmp_path / "config.toml")


def route(url: str, account: str = "work", scopes: str = ADO, extra: str = "") -> str:
    return f'url = "{url}"\naccount = "{account}"\nscopes = {scopes}\n{extra}'


def test_plan_serves_a_host_only_when_every_route_on_it_agrees(tmp_path):
    cfg = config(
        tmp_path,
        route("https://pkgs.example/a/"), route("https://pkgs.example:8443/b/"),   # any port
        route("https://split.example/a/"), route("https://split.example/b/", account="other"),
        route("https://scopes.example/a/"), route("https://scopes.example/b/", scopes='["x/.default"]'),
        route("https://users.example/a/"), route("https://users.example/b/", extra='username = "u2"'),
        route("https://[::1]:8443/"))
    served, skipped = plan(cfg.routes)
    assert sorted(served) == ["pkgs.example"]
    assert served["pkgs.example"].slot == ("work", ("499b84ac-1321-427f-aa17-267ca6975798/.default",))
    assert served["pkgs.example"].username == "work"
    assert sorted(skipped) == ["::1", "scopes.example", "split.example", "users.example"]
    assert "cannot be written in netrc" in skipped.pop("::1")
    assert all("netrc can hold one per host" in why for why in skipped.values())


def sink_for(tmp_path: Path, *routes: str, gate=None) -> NetrcSink:
    sink = NetrcSink(tmp_path / "home" / ".netrc", gate)
    (tmp_path / "home").mkdir(exist_ok=True)
    sink.reconfigure(config(tmp_path, *routes))
    return sink


def test_block_keeps_the_rest_of_the_file_and_is_read_by_pythons_netrc(tmp_path):
    sink = sink_for(tmp_path, route("https://pkgs.example/feed/"), route("https://dev.example/"))
    mine = "# mine\nmachine example.org\n  login me\n  password hunter2\n\ndefault login anon password x"
    sink.path.write_text(mine)
    sink.path.chmod(0o644)
    sink.write({"https://pkgs.example/feed/": "tok.en.one", "https://dev.example/": "tok.en.two"})
    text = sink.path.read_text()
    assert text.startswith(mine + "\n# >>> credhelper >>>\n")
    assert stat.S_IMODE(sink.path.stat().st_mode) == 0o600
    parsed = netrc.netrc(str(sink.path))
    assert parsed.authenticators("pkgs.example") == ("work", "", "tok.en.one")
    assert parsed.authenticators("dev.example") == ("work", "", "tok.en.two")
    assert parsed.authenticators("example.org") == ("me", "", "hunter2")
    assert block_entries(sink.path) == {"dev.example": ("work", "tok.en.two"),
                                        "pkgs.example": ("work", "tok.en.one")}
    sink.write({"https://dev.example/": "tok.en.three"})          # a refresh: one line changes
    assert netrc.netrc(str(sink.path)).authenticators("dev.example")[2] == "tok.en.three"
    sink.remove()
    assert sink.path.read_text() == mine                          # byte for byte, last line too


def test_forget_an_account_and_reconfigure_drop_their_lines(tmp_path):
    sink = sink_for(tmp_path, route("https://a.example/"), route("https://b.example/", account="other"))
    sink.write({"https://a.example/": "ta", "https://b.example/": "tb"})
    sink.forget(["https://b.example/"])
    assert sorted(block_entries(sink.path)) == ["a.example"]
    sink.reconfigure(config(tmp_path, route("https://c.example/")))
    assert not sink.path.exists()                                 # we created it: it goes


def test_nothing_is_written_while_the_gate_is_shut(tmp_path):
    open_ = {"value": False}
    sink = sink_for(tmp_path, route("https://a.example/"), gate=lambda: open_["value"])
    sink.write({"https://a.example/": "ta"})
    assert not sink.path.exists() and not sink.enabled()
    open_["value"] = True
    sink.write({"https://a.example/": "ta"})
    assert has_block(sink.path)


@pytest.mark.parametrize("token", ["a b", "a\nmachine evil.example", "a#b", 'a"b', "", "a\\b"])
def test_refuses_a_token_netrc_would_misread(tmp_path, token):
    sink = sink_for(tmp_path, route("https://a.example/"))
    with pytest.raises(ValueError):
        sink.write({"https://a.example/": token})
    assert not sink.path.exists()


def test_refuses_unknown_registries_and_symlinks(tmp_path):
    sink = sink_for(tmp_path, route("https://a.example/"))
    with pytest.raises(ConfigError):
        sink.write({"https://elsewhere.example/": "t"})
    target = tmp_path / "dotfiles-netrc"
    target.write_text("")
    os.symlink(target, sink.path)
    with pytest.raises(ConfigError, match="symlink"):
        sink.write({"https://a.example/": "t"})
    assert target.read_text() == ""


def test_other_entries_finds_a_competing_machine_line(tmp_path):
    sink = sink_for(tmp_path, route("https://a.example/"), route("https://b.example/"))
    sink.path.write_text("machine a.example login x password y\n# machine b.example\n")
    sink.write({"https://a.example/": "ta", "https://b.example/": "tb"})
    found: List[str] = other_entries(sink.path, ["a.example", "b.example"])
    assert found == ["a.example"]
