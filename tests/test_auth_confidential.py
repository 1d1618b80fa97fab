"""Confidential flows through real MSAL against a local HTTPS stub IdP."""

import sys
import textwrap
import time
from pathlib import Path
from typing import List

import msal
import pytest

from auth_stub_idp import StubIdp, make_account, make_client_certificate
from credhelper.auth import make_source
from credhelper.errors import AuthFailed, CredhelperError, IdpUnavailable, Throttled

SCOPES = ("api://credhelper-feed/.default",)


def assert_clean(exc: BaseException, secrets: List[str]) -> None:
    """No token, secret or assertion in the message (and so none on the wire or in logs)."""
    text = str(exc)
    for secret in secrets:
        assert secret not in text, "secret material leaked into an error message"
    assert "\n" not in text


def secret_source(idp: StubIdp, monkeypatch: pytest.MonkeyPatch, timeout: float = 5.0):
    idp.client_secret = "s3cret-value-" + "x" * 20
    monkeypatch.setenv("STUB_SECRET", idp.client_secret)
    account = make_account(flow="client_secret", authority=idp.authority,
                           client_secret_env="STUB_SECRET", ca_bundle=str(idp.ca_file))
    return make_source(account, msal.SerializableTokenCache(), http_timeout=timeout)


def test_client_secret_gets_token_and_always_asks_the_idp(idp, monkeypatch) -> None:
    source = secret_source(idp, monkeypatch)
    first = source.acquire(SCOPES, now=1000.0)
    second = source.acquire(SCOPES, now=2000.0)
    assert idp.count("client_credentials") == 2
    assert first.access_token in idp.issued and second.access_token in idp.issued
    assert first.access_token != second.access_token
    assert (first.expires_on, first.refresh_on) == (1000.0 + 3600, 1000.0 + 1800)
    assert second.expires_on == 2000.0 + 3600
    assert first.access_token not in repr(first)
    assert idp.requests[-1]["form"]["scope"] == SCOPES[0]


def test_refresh_in_absent_gives_no_refresh_on(idp, monkeypatch) -> None:
    idp.refresh_in = 0
    token = secret_source(idp, monkeypatch).acquire(SCOPES, now=5.0)
    assert token.refresh_on is None and token.expires_on == 5.0 + 3600


def test_secret_read_at_each_acquire_and_wrong_secret_is_not_cached(idp, monkeypatch) -> None:
    source = secret_source(idp, monkeypatch)
    right = idp.client_secret
    monkeypatch.setenv("STUB_SECRET", "wrong-secret-value-123456789")
    with pytest.raises(AuthFailed) as caught:
        source.acquire(SCOPES, now=0.0)
    assert type(caught.value) is AuthFailed
    assert "AADSTS7000215 invalid_client" in str(caught.value)
    assert_clean(caught.value, [right, "wrong-secret-value-123456789"])
    monkeypatch.setenv("STUB_SECRET", right)
    assert source.acquire(SCOPES, now=0.0).access_token in idp.issued


def test_same_request_after_a_400_reaches_the_idp_again(idp, monkeypatch) -> None:
    source = secret_source(idp, monkeypatch)
    idp.script.append(("error", "invalid_request", 90014, "AADSTS90014: missing field"))
    with pytest.raises(AuthFailed, match="AADSTS90014 invalid_request"):
        source.acquire(SCOPES, now=0.0)
    source.acquire(SCOPES, now=0.0)  # MSAL would have answered its cached 400 for 60 s
    assert idp.count("client_credentials") == 2


def test_missing_secret_env_names_the_variable(idp, monkeypatch) -> None:
    source = secret_source(idp, monkeypatch)
    monkeypatch.delenv("STUB_SECRET")
    with pytest.raises(AuthFailed, match="STUB_SECRET is not set"):
        source.acquire(SCOPES, now=0.0)
    assert idp.count("client_credentials") == 0


