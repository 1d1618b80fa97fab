"""Doctor check: each federated account's ``assertion_provider`` is present here (DESIGN §8a).

Presence only (the CLI on PATH, the two Actions variables, the token file's variable): no
assertion is fetched, so nothing secret is read. The daemon reads its own environment, which is
this shell's when this shell (or a tool run from it) started the daemon.
"""

from typing import Iterator

from ...auth.providers import WHERE, present
from .report import FAIL, OK, Check, Context

_FIXES = {
    "ona": "run it in an Ona environment (its `ona` CLI), or choose another assertion_provider",
    "gitpod": "run it in a Gitpod workspace (its `gp` CLI), or choose another assertion_provider",
    "github_actions": "give the job `permissions: id-token: write`",
    "azure_workload_identity": "label the pod azure.workload.identity/use: \"true\" and give it "
                               "a service account with the client-id annotation",
}


def check_workload(ctx: Context) -> Iterator[Check]:
    """Every account on an ``assertion_provider`` finds its provider in this environment."""
    if ctx.config is None:
        return
    found = present()
    for name, account in ctx.config.accounts.items():
        provider = account.assertion_provider
        if not provider:
            continue
        check = f"workload {name}"
        if provider == "auto":
            if found:
                yield Check(check, OK, f"assertion_provider auto: {found[0]} ({WHERE[found[0]]})")
            else:
                yield Check(check, FAIL, "assertion_provider auto: none of the providers is "
                            "here", "run where a workload identity is: Ona, Gitpod, GitHub "
                            "Actions or an AKS pod; or choose another flow")
        elif provider in found:
            yield Check(check, OK, f"assertion_provider {provider}: {WHERE[provider]}")
        else:
            yield Check(check, FAIL, f"assertion_provider {provider}: no {WHERE[provider]} here",
                        _FIXES[provider])
