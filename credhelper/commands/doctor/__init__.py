"""``credhelper doctor``: check the set-up end to end and say how to fix each problem.

One module per group of checks (``basics``, ``tools``, ``python``, ``uvindex``, ``idp``,
``workload``, ``scan``), all reporting through ``report``. Token replies are read for their expiry and dropped
inside the checks.
"""

import json
import time
from dataclasses import asdict
from typing import Callable, Iterator, List

from . import basics, beyond, idp, js, python, scan, tools, uvindex, workload
from .report import FAIL, Check, Context, render

_CHECKS: List[Callable[[Context], Iterator[Check]]] = [
    basics.check_config, basics.check_daemon, basics.check_files, tools.check_git,
    python.check_python_tools, uvindex.check_uv_indexes, tools.check_npm, js.check_npm_warnings,
    js.check_yarn, beyond.check_docker, beyond.check_cargo, beyond.check_azure, idp.check_idp,
    workload.check_workload, idp.check_tokens, basics.check_key_storage, scan.check_workspace,
]


def collect() -> List[Check]:
    """Run every check in order; a check that crashes is reported, never raised."""
    ctx = Context()
    results: List[Check] = []
    for check in _CHECKS:
        try:
            results.extend(check(ctx))
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            name = check.__name__.replace("check_", "")
            results.append(Check(name, FAIL, f"the check itself failed: {type(exc).__name__}",
                                 "please report this with `credhelper doctor --json`"))
    return results


def run_doctor(as_json: bool = False) -> int:
    """Run the checks, print them; 0 when nothing failed (warnings alone are fine), else 1."""
    started = time.monotonic()
    results = collect()
    healthy = not any(r.status == FAIL for r in results)
    if as_json:
        print(json.dumps({"ok": healthy, "seconds": round(time.monotonic() - started, 2),
                          "checks": [asdict(r) for r in results]}, indent=2))
    else:
        print(render(results))
    return 0 if healthy else 1