def test_429_is_throttled_with_retry_after_and_not_remembered(idp, monkeypatch) -> None:
    source = secret_source(idp, monkeypatch)
    idp.script.append(("429", 42))
    with pytest.raises(Throttled) as caught:
        source.acquire(SCOPES, now=0.0)
    assert caught.value.retry_after == 42.0 and caught.value.code == "throttled"
    source.acquire(SCOPES, now=1.0)  # MSAL's throttle cache would have refused for 42 s
    assert idp.count("client_credentials") == 2


def test_500_is_idp_unavailable(idp, monkeypatch) -> None:
    source = secret_source(idp, monkeypatch)
    idp.script.append(("500",))
    with pytest.raises(IdpUnavailable, match="HTTP 500"):
        source.acquire(SCOPES, now=0.0)
    source.acquire(SCOPES, now=1.0)
    assert idp.count("client_credentials") == 2


def test_hanging_idp_is_unavailable_within_the_timeout(idp, monkeypatch) -> None:
    source = secret_source(idp, monkeypatch, timeout=0.5)
    source.acquire(SCOPES, now=0.0)  # discovery done; the next request is the token POST
    idp.script.append(("hang", 20))
    started = time.monotonic()
    with pytest.raises(IdpUnavailable, match="did not answer within 0.5s"):
        source.acquire(SCOPES, now=1.0)
    assert time.monotonic() - started < 10


def test_timeout_comes_from_the_environment(monkeypatch) -> None:
    from credhelper.auth.http import HttpClient
    monkeypatch.setenv("CREDHELPER_HTTP_TIMEOUT", "2.5")
    assert HttpClient().timeout == 2.5
    monkeypatch.setenv("CREDHELPER_HTTP_TIMEOUT", "nonsense")
    assert HttpClient().timeout == 10.0
    assert HttpClient(timeout=1).timeout == 1.0


def test_unreachable_idp_is_unavailable(tmp_path) -> None:
    account = make_account(flow="client_secret", authority="https://127.0.0.1:9/contoso",
                           client_secret_env="PATH")
    with pytest.raises(IdpUnavailable, match="cannot reach"):
        make_source(account, msal.SerializableTokenCache(), 2).acquire(SCOPES, now=0.0)


