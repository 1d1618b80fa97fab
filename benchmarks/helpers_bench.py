"""Benchmarks for the helpers beyond package feeds: docker, cargo and the Azure SDK endpoint,
each beside ``git-credential-entra`` answering the same warm ``get`` in the same run.
"""

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from typing import Callable, Dict, List

from harness import BIN, Workspace
from stats import median_ms, percentile, table, time_runs

MANAGEMENT = "https://management.azure.com/.default"


def configure(ws: Workspace) -> None:
    """Add an ACR route and an [azure] table to the running workspace, and reload."""
    em = ws.em
    ws.write_config(ws.federated_account(), [
        {"url": f"{em.feed_base}/", "account": "workspace", "preset": "azure-devops"},
        {"url": f"https://{em.registry_host}/", "account": "workspace", "preset": "acr"},
    ])
    with ws.config_path.open("a") as config:
        config.write(f'\n[azure]\naccount = "workspace"\nscopes = ["{MANAGEMENT}"]\n')
    ws.client().call("reload")


def _process(ws: Workspace, cmd: List[str], stdin: str) -> Callable[[], None]:
    def run() -> None:
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=ws.env,
                              timeout=60)
        if done.returncode != 0 or not done.stdout:
            raise RuntimeError(f"{cmd[0]} failed: {done.stderr.strip()[:200]}")
    return run


def bench_helpers(ws: Workspace, runs: int = 30) -> None:
    """Whole helper processes answering a warm get, and the Azure endpoint's HTTP round trip."""
    configure(ws)
    em = ws.em
    host = em.feed_base.split("//", 1)[1]
    cargo_request = json.dumps({"v": 1, "kind": "get", "operation": "read", "args": [],
                                "registry": {"index-url": em.cargo_index, "name": "entra"}}) + "\n"
    git_query = f"protocol=https\nhost={host}\npath=git/demo.git\n\n"
    import credhelper.frontends.git_main as git_main

    # the provider script as `configure cargo` writes it, in this workspace's state dir
    ws.env["CARGO_HOME"] = str(ws.root / "cargo-home")
    ws.credhelper("configure", "cargo")
    cargo_script = str(ws.state_dir / "cargo-credential-entra")
    helpers = [
        ("git helper as `configure git` runs it: python -I -S git_main.py get (reference)",
         [sys.executable, "-I", "-S", git_main.__file__, "get"], git_query),
        ("git-credential-entra get (console script)", [str(BIN / "git-credential-entra"), "get"],
         git_query),
        ("docker-credential-entra get", [str(BIN / "docker-credential-entra"), "get"],
         em.registry_host),
        ("cargo provider as `configure cargo` writes it (python -IS script), hello + one get",
         [cargo_script, "--cargo-plugin"], cargo_request),
        ("cargo-credential-entra (console script), hello + one get",
         [str(BIN / "cargo-credential-entra"), "--cargo-plugin"], cargo_request),
    ]
    # Interleaved (one run of each helper per round), so a noisy machine's load drifts over
    # every row alike instead of landing on whichever ran at the wrong moment.
    calls = [(name, _process(ws, cmd, stdin)) for name, cmd, stdin in helpers]
    samples: Dict[str, List[float]] = {name: [] for name, _ in calls}
    for _, call in calls:
        call()  # warm-up
    for _ in range(runs):
        for name, call in calls:
            start = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - start)
    reference = median_ms(samples[helpers[0][0]])
    rows = [[name, f"{median_ms(s):.1f}", f"{percentile(s, 90):.1f}",
             f"{median_ms(s) / reference:.2f}x"] for name, s in samples.items()]

    env = {}
    for line in (ws.socket.parent / "azure-identity.env").read_text().splitlines():
        name, _, value = line[len("export "):].partition("=")
        env[name] = value
    url = env["IDENTITY_ENDPOINT"] + "?" + urllib.parse.urlencode(
        {"api-version": "2019-08-01", "resource": "https://management.azure.com"})
    request = urllib.request.Request(url, headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]})

    def azure() -> None:
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()

    http = time_runs(azure, runs)
    rows.append(["Azure SDK endpoint, one HTTP GET (in process, no interpreter start)",
                 f"{median_ms(http):.1f}", f"{percentile(http, 90):.1f}",
                 f"{median_ms(http) / reference:.2f}x"])
    table(f"docker, cargo and Azure SDK helpers, warm get, median of {runs}",
          ["helper", "median ms", "p90 ms", "vs git helper"], rows)
