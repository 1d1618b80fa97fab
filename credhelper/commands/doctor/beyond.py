"""Doctor checks beyond package feeds: docker's credHelpers for ACR routes, cargo's credential
provider for routed registries, and the Azure SDK endpoint's environment file.

Each is silent when the config does not use it.
"""

import shutil
from pathlib import Path
from typing import Iterator

from ...config import registry_hosts
from .. import configure_registries as reg
from .report import FAIL, OK, WARN, Check, Context


def check_docker(ctx: Context) -> Iterator[Check]:
    """Every ACR route's host names ``entra`` in docker's credHelpers."""
    hosts = registry_hosts(ctx.config) if ctx.config is not None else ()
    if not hosts:
        return
    path = reg.docker_config_path()
    try:
        helpers = reg.read_json(path).get("credHelpers") or {}
    except Exception as exc:  # noqa: BLE001 - ConfigError or a strange file: say so, go on
        yield Check("docker", FAIL, getattr(exc, "message", str(exc)), f"fix {path} by hand")
        return
    missing = [h for h in hosts if not isinstance(helpers, dict) or helpers.get(h) != "entra"]
    if missing:
        yield Check("docker", WARN, f"{path}: no credHelpers entry for {', '.join(missing)}",
                    "run: credhelper configure docker")
    elif shutil.which("docker-credential-entra") is None:
        yield Check("docker", FAIL, "docker-credential-entra is not on PATH, so docker cannot "
                    "run it", "put credhelper's bin directory on PATH")
    else:
        yield Check("docker", OK, f"credHelpers name entra for {', '.join(hosts)}")


def check_cargo(ctx: Context) -> Iterator[Check]:
    """cargo asks our provider when one of its registries has a routed index."""
    if ctx.config is None:
        return
    names = reg.routed_cargo_registries(ctx.config)
    if not names:
        return
    path = reg.cargo_config_path()
    try:
        registry = reg.read_toml(path).get("registry")
    except Exception:  # noqa: BLE001 - an unreadable file holds no provider of ours
        registry = None
    entries = registry.get("global-credential-providers") if isinstance(registry, dict) else None
    if not reg.cargo_configured(entries):
        yield Check("cargo", WARN, f"registries {', '.join(names)} are routed, but cargo has no "
                    f"{reg.CARGO_PROVIDER} in {path}", "run: credhelper configure cargo")
    else:
        yield Check("cargo", OK, f"{reg.CARGO_PROVIDER} serves {', '.join(names)}")


def check_azure(ctx: Context) -> Iterator[Check]:
    """With ``[azure]``, the running daemon serves the endpoint and has written its env file."""
    if ctx.config is None or ctx.config.azure is None or ctx.daemon is None:
        return
    served = ctx.daemon.get("azure")
    env = Path(served["env_file"]) if isinstance(served, dict) and served.get("env_file") else None
    if env is None or not env.exists():
        yield Check("azure", FAIL, "[azure] is configured, but the daemon serves no Azure SDK "
                    "endpoint", "run: credhelper reload")
        return
    yield Check("azure", OK, f"Azure SDKs find the endpoint through {env} "
                f"(scopes: {', '.join(ctx.config.azure.scopes)})")