def test_ca_bundle_wins_over_requests_and_curl_bundle_env(idp, monkeypatch) -> None:
    import certifi
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())  # does not hold the stub's CA
    monkeypatch.setenv("CURL_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    assert secret_source(idp, monkeypatch).acquire(SCOPES, now=0.0).access_token
    without = make_account(flow="client_secret", authority=idp.authority,
                           client_secret_env="STUB_SECRET")
    with pytest.raises(IdpUnavailable, match="TLS verification failed"):
        make_source(without, msal.SerializableTokenCache(), 5).acquire(SCOPES, now=0.0)


def test_ca_bundle_is_extra_trust_and_shared_by_every_client(idp, tmp_path) -> None:
    import certifi
    from credhelper.auth.http import HttpClient
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    try:
        client = HttpClient(str(idp.ca_file))
        other = HttpClient(str(idp.ca_file))
    finally:
        monkeypatch.undo()
    bundle = Path(client._verify)  # type: ignore[arg-type]
    text = bundle.read_text()
    assert text.startswith(Path(certifi.where()).read_text().rstrip("\n"))
    assert text.rstrip().endswith(idp.ca_file.read_text().strip())
    # one file and one pool manager for all: each TLS context would hold the whole CA list
    assert other._verify == client._verify
    assert other._session.get_adapter("https://x/") is client._session.get_adapter("https://x/")
    client.close()
    assert bundle.exists()  # still other's; the daemon's exit removes it (test_daemon)


def test_oidc_authority(idp, monkeypatch) -> None:
    idp.client_secret = "another-secret-value"
    monkeypatch.setenv("STUB_SECRET", idp.client_secret)
    account = make_account(flow="client_secret", oidc_authority=f"{idp.base}/oidc",
                           client_secret_env="STUB_SECRET", ca_bundle=str(idp.ca_file))
    make_source(account, msal.SerializableTokenCache(), 5).acquire(SCOPES, now=0.0)
    assert idp.requests[-1]["path"] == "/oidc/oauth2/v2.0/token"


def test_malformed_token_is_refused(idp, monkeypatch) -> None:
    source = secret_source(idp, monkeypatch)
    source.acquire(SCOPES, now=0.0)
    for bad in ("abc\r\nX-Evil: 1", "abc def", "abc\x00"):
        idp.script.append(("raw", {"access_token": bad, "expires_in": 3600,
                                   "token_type": "Bearer"}))
        with pytest.raises(AuthFailed, match="malformed access token") as caught:
            source.acquire(SCOPES, now=0.0)
        assert_clean(caught.value, [bad])


def test_certificate_flow_signs_a_ps256_assertion(idp, tmp_path) -> None:
    pem = tmp_path / "sp.pem"
    idp.client_cert = make_client_certificate(pem)
    account = make_account(flow="certificate", authority=idp.authority,
                           certificate_file=str(pem), ca_bundle=str(idp.ca_file))
    source = make_source(account, msal.SerializableTokenCache(), 5)
    assert source.acquire(SCOPES, now=0.0).access_token in idp.issued
    form = idp.requests[-1]["form"]
    assert form["client_assertion_type"].endswith("jwt-bearer")
    # A new certificate at the same path is picked up on the next acquire.
    idp.client_cert = make_client_certificate(pem)
    assert source.acquire(SCOPES, now=0.0).access_token in idp.issued


def test_certificate_file_problems_are_one_clear_line(idp, tmp_path) -> None:
    pem = tmp_path / "sp.pem"
    make_client_certificate(pem)
    key_only = pem.read_text().split("-----BEGIN CERTIFICATE-----")[0]
    (tmp_path / "key.pem").write_text(key_only)
    other = tmp_path / "other.pem"
    make_client_certificate(other)
    (tmp_path / "mixed.pem").write_text(key_only + other.read_text().split("KEY-----\n")[-1])
    cases = {"missing.pem": "No such file", "key.pem": "needs both",
             "mixed.pem": "does not belong"}
    for name, message in cases.items():
        account = make_account(flow="certificate", authority=idp.authority,
                               certificate_file=str(tmp_path / name), ca_bundle=str(idp.ca_file))
        with pytest.raises(AuthFailed, match=message) as caught:
            make_source(account, msal.SerializableTokenCache(), 5).acquire(SCOPES, now=0.0)
        assert "PRIVATE KEY" not in str(caught.value)


# --- federated ---------------------------------------------------------------------------

ASSERTION_SCRIPT = textwrap.dedent("""
    import sys, pathlib
    log = pathlib.Path(sys.argv[1])
    runs = log.read_text().count("\\n") if log.exists() else 0
    with log.open("a") as f:
        f.write(repr(sys.argv[2:]) + "\\n")
    print("  eyJhbGciOiJSUzI1NiJ9.assertion-%d.sig  " % runs)
""")


def federated_account(idp: StubIdp, command) -> object:
    return make_account(flow="federated", authority=idp.authority,
                        assertion_command=tuple(command), ca_bundle=str(idp.ca_file))


def test_assertion_command_runs_fresh_per_request_without_a_shell(idp, tmp_path) -> None:
    script, log = tmp_path / "assert.py", tmp_path / "runs.log"
    script.write_text(ASSERTION_SCRIPT)
    hostile = "x; touch " + str(tmp_path / "pwned")
    source = make_source(federated_account(
        idp, [sys.executable, str(script), str(log), hostile, "$HOME"]),
        msal.SerializableTokenCache(), 5)
    source.acquire(SCOPES, now=0.0)
    source.acquire(SCOPES, now=0.0)
    sent = [r["form"]["client_assertion"] for r in idp.requests if r["method"] == "POST"]
    assert sent == ["eyJhbGciOiJSUzI1NiJ9.assertion-0.sig", "eyJhbGciOiJSUzI1NiJ9.assertion-1.sig"]
    assert log.read_text().splitlines() == [repr([hostile, "$HOME"])] * 2
    assert not (tmp_path / "pwned").exists()


def test_assertion_file_is_read_fresh(idp, tmp_path) -> None:
    path = tmp_path / "token"
    path.write_text("eyJ.first.sig\n")
    account = make_account(flow="federated", authority=idp.authority,
                           assertion_file=str(path), ca_bundle=str(idp.ca_file))
    source = make_source(account, msal.SerializableTokenCache(), 5)
    source.acquire(SCOPES, now=0.0)
    path.write_text("eyJ.second.sig\n")
    source.acquire(SCOPES, now=0.0)
    assert [r["form"]["client_assertion"] for r in idp.requests if r["method"] == "POST"] \
        == ["eyJ.first.sig", "eyJ.second.sig"]
    path.unlink()
    with pytest.raises(AuthFailed, match="No such file"):
        source.acquire(SCOPES, now=0.0)


def test_failing_command_reports_exit_code_and_scrubbed_stderr(idp, tmp_path) -> None:
    leaked = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXBheWxvYWQtdGhhdC1tdXN0LW5vdC1sZWFr.sig"
    code = f"import sys; print('{leaked}'); sys.stderr.write('gp: audience denied {leaked}\\n" \
           "second line\\n'); sys.exit(3)"
    source = make_source(federated_account(idp, [sys.executable, "-c", code]),
                         msal.SerializableTokenCache(), 5)
    with pytest.raises(AuthFailed) as caught:
        source.acquire(SCOPES, now=0.0)
    message = str(caught.value)
    assert "exited with 3" in message and "gp: audience denied" in message
    assert "second line" not in message
    assert_clean(caught.value, [leaked, "c2VjcmV0LXBheWxvYWQtdGhhdC1tdXN0LW5vdC1sZWFr"])
    assert idp.count() == 0


def test_command_timeout_and_output_limit(tmp_path) -> None:
    from credhelper.auth.assertion import run_assertion_command
    started = time.monotonic()
    with pytest.raises(AuthFailed, match="timed out after 0.5s"):
        run_assertion_command([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)
    assert time.monotonic() - started < 10
    flood = "import sys\nwhile True: sys.stdout.write('A' * 65536)"
    with pytest.raises(AuthFailed, match="printed more than 65536 bytes") as caught:
        run_assertion_command([sys.executable, "-c", flood], timeout=10)
    assert "AAAA" not in str(caught.value)
    with pytest.raises(AuthFailed, match="cannot run it"):
        run_assertion_command([str(tmp_path / "no-such-command")])
    with pytest.raises(AuthFailed, match="whitespace"):
        run_assertion_command([sys.executable, "-c", "print('two words')"])


def test_expired_assertion_error_keeps_only_the_code(idp, tmp_path) -> None:
    path = tmp_path / "token"
    path.write_text("eyJ.stale-assertion.sig")
    account = make_account(flow="federated", authority=idp.authority,
                           assertion_file=str(path), ca_bundle=str(idp.ca_file))
    idp.script.append(("error", "invalid_client", 700024,
                       "AADSTS700024: Client assertion is not within its valid time range. "
                       "Assertion: eyJ.stale-assertion.sig"))
    with pytest.raises(AuthFailed) as caught:
        make_source(account, msal.SerializableTokenCache(), 5).acquire(SCOPES, now=0.0)
    assert str(caught.value) == "account 'work': AADSTS700024 invalid_client"
    assert_clean(caught.value, ["eyJ.stale-assertion.sig"])


def test_every_error_is_a_credhelper_error_with_a_wire_code(idp, monkeypatch) -> None:
    source = secret_source(idp, monkeypatch)
    idp.script.extend([("429", 1), ("500",), ("error", "unauthorized_client", 700016)])
    codes = []
    for _ in range(3):
        with pytest.raises(CredhelperError) as caught:
            source.acquire(SCOPES, now=0.0)
        codes.append(caught.value.to_wire()["code"])
        assert_clean(caught.value, idp.issued + [idp.client_secret])
    assert codes == ["throttled", "idp_unavailable", "auth_failed"]
