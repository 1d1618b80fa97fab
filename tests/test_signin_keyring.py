"""With a real Secret Service (gnome-keyring on a private D-Bus session) the cache key lives there.

`make deps` installs gnome-keyring, dbus and secret-tool on Debian-like machines; elsewhere the
test skips with the reason.
"""

import base64
import json
import shutil
import subprocess
import time
from typing import Dict, Iterator

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from credhelper import vault
from harness import Workspace
from signin import claims, person_config, sign_in

TOOLS = ("dbus-daemon", "gnome-keyring-daemon", "secret-tool")
pytestmark = pytest.mark.skipif(not all(shutil.which(t) for t in TOOLS),
                                reason="needs " + ", ".join(TOOLS) + " (make deps installs them)")


# A session bus that activates nothing: with the stock config, a client asking for the Secret
# Service before our unlocked gnome-keyring owns the name makes dbus-daemon start a second,
# locked one that wins the name, and the login collection never appears.
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={dir}</listen>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


@pytest.fixture
def secret_service(ws: Workspace) -> Iterator[Dict[str, str]]:
    """A D-Bus session bus with an unlocked gnome-keyring; its address goes into ws.env."""
    config = ws.root / "bus.conf"
    config.write_text(BUS_CONFIG.format(dir=ws.root))
    bus = subprocess.Popen(["dbus-daemon", f"--config-file={config}", "--nofork",
                            "--print-address=1"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           env=ws.env)
    keyring = None
    try:
        assert bus.stdout is not None
        address = bus.stdout.readline().strip()
        assert address, "dbus-daemon printed no address"
        ws.env["DBUS_SESSION_BUS_ADDRESS"] = address
        # --unlock reads the login password from stdin and creates the default collection
        keyring = subprocess.Popen(
            ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=ws.env)
        assert keyring.stdin is not None
        keyring.stdin.write(b"test-login-password")
        keyring.stdin.close()
        # The daemon creates the login collection a moment after it starts: wait for it.
        deadline = time.monotonic() + 30
        while True:
            probe = ws.run(["secret-tool", "store", "--label=probe", "app", "credhelper-test"],
                           check=False, input="probe", timeout=30)
            if probe.returncode == 0:
                break
            assert time.monotonic() < deadline and keyring.poll() is None, probe.stderr
            time.sleep(0.1)
        yield ws.env
    finally:
        ws.stop_daemon()  # before the bus goes: the daemon talks to it
        for proc in (keyring, bus):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


def test_the_cache_key_lives_in_the_secret_service(ws: Workspace, secret_service) -> None:
    em = ws.em
    person_config(ws)
    ws.start_daemon()
    status = json.loads(ws.credhelper("status", "--json").stdout)
    assert "SecretService" in status["key_storage"] and "system keyring" in status["key_storage"]
    assert "keyring" in ws.credhelper("status").stdout.splitlines()[3]

    sign_in(ws, user="kim@contoso.com")
    ws.client().get(em.git_url(), for_="cli")
    lookup = ws.run(["secret-tool", "lookup", "service", "credhelper", "username", "cache-key"])
    key = base64.b64decode(lookup.stdout.strip(), validate=True)
    assert len(key) == vault.KEY_SIZE
    assert not (ws.state_dir / "key").exists()  # no key file beside the cache

    blob = (ws.state_dir / "cache.bin").read_bytes()
    assert not any(s.encode() in blob for s in em.idp.secrets_issued() if len(s) >= 16)
    n = len(vault.HEADER)
    plain = AESGCM(key).decrypt(blob[n:n + vault.NONCE_SIZE], blob[n + vault.NONCE_SIZE:],
                                vault.HEADER)
    assert json.loads(plain)["RefreshToken"]

    ws.stop_daemon()
    ws.start_daemon()  # the key comes back from the keyring: still signed in
    assert "signed in as kim@contoso.com" in ws.credhelper("status").stdout
    assert claims(ws.client().get(em.git_url(), for_="cli")["token"])["upn"] == "kim@contoso.com"
