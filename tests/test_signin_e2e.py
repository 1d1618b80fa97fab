"""A person signs in once with a device code, through the real CLI, and git and pip work as them.

Also: the sign-in survives a restart (and a kill -9 in the middle of a cache write), a revoked
grant is reported and repaired, logout leaves no token anywhere, and several people sign in to
several tenants independently.
"""

import json
import signal
import sys
from pathlib import Path

import pytest

from credhelper.errors import NotSignedIn
from credhelper.keystore import KeyFileStore
from credhelper.vault import Vault
from harness import Workspace, wait_for
from signin import (Login, claims, person_config, pip_install, sign_in, stderr_lines,
                    two_accounts_config)

HERE = Path(__file__).resolve().parent


def cache_bytes(ws: Workspace) -> bytes:
    """The encrypted cache file as it sits on disk."""
    return (ws.state_dir / "cache.bin").read_bytes()


def decrypted_cache(ws: Workspace) -> dict:
    """The MSAL cache, decrypted through the Vault API with the key file (no keyring here)."""
    data = Vault(ws.state_dir / "cache.bin", KeyFileStore(ws.state_dir / "key")).load()
    assert data is not None, "the cache did not decrypt"
    return json.loads(data)


def no_secret_in(ws: Workspace, blob: bytes) -> bool:
    """True when none of the tokens the emulator issued appears in ``blob``."""
    return not any(secret.encode() in blob for secret in ws.em.idp.secrets_issued()
                   if len(secret) >= 16)




@pytest.fixture
def person(ws: Workspace) -> Workspace:
    """A workspace with one device_code account, git configured, daemon running, not signed in."""
    person_config(ws)
    ws.credhelper("configure", "git")
    ws.start_daemon()
    return ws


def test_sign_in_then_git_and_pip_work_as_that_person(person: Workspace) -> None:
    ws, em = person, person.em
    em.feeds.add_wheel("signin-pkg", "1.0.0")
    out = sign_in(ws, user="bob@contoso.com")
    assert "Signed in as bob@contoso.com (work)" in out

    checkout = ws.root / "checkout"
    seen = len(em.feeds.log)
    ws.git("clone", "--quiet", em.git_url(), str(checkout))
    assert (checkout / "README.md").exists()
    pip_install(ws, str(ws.root / "site"), "signin-pkg==1.0.0")
    assert (ws.root / "site" / "signin_pkg").is_dir()
    served = [e for e in em.feeds.log[seen:] if e["status"] == 200]
    assert any("/git/" in e["path"] for e in served) and any("/pypi/" in e["path"] for e in served)
    assert {e["upn"] for e in served} == {"bob@contoso.com"}

    token = ws.client().get(em.git_url(), for_="cli")["token"]
    assert claims(token)["upn"] == "bob@contoso.com"
    status = ws.credhelper("status").stdout
    assert "signed in as bob@contoso.com" in status
    assert "holds until about" in status  # the sign-in's horizon, from the refresh token's use
    assert "key file" in status  # no Secret Service in this environment


def test_restart_keeps_the_sign_in_from_the_encrypted_cache(person: Workspace) -> None:
    ws, em = person, person.em
    sign_in(ws, user="carol@contoso.com")
    ws.client().get(em.git_url(), for_="cli")  # a refresh: the rotated refresh token is persisted
    ws.stop_daemon()
    sign_ins, refreshes = em.idp.count(grant_type="device_code"), em.idp.count("refresh_token")
    # without the kept access token (test_restart_e2e.py) the sign-in must come from the cache
    (ws.state_dir / "tokens.bin").unlink(missing_ok=True)

    ws.start_daemon()
    assert "signed in as carol@contoso.com" in ws.credhelper("status").stdout
    ws.git("ls-remote", em.git_url())
    assert em.idp.count(grant_type="device_code") == sign_ins
    assert em.idp.count(grant_type="refresh_token") == refreshes + 1
    assert em.feeds.log[-1]["upn"] == "carol@contoso.com"
    assert no_secret_in(ws, cache_bytes(ws))  # encrypted: not one token in clear
    assert decrypted_cache(ws)["RefreshToken"]  # ...yet the refresh token is in there


