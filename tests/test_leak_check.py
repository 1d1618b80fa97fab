"""The end-of-run leak check catches a leak: it must not pass because it looks at nothing."""

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, Tuple

import msal
import pytest

import leaks
from credhelper.auth import make_source
from credhelper.config import parse
from harness import ADO

SECRET_ENV = "CREDHELPER_TEST_LEAK_SECRET"


@pytest.fixture
def issued(em: "object", tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A token the emulator really issued, fetched by the product's own client-secret source."""
    monkeypatch.setenv(SECRET_ENV, em.client_secret)
    cfg = parse(f'[accounts.svc]\nauthority = "{em.idp_base}/{em.tenant}"\n'
                f'client_id = "secret-app"\nflow = "client_secret"\n'
                f'client_secret_env = "{SECRET_ENV}"\nca_bundle = "{em.ca_file}"\n',
                tmp_path / "config.toml")
    source = make_source(cfg.accounts["svc"], msal.SerializableTokenCache(), 3.0)
    try:
        return source.acquire((ADO,), 0.0).access_token
    finally:
        source.close()


def test_the_checker_finds_an_issued_token_in_a_log_file(em: "object", tmp_path: Path,
                                                         issued: str) -> None:
    secrets = em.idp.secrets_issued()
    assert issued in secrets  # the emulator remembers what it hands out
    leaky, clean = tmp_path / "daemon.log", tmp_path / "audit.log"
    leaky.write_text(f"2024-01-01 INFO credhelper.daemon: refreshed, got {issued}\n")
    clean.write_text('{"event":"get","outcome":"ok"}\n')
    assert leaks.count_leaks(secrets, leaks.read_texts([leaky])) == 1
    assert leaks.count_leaks(secrets, leaks.read_texts([clean, tmp_path / "missing"])) == 0
    with pytest.raises(AssertionError, match="1 token/secret occurrences"):
        leaks.check(secrets, leaks.read_texts([clean, leaky]), tokens_issued=1)
    leaks.check(secrets, leaks.read_texts([clean]), tokens_issued=1)


def test_the_checker_finds_the_secret_and_an_assertion_in_captured_output(em: "object") -> None:
    assertion = em.mint_workspace_token()
    em.idp.remember(assertion)  # what the token endpoint does with every assertion it receives
    secrets = em.idp.secrets_issued()
    outputs = [f"client_secret={em.client_secret}", f"assertion: {assertion[:-1]}",
               f"AADSTS700024 for {assertion}"]
    assert leaks.count_leaks(secrets, outputs) == 2  # a truncated copy is no match


def test_the_checker_refuses_to_prove_nothing() -> None:
    with pytest.raises(AssertionError, match="recorded no credentials"):
        leaks.check([], ["any output"], tokens_issued=3)
    leaks.check([], ["any output"], tokens_issued=0)


NESTED_TESTS = '''
def test_prints_an_assertion(em):
    assertion = em.mint_workspace_token()
    em.idp.remember(assertion)
    print("debug:", assertion)


def test_a_daemon_log_holds_the_client_secret(ws):
    ws.state_dir.mkdir(parents=True)
    (ws.state_dir / "daemon.log").write_text("secret=" + ws.em.client_secret + "\\n")


def test_clean(ws):
    ws.state_dir.mkdir(parents=True)
    (ws.state_dir / "daemon.log").write_text("INFO credhelper.daemon: ready\\n")
    print("debug: nothing to see")
'''


NESTED = {"test_prints_an_assertion": True, "test_a_daemon_log_holds_the_client_secret": True,
          "test_clean": False}


@pytest.fixture(scope="module")
def nested_runs(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Tuple[int, str]]:
    """Each nested test alone in a run of its own with the real conftest; all runs at once."""
    here = Path(__file__).parent

    def run(test: str) -> Tuple[int, str]:
        root = tmp_path_factory.mktemp(test)
        for name in ("conftest.py", "harness.py", "leaks.py"):
            (root / name).write_text((here / name).read_text())
        (root / "test_nested.py").write_text(NESTED_TESTS)
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "-k", test, str(root)], cwd=root, capture_output=True, text=True,
                              timeout=120)
        return proc.returncode, proc.stdout

    with ThreadPoolExecutor(max_workers=len(NESTED)) as pool:
        return dict(zip(NESTED, pool.map(run, NESTED)))


@pytest.mark.parametrize("test", list(NESTED))
def test_a_leaking_run_fails_at_the_end(nested_runs: Dict[str, Tuple[int, str]], test: str) -> None:
    """A leaking test fails the whole run at its end, and says why; a clean one does not."""
    code, stdout = nested_runs[test]
    # the output holds the nested emulator's credentials: never show it, only the verdict
    summary = stdout.strip().splitlines()[-1:]
    found = re.search(r"AssertionError: (\d+) token/secret occurrences found", stdout)
    if NESTED[test]:  # the test itself passed; the session's end failed it, naming the count
        failed_at_end = code == 1 and summary[0].startswith("1 passed") and \
            "1 error" in summary[0] and found is not None and int(found.group(1)) >= 1
        assert failed_at_end, summary
    else:
        passed = code == 0 and found is None
        assert passed, summary


NESTED_XDIST = '''
def test_leaks_on_the_second_worker_only(em, worker_id):
    assertion = em.mint_workspace_token()
    em.idp.remember(assertion)
    print("debug:", assertion if worker_id == "gw1" else "nothing to see")
'''


def test_each_parallel_worker_checks_its_own_output(tmp_path: Path) -> None:
    """Under pytest-xdist (make test) every worker has its own emulator and its own check: a
    leak seen only by the second worker still fails the run."""
    here = Path(__file__).parent
    for name in ("conftest.py", "harness.py", "leaks.py"):
        (tmp_path / name).write_text((here / name).read_text())
    (tmp_path / "test_nested_xdist.py").write_text(NESTED_XDIST)
    # --dist each: both workers run the test, so each one's end-of-run check has work to do
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-n", "2", "--dist", "each", str(tmp_path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=180)
    summary = proc.stdout.strip().splitlines()[-1:]  # the output holds credentials: verdict only
    # the "E   AssertionError" lines only: the short summary repeats the message when the terminal
    # is wide enough (COLUMNS), and must not count as a second worker's report
    found = re.findall(r"^E\s+AssertionError: (\d+) token/secret occurrences found", proc.stdout,
                       re.MULTILINE)
    caught = proc.returncode == 1 and summary[0].startswith("2 passed, 1 error") and \
        found == ["1"]
    assert caught, summary
