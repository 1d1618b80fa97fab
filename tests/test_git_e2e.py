"""Real git over HTTPS against the emulator's feed, with the credential from the daemon."""

import pytest

from harness import Workspace


@pytest.fixture
def configured(ws: Workspace) -> Workspace:
    """A workspace with a federated account, git configured, daemon running."""
    ws.default_config()
    ws.credhelper("configure", "git")
    ws.start_daemon()
    return ws


def test_clone_fetch_push_through_the_daemon(configured: Workspace) -> None:
    ws, em = configured, configured.em
    em.feeds.add_git_repo("e2e-push.git")
    repo = em.git_url("e2e-push.git")
    checkout = ws.root / "checkout"
    ws.git("clone", "--quiet", repo, str(checkout))
    assert (checkout / "README.md").exists()

    ws.git("-C", str(checkout), "fetch", "--quiet", "origin")
    (checkout / "change.txt").write_text("from the test\n")
    ws.git("-C", str(checkout), "add", "change.txt")
    ws.git("-C", str(checkout), "-c", "user.name=Test", "-c", "user.email=t@example.com",
           "commit", "--quiet", "-m", "change")
    ws.git("-C", str(checkout), "push", "--quiet", "origin", "HEAD")

    second = ws.root / "second"
    ws.git("clone", "--quiet", repo, str(second))
    assert (second / "change.txt").read_text() == "from the test\n"
    seen = [entry for entry in em.feeds.log if "e2e-push.git" in entry["path"]]
    assert any(entry["status"] == 200 and entry["auth"] for entry in seen)
    assert em.idp.count(grant_type="client_credentials", client_id="fed-app") >= 1


def test_without_the_daemon_the_server_says_401(ws: Workspace) -> None:
    ws.default_config()
    ws.credhelper("configure", "git")
    proc = ws.git("clone", "--quiet", ws.em.git_url("demo.git"), str(ws.root / "nope"), check=False)
    assert proc.returncode != 0
    assert "401" in proc.stderr or "Authentication failed" in proc.stderr or "could not read" in proc.stderr
    assert "not running" in proc.stderr  # our helper said why, in one line
