"""`credhelper demo --device-code`: the sign-in a real person does, then git, pip and npm."""

import re

from harness import BIN, Workspace


def test_the_demo_shows_a_persons_sign_in_then_every_tool_works(ws: Workspace) -> None:
    proc = ws.run([str(BIN / "credhelper"), "demo", "--device-code"], check=False, timeout=300)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-2000:]
    steps = re.findall(r"^\[(\d)/8\] (.*)$", out, re.M)
    assert [n for n, _ in steps] == [str(i) for i in range(1, 9)]
    assert steps[3][1].startswith("Signing in as a person")
    code = re.search(r"open (https://127\.0\.0\.1:\d+/devicelogin) and enter the code (\w+)", out)
    assert code, out[-3000:]
    assert f"types {code.group(2)}" in out  # the demo fills the very page it printed
    assert "Signed in as alice@contoso.com (person)" in out
    assert "signed in as alice@contoso.com" in out  # status afterwards
    assert "npm packages installed: @contoso/hello-scoped, hello-private" in out
    assert "Cloned repository files:\n  README.md" in out
