"""Shared fixtures: one emulator per session, a fresh workspace per test, and a leak check.

The leak check: every access token, refresh token, client secret and assertion the emulator
handed out during the run is searched for in every daemon log, audit log and every test's
captured output; finding one fails the run.
"""

from pathlib import Path
from typing import Iterator, List

import pytest

import leaks
from harness import Workspace


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator["object"]:
    """The Entra ID emulator and feed server, started once for the whole run."""
    from credhelper.emulator import Emulator

    em = Emulator(tmp_path_factory.mktemp("emulator"))
    em.start()
    yield em
    _check_no_leaks(em)
    em.stop()


@pytest.fixture
def em(emulator: "object") -> Iterator["object"]:
    """The session emulator with faults cleared before and after the test."""
    emulator.idp.clear_faults()
    yield emulator
    emulator.idp.clear_faults()


@pytest.fixture
def ws(tmp_path: Path, em: "object") -> Iterator[Workspace]:
    """A fresh workspace; its daemon is stopped and its logs queued for the leak check."""
    workspace = Workspace(tmp_path, em)
    yield workspace
    workspace.stop_daemon()
    leaks.watch(workspace)


@pytest.fixture(scope="module")
def module_ws(tmp_path_factory: pytest.TempPathFactory, emulator: "object") -> Iterator[Workspace]:
    """One workspace shared by a module's tests (starting a daemon per test costs seconds)."""
    workspace = Workspace(tmp_path_factory.mktemp("module-ws"), emulator)
    yield workspace
    workspace.stop_daemon()
    leaks.watch(workspace)


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator["object"]:
    """A scriptable stub IdP (tests/auth_stub_idp.py), one per test module."""
    from auth_stub_idp import StubIdp

    idp = StubIdp(tmp_path_factory.mktemp("idp")).start()
    yield idp
    idp.stop()


@pytest.fixture
def idp(stub: "object") -> "object":
    """The module's stub IdP with its script and log cleared."""
    stub.reset()
    return stub


# `make test-fast` runs the unit tests only (-m "not e2e"): these modules, which work in-process
# or against a fake daemon in well under a second a test. Everything else, and any test that asks
# for the emulator or the stub IdP wherever it lives, runs real servers, daemons and tools and is
# marked e2e. A new module counts as e2e until it is listed here.
_UNIT_MODULES = frozenset({
    "test_config", "test_configure", "test_fasttoml", "test_flatjson", "test_fleet", "test_git_frontend",
    "test_imports", "test_init_config", "test_route_memo", "test_uv_settings",
    "test_install_layout", "test_install_systemd", "test_npmrc_sink", "test_protocol",
    "test_routing", "test_schedule", "test_server_fast", "test_socket_claim", "test_socketpath",
    "test_systemd", "test_tokens",
    "test_vault", "test_workers", "test_yarnrc_sink",
})
_E2E_FIXTURES = frozenset({"emulator", "stub"})


def pytest_configure(config: pytest.Config) -> None:
    """Declare the markers this suite uses."""
    config.addinivalue_line("markers", "e2e: runs real servers, daemons or tools "
                                       "(left out by make test-fast)")


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    """Mark as e2e every test outside the unit modules, and every one needing a server."""
    for item in items:
        module = item.module.__name__ if getattr(item, "module", None) else ""
        if module.rsplit(".", 1)[-1] not in _UNIT_MODULES or \
                _E2E_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: "pytest.CallInfo[None]") -> Iterator[None]:
    """Keep each test's captured output for the end-of-run leak check."""
    outcome = yield
    report = outcome.get_result()
    leaks.captured.extend(content for _, content in report.sections)
    if report.longrepr is not None:
        leaks.captured.append(str(report.longrepr))


def _check_no_leaks(em: "object") -> None:
    issued = sum(1 for r in em.idp.requests if r["status"] == 200)
    leaks.check(em.idp.secrets_issued(), leaks.captured + leaks.read_texts(leaks.scanned_files),
                issued)
