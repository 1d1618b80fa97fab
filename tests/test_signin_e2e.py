"""A person signs in once with a device code, through the real CLI, and git and pip work as them."""

import pytest

from harness import Workspace
from signin import claims, person_config, pip_install, sign_in


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


def test_restart_keeps_the_sign_in_from_the_encrypted_cache(person: Workspace) -> None:
    ws, em = person, person.em
    sign_in(ws, user="carol@contoso.com")
    ws.client().get(em.git_url(), for_="cli")  # a refresh: the rotated refresh token is persisted
    ws.stop_daemon()
    sign_ins, refreshes = em.idp.count(grant_type="device_code"), em.idp.count("refresh_token")

    ws.start_daemon()
    assert "signed in as carol@contoso.com" in ws.credhelper("status").stdout
    ws.git("ls-remote", em.git_url())
    assert em.idp.count(grant_type="device_code") == sign_ins
    assert em.idp.count(grant_type="refresh_token") == refreshes + 1
    assert em.feeds.log[-1]["upn"] == "carol@contoso.com"