def test_kill_9_during_a_cache_write_keeps_the_cache(ws: Workspace) -> None:
    em = ws.em
    two_accounts_config(ws)
    ws.start_daemon()
    sign_in(ws, "work", user="frank@contoso.com")
    ws.stop_daemon()
    before = cache_bytes(ws)

    marker = ws.root / "stalled"
    ws.start_daemon(command=[sys.executable, str(HERE / "stalling_daemon.py"), str(marker)])
    login = Login(ws, "other")
    em.idp.approve(login.user_code, user="grace@fabrikam.com")  # success → the daemon saves
    assert wait_for(marker.exists), "the cache write never started"
    assert list(ws.state_dir.glob(".cache.bin.tmp-*"))  # half a new cache is on disk
    ws.daemon.send_signal(signal.SIGKILL)
    ws.daemon.wait(10)
    code, _, err = login.finish()
    assert code == 3 and "Traceback" not in err  # the daemon went away: said in one line
    assert cache_bytes(ws) == before

    ws.start_daemon()
    status = json.loads(ws.credhelper("status", "--json").stdout)
    assert status["cache_problem"] is None
    signed = {a["name"]: a.get("signed_in") for a in status["accounts"]}
    assert signed["work"]["username"] == "frank@contoso.com" and signed["other"] is None
    # the refresh token saved before the crash still works
    assert claims(ws.client().get(em.git_url(), for_="cli")["token"])["upn"] == "frank@contoso.com"
    # and the next save sweeps the dead writer's half-written temp file
    assert wait_for(lambda: not list(ws.state_dir.glob(".cache.bin.tmp-*")))
    with pytest.raises(NotSignedIn):
        ws.client().get(f"{em.feed_base}/pypi/simple/", for_="cli")


def test_revoked_grant_says_sign_in_and_login_repairs_it(person: Workspace) -> None:
    ws, em = person, person.em
    em.feeds.add_wheel("revoked-pkg", "1.0.0")
    sign_in(ws, user="erin@contoso.com")
    held = ws.client().get(em.git_url(), for_="cli")["token"]
    em.idp.revoke("erin@contoso.com")
    # git reports a 401 by erasing our token; the next get must refresh, and the refresh fails
    ws.client().invalidate(em.git_url(), held)

    proc = ws.git("ls-remote", em.git_url(), check=False, timeout=30)
    assert proc.returncode != 0
    ours = stderr_lines(proc.stderr)
    assert len(ours) == 1 and "credhelper login work" in ours[0], proc.stderr
    assert "quit" in proc.stderr  # git stopped at our quit=1 instead of prompting
    assert "not signed in: run credhelper login work" in ws.credhelper("status").stdout

    pip = pip_install(ws, str(ws.root / "site"), "revoked-pkg==1.0.0", check=False)
    assert pip.returncode != 0
    ours = stderr_lines(pip.stderr)
    assert len(ours) == 1 and "credhelper login work" in ours[0], pip.stderr

    sign_in(ws, user="erin@contoso.com")
    ws.git("ls-remote", em.git_url())
    assert em.feeds.log[-1]["upn"] == "erin@contoso.com" and em.feeds.log[-1]["status"] == 200


def test_logout_leaves_no_token_anywhere(ws: Workspace) -> None:
    em = ws.em
    person_config(ws, npm=True)
    ws.start_daemon()
    sign_in(ws, user="heidi@contoso.com")
    assert wait_for(lambda: "_authToken=" in ws.npmrc.read_text() if ws.npmrc.exists() else False)
    ws.client().get(em.git_url(), for_="cli")
    assert decrypted_cache(ws)["RefreshToken"]

    out = ws.credhelper("logout").stdout
    assert "signed out of work" in out
    with pytest.raises(NotSignedIn, match="credhelper login work"):
        ws.client().get(em.git_url(), for_="cli")
    cache = decrypted_cache(ws)
    assert not cache["RefreshToken"] and not cache.get("AccessToken")
    assert not any(a.get("username") == "heidi@contoso.com" for a in cache["Account"].values())
    assert no_secret_in(ws, json.dumps(cache).encode())
    npmrc = ws.npmrc.read_text() if ws.npmrc.exists() else ""
    assert "_authToken" not in npmrc and no_secret_in(ws, npmrc.encode())
    assert "not signed in" in ws.credhelper("status").stdout


