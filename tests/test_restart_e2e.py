"""A restarted daemon serves the tokens it held, from the encrypted vault, and asks nobody.

The real daemon, restarted against the emulator, for a workload (federated) and a person
(device code): the token endpoint sees no request after the restart while the kept token is
fresh; logout and invalidate take the kept token with them. The refresh of a kept token whose
planned time has passed runs in-process on a fake clock (the real sources, the real vault).
"""

import random
import time
from pathlib import Path
from typing import List

import msal
import pytest

from credhelper import config as config_mod
from credhelper.auth import make_source
from credhelper.clock import FakeClock
from credhelper.errors import NotSignedIn
from credhelper.kept import KeptTokens
from credhelper.keystore import KeyFileStore
from credhelper.tokens import TokenManager
from credhelper.vault import Vault
from harness import ADO, Workspace, toml_value, wait_for
from signin import person_config, sign_in


def _restart(ws: Workspace) -> None:
    assert ws.stop_daemon() == 0, ws.daemon_output()
    ws.start_daemon()


def _kept_file_holds_no_clear_token(ws: Workspace, token: str) -> None:
    # a sink may have started the slot's acquisition: its thread writes the file after answering
    kept = ws.state_dir / "tokens.bin"
    assert wait_for(kept.exists), ws.daemon_output()
    blob = kept.read_bytes()
    assert token.encode() not in blob and token.split(".")[1].encode() not in blob


def test_a_restarted_workload_daemon_serves_its_kept_token(ws: Workspace) -> None:
    em = ws.em
    ws.default_config()
    ws.start_daemon()
    url = f"{em.feed_base}/pypi/simple/"
    token = ws.client().get(url)["token"]
    _kept_file_holds_no_clear_token(ws, token)
    asked = len(em.idp.requests)
    _restart(ws)
    assert ws.client().get(url)["token"] == token
    assert len(em.idp.requests) == asked, "the restart asked the identity provider"
    assert "kept 1 token(s) from the last run" in ws.logs()

    # invalidate (git's erase, a 401 seen by a tool) drops the kept copy too
    ws.client().invalidate(url, token)
    assert ws.stop_daemon() == 0
    ws.start_daemon()
    fresh = ws.client().get(url)["token"]
    assert fresh != token and len(em.idp.requests) == asked + 1


def test_a_restarted_person_daemon_serves_its_kept_token_until_logout(ws: Workspace) -> None:
    em = ws.em
    person_config(ws)
    ws.start_daemon()
    sign_in(ws, user="olga@contoso.com")
    token = ws.client().get(em.git_url())["token"]
    _kept_file_holds_no_clear_token(ws, token)
    asked = len(em.idp.requests)
    _restart(ws)
    assert ws.client().get(em.git_url())["token"] == token
    assert len(em.idp.requests) == asked, "the restart asked the identity provider"

    ws.credhelper("logout")
    _restart(ws)
    with pytest.raises(NotSignedIn):
        ws.client().get(em.git_url())
    assert len(em.idp.requests) == asked


def test_a_changed_account_does_not_adopt_the_old_token(ws: Workspace) -> None:
    em = ws.em
    ws.default_config()
    ws.start_daemon()
    url = f"{em.feed_base}/pypi/simple/"
    token = ws.client().get(url)["token"]
    assert wait_for((ws.state_dir / "tokens.bin").exists)
    assert ws.stop_daemon() == 0
    other_gp = ws.gp.with_name("gp-copy")  # the same assertions, another command: a new account
    other_gp.write_bytes(ws.gp.read_bytes())
    other_gp.chmod(0o755)
    text = ws.config_path.read_text()
    assert toml_value(str(ws.gp)) in text
    ws.config_path.write_text(text.replace(toml_value(str(ws.gp)), toml_value(str(other_gp))))
    ws.start_daemon()
    assert ws.client().get(url)["token"] != token


def test_a_damaged_kept_file_is_moved_aside_and_the_daemon_starts(ws: Workspace) -> None:
    em = ws.em
    ws.default_config()
    ws.start_daemon()
    url = f"{em.feed_base}/pypi/simple/"
    ws.client().get(url)
    kept = ws.state_dir / "tokens.bin"
    assert wait_for(kept.exists)
    assert ws.stop_daemon() == 0
    kept.write_bytes(kept.read_bytes()[:-5] + b"xxxxx")
    ws.start_daemon()
    assert ws.client().get(url)["token"]
    assert list(ws.state_dir.glob("tokens.bin.corrupt-*"))


def test_a_kept_token_past_its_refresh_time_is_refreshed_in_the_background(
        em: "object", tmp_path: Path) -> None:
    account = ws_account(em, tmp_path)
    accounts = {"fed": account}
    clock = FakeClock(start=time.time())
    store = KeptTokens(Vault(tmp_path / "state" / "tokens.bin", KeyFileStore(tmp_path / "state" / "key")))

    def manager() -> TokenManager:
        sources = {"fed": make_source(account, msal.SerializableTokenCache(), 3.0)}
        tokens = TokenManager(sources, clock, rng=random.Random(7))
        tokens._on_change = lambda: store.save(tokens.kept, accounts)
        return tokens

    first = manager()
    token = first.get("fed", (ADO,))
    store.save(first.kept, accounts)
    planned = first.status()[0]["next_refresh"]
    asked = len(em.idp.requests)

    second = manager()  # the restart, while the token is fresh and its refresh not yet due
    assert second.restore(store.load(accounts)) == 1
    assert second.next_due() == planned
    assert second.get("fed", (ADO,)) == token
    second.run_due(wait=True)
    assert len(em.idp.requests) == asked

    clock.advance(planned - clock.now() + 1)
    third = manager()  # restarted after the planned refresh: the next pass refreshes it
    assert third.restore(store.load(accounts)) == 1
    assert third.get("fed", (ADO,)) == token  # still served meanwhile: it is fresh
    third.run_due(wait=True)
    assert len(em.idp.requests) == asked + 1
    assert third.get("fed", (ADO,)) != token
    status: List[dict] = third.status()
    assert status[0]["state"] == "fresh" and status[0]["next_refresh"] > clock.now()


def ws_account(em: "object", tmp_path: Path) -> config_mod.Account:
    """The emulator's federated app, the fake `gp` minting assertions, as a parsed account."""
    ws = Workspace(tmp_path / "ws", em)
    ws.default_config()
    return config_mod.load(ws.config_path).accounts["workspace"]
