"""Registry refresh tokens held by the daemon (credhelper.acr) on a fake clock, the docker and
cargo helpers' pure parts, and their standard-library-only imports.
"""

import base64
import json
import threading
from typing import List, Optional, Tuple

import pytest

from credhelper import acr
from credhelper.clock import FakeClock
from credhelper.errors import AuthFailed
from credhelper.frontends import cargo, docker

KEY = ("reg.azurecr.io", "work", ("https://containerregistry.azure.net/.default",))


def jwt_with_exp(exp: float) -> str:
    payload = base64.urlsafe_b64encode(json.dumps({"exp": int(exp)}).encode()).decode().rstrip("=")
    return f"e30.{payload}.sig"


class Registry:
    """Stands in for the registry's /oauth2/exchange: counts trades, answers 3-hour tokens."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.trades: List[Tuple[str, str, Optional[str]]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False

    def __call__(self, host: str, token: str, ca_bundle: Optional[str]) -> str:
        self.gate.wait(10)
        self.trades.append((host, token, ca_bundle))
        if self.fail:
            raise AuthFailed("the registry refused the token exchange (HTTP 401)")
        return jwt_with_exp(self.clock.now() + 3 * 3600)


def test_first_get_trades_then_memory_answers() -> None:
    clock = FakeClock()
    registry = Registry(clock)
    held = acr.RegistryTokens(clock, registry)
    first = held.get(KEY, lambda: "entra", "/ca.pem")
    assert registry.trades == [("reg.azurecr.io", "entra", "/ca.pem")]
    assert first.expires_on == clock.now() + 3 * 3600
    clock.advance(3600)
    assert held.get(KEY, lambda: "entra-2", None) is first
    assert len(registry.trades) == 1
    assert "entra" not in repr(first) and first.refresh_token not in repr(held)


def test_past_half_life_the_held_token_is_served_and_renewed_behind() -> None:
    clock = FakeClock()
    registry = Registry(clock)
    held = acr.RegistryTokens(clock, registry)
    first = held.get(KEY, lambda: "entra", None)
    clock.advance(1.5 * 3600 + 1)
    registry.gate.clear()                      # the renewal waits on the registry ...
    assert held.get(KEY, lambda: "entra", None) is first   # ... while the caller does not
    registry.gate.set()
    deadline = threading.Event()
    for _ in range(200):
        if held.peek(KEY) is not first:
            break
        deadline.wait(0.01)
    assert held.peek(KEY) is not first and len(registry.trades) == 2


def test_expired_tokens_are_traded_again_before_answering() -> None:
    clock = FakeClock()
    registry = Registry(clock)
    held = acr.RegistryTokens(clock, registry)
    first = held.get(KEY, lambda: "entra", None)
    clock.advance(3 * 3600 - 30)              # inside the last minute: not handed out
    assert held.peek(KEY) is None
    second = held.get(KEY, lambda: "entra", None)
    assert second is not first and len(registry.trades) == 2


def test_concurrent_cold_gets_trade_once() -> None:
    clock = FakeClock()
    registry = Registry(clock)
    held = acr.RegistryTokens(clock, registry)
    registry.gate.clear()
    results = []
    threads = [threading.Thread(target=lambda: results.append(held.get(KEY, lambda: "e", None)))
               for _ in range(20)]
    for thread in threads:
        thread.start()
    registry.gate.set()
    for thread in threads:
        thread.join(10)
    assert len(results) == 20 and len({id(r) for r in results}) == 1
    assert len(registry.trades) == 1


def test_failures_raise_and_hold_nothing_and_drop_forgets() -> None:
    clock = FakeClock()
    registry = Registry(clock)
    held = acr.RegistryTokens(clock, registry)
    registry.fail = True
    with pytest.raises(AuthFailed):
        held.get(KEY, lambda: "entra", None)
    assert held.peek(KEY) is None
    registry.fail = False
    token = held.get(KEY, lambda: "entra", None)
    assert held.invalidate(KEY, "something else") is False
    held.drop_account("other")
    assert held.peek(KEY) is token
    held.drop_account("work")
    assert held.peek(KEY) is None


def test_expiry_without_a_readable_exp_is_three_hours() -> None:
    assert acr.expiry_of("opaque", 100.0) == 100.0 + 3 * 3600
    assert acr.expiry_of(jwt_with_exp(5000), 100.0) == 5000.0
    assert acr.expiry_of(jwt_with_exp(50), 100.0) == 100.0 + 3 * 3600


@pytest.mark.parametrize("server,host", [
    ("reg.azurecr.io", "reg.azurecr.io"), ("https://REG.azurecr.io/v2/", "reg.azurecr.io"),
    ("reg.azurecr.io:443", "reg.azurecr.io"), ("localhost:5000\n", "localhost:5000"),
    ("http://reg.azurecr.io", None), ("reg@evil.example", None), ("", None),
    ("reg.azurecr.io\\evil", None), ("a b", None),
])
def test_docker_server_url_to_host(server: str, host: Optional[str]) -> None:
    assert docker.registry_host(server) == host


@pytest.mark.parametrize("url,index", [
    ("sparse+https://h.example/cargo/", "https://h.example/cargo/"),
    ("https://h.example/index", "https://h.example/index"),
    ("sparse+http://h.example/", None), ("ssh://h.example/", None), (7, None),
])
def test_cargo_index_url(url: object, index: Optional[str]) -> None:
    assert cargo.index_url({"registry": {"index-url": url}}) == index