@pytest.mark.parametrize("ending, exit_code, says", [
    ("deny", 5, "declined"), ("expire", 6, "expired"), ("interrupt", 130, "cancelled"),
])
def test_a_sign_in_that_does_not_finish_says_why(person: Workspace, ending: str, exit_code: int,
                                                 says: str) -> None:
    ws, em = person, person.em
    login = Login(ws)
    if ending == "interrupt":
        login.interrupt()
    else:
        getattr(em.idp, ending)(login.user_code)
    code, out, err = login.finish()
    assert code == exit_code, err
    ours = stderr_lines(err)
    assert len(ours) == 1 and says in ours[0], err
    assert "Traceback" not in err and "Signed in" not in out
    if ending == "interrupt":  # the daemon's flow is gone too: approving now signs nobody in
        wait = ws.client().call("login_wait", account="work", wait=0)
        assert (wait["state"], wait["error"]) == ("failed", "cancelled")
        em.idp.approve(login.user_code, user="mallory@contoso.com")
    assert "not signed in" in ws.credhelper("status").stdout
    with pytest.raises(NotSignedIn):
        ws.client().get(em.git_url(), for_="cli")


def test_two_people_in_two_tenants_sign_in_independently(ws: Workspace) -> None:
    em = ws.em
    em.feeds.add_wheel("other-pkg", "1.0.0")
    two_accounts_config(ws)
    ws.credhelper("configure", "git")
    ws.start_daemon()
    git_url, pypi_url = em.git_url(), f"{em.feed_base}/pypi/simple/"

    assert "Signed in as ivan@contoso.com (work)" in sign_in(ws, "work", user="ivan@contoso.com")
    with pytest.raises(NotSignedIn, match="credhelper login other"):
        ws.client().get(pypi_url, for_="cli")
    assert "(other)" in sign_in(ws, "other", user="judy@fabrikam.com")

    def identities() -> dict:
        client = ws.client()
        return {name: {k: claims(client.get(url, for_="cli")["token"])[k] for k in ("upn", "tid")}
                for name, url in (("work", git_url), ("other", pypi_url))}

    expected = {"work": {"upn": "ivan@contoso.com", "tid": "contoso"},
                "other": {"upn": "judy@fabrikam.com", "tid": "fabrikam"}}
    assert identities() == expected
    ws.stop_daemon()
    ws.start_daemon()  # from the shared cache: each account finds its own person again
    assert identities() == expected

    seen = len(em.feeds.log)
    ws.git("ls-remote", git_url)
    pip_install(ws, str(ws.root / "site"), "other-pkg==1.0.0")
    upns = {("git" if "/git/" in e["path"] else "pypi", e["upn"])
            for e in em.feeds.log[seen:] if e["status"] == 200}
    assert upns == {("git", "ivan@contoso.com"), ("pypi", "judy@fabrikam.com")}

    ws.credhelper("logout", "other")
    with pytest.raises(NotSignedIn):
        ws.client().get(pypi_url, for_="cli")
    assert claims(ws.client().get(git_url, for_="cli")["token"])["upn"] == "ivan@contoso.com"


def test_git_and_pip_never_wait_for_a_person(person: Workspace) -> None:
    ws, em = person, person.em
    em.feeds.add_wheel("waiting-pkg", "1.0.0")
    before = set(em.idp.sessions.pending())
    login = Login(ws)  # a sign-in is open, nobody approves it yet
    try:
        git = ws.git("ls-remote", em.git_url(), check=False, timeout=30)
        assert git.returncode != 0 and len(stderr_lines(git.stderr)) == 1
        assert "credhelper login work" in git.stderr
        pip = pip_install(ws, str(ws.root / "site"), "waiting-pkg==1.0.0", check=False)
        assert pip.returncode != 0 and len(stderr_lines(pip.stderr)) == 1
        # nothing but `credhelper login` started a flow
        assert set(em.idp.sessions.pending()) - before == {login.user_code}
    finally:
        login.interrupt()
        login.finish()


def test_a_second_login_takes_over_the_first(person: Workspace) -> None:
    ws, em = person, person.em
    first = Login(ws)
    second = Login(ws)
    code, _, err = first.finish()
    assert code == 7 and "another credhelper login" in err, err
    em.idp.approve(second.user_code, user="niaj@contoso.com")
    code, out, _ = second.finish()
    assert code == 0 and "Signed in as niaj@contoso.com" in out
