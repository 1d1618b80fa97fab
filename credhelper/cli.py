"""The ``credhelper`` command line. Errors are one line on stderr with a documented exit code.

Errors are caught in one place (``_Group.invoke``); the exit codes are listed in
``commands/exits.py``. The commands' work lives in ``commands/``.
"""

import atexit
import functools
import json
import os
import shutil
import sys
import time
from typing import Any, Callable, Dict, List, NoReturn, Optional, Tuple

import click

from . import __version__, environment, paths
from .client import Client
from .commands.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_PIPE, for_error
from .errors import CredhelperError, DaemonUnavailable, NoRoute, RequestError


def fail(exc: CredhelperError) -> NoReturn:
    """Print one line for ``exc`` and exit with its documented code."""
    click.echo(f"credhelper: {exc.message}", err=True)
    sys.exit(for_error(exc))


class _Group(click.Group):
    """Turns any error that escapes a command into one line (CREDHELPER_DEBUG=1 shows the trace)."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; never end in a traceback."""
        try:
            try:
                return super().invoke(ctx)
            finally:
                sys.stdout.flush()  # a reader gone (`| head`) shows here, not at interpreter exit
        except BrokenPipeError:
            # As coreutils: stop quietly. Whatever is still buffered goes nowhere.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(EXIT_PIPE)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except CredhelperError as exc:
            fail(exc)
        except KeyboardInterrupt:
            click.echo("credhelper: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except Exception as exc:  # noqa: BLE001
            if environment.debug():
                raise
            from .logs import redact

            click.echo(f"credhelper: internal error: {type(exc).__name__}: {redact(str(exc))[:200]} "
                       "(rerun with CREDHELPER_DEBUG=1 for details)", err=True)
            sys.exit(EXIT_FAILED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="credhelper")
def main() -> None:
    """Short-lived Entra ID tokens for git, pip and npm, from one local daemon."""


@main.command()
@click.option("--log-file-only", is_flag=True,
              help="Log to daemon.log only, not to stderr too (autostart: stderr is a file).")
def daemon(log_file_only: bool) -> None:
    """Run the daemon in the foreground (systemd socket activation supported)."""
    from .daemon import Daemon

    Daemon(foreground=not log_file_only).serve()
    # serve() has cleaned up and persisted everything; tearing down the interpreter (every
    # module msal, cryptography and requests loaded, object by object) would take another
    # 200-300 ms before the process is gone and `credhelper stop` can return. The exit
    # handlers still run (log flushing, temporary CA bundles removed).
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@main.command()
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for readiness.")
def start(timeout: float) -> None:
    """Start the daemon in the background; returns when it answers (idempotent)."""
    from . import config
    from .autostart import ensure_daemon

    if Client().ping():
        click.echo("credhelper: the daemon is already running")
        return
    config.load(paths.config_path())  # a clear error now beats a dead background process
    if not ensure_daemon(paths.socket_path(), timeout=timeout):
        raise DaemonUnavailable(
            f"the daemon did not become ready in {timeout:g}s; see {paths.state_dir() / 'daemon.log'}")
    click.echo(f"credhelper: daemon ready on {paths.socket_path()}")


@main.command()
def stop() -> None:
    """Stop the daemon."""
    client = Client()
    try:
        reply = client.call("stop")
    except DaemonUnavailable:
        click.echo("credhelper: the daemon is not running")
        return
    pid = reply.get("pid")
    deadline = time.monotonic() + 10
    # "stopped" means the process is gone (a daemon of an older version reports no pid: then
    # its socket going away is the best sign there is)
    while time.monotonic() < deadline and (
            _alive(pid) if isinstance(pid, int) else os.path.exists(client.socket_path)):
        time.sleep(0.01)
    click.echo("credhelper: daemon stopped")


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for its parent to reap it has ended)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return False


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Show accounts, token slots and their health (never a token)."""
    from .commands.status import render_status

    reply = Client().call("status")
    if as_json:
        click.echo(json.dumps(reply, indent=2, sort_keys=True))
    else:
        click.echo(render_status(reply, now=time.time()))


@main.command()
def reload() -> None:
    """Reload the config file; a broken file keeps the running config."""
    Client().call("reload")
    click.echo("credhelper: config reloaded")


@main.command()
@click.argument("account", required=False)
def login(account: Optional[str]) -> None:
    """Sign a person in with a device code."""
    from .commands.login import run_login

    sys.exit(run_login(Client(), account))


@main.command()
@click.argument("account", required=False)
def logout(account: Optional[str]) -> None:
    """Forget an account's sign-in: memory, cache and npm config."""
    reply = Client().call("logout", account=account)
    if reply.get("signed_out", True):
        click.echo(f"credhelper: signed out of {reply['account']}")
    else:
        click.echo(f"credhelper: nobody was signed in to {reply['account']}; nothing to do")


@main.command()
@click.argument("url")
@click.option("--header", "form", flag_value="header", help="Print 'Authorization: Bearer …'.")
@click.option("--header-value", "form", flag_value="value", help="Print 'Bearer …'.")
def token(url: str, form: Optional[str]) -> None:
    """Print a token for URL (for scripts and pnpm's tokenHelper)."""
    from .frontends.common import starter

    try:
        value = Client(starter=starter()).get(url, "cli")["token"]
    except NoRoute as exc:
        raise NoRoute(f"{exc.message}; to send tokens there, add a [[routes]] entry whose url "
                      f"covers it to {paths.config_path()} (README: configuration reference)"
                      ) from exc
    if form == "header":
        click.echo(f"Authorization: Bearer {value}")
    elif form == "value":
        click.echo(f"Bearer {value}")
    else:
        click.echo(value)


# What `configure TOOL` runs, in the order `configure all` runs them (`--remove` goes backwards).
# Each side is (config, dry_run) -> change lines; each tool keeps its undo data in the tool record.
TOOLS = ("git", "pip", "uv", "poetry", "npm", "pnpm", "yarn", "docker", "cargo", "azure")


def _tool_steps(tool: str) -> Tuple[Callable[..., List[str]], Optional[Callable[..., List[str]]]]:
    from .commands import configure as conf, configure_js as js, configure_python as py

    if tool in ("docker", "cargo", "azure"):
        return _beyond_steps(tool)
    steps: Dict[str, Tuple[Callable[..., List[str]], Optional[Callable[..., List[str]]]]] = {
        "git": (conf.configure_git, conf.remove_git),
        "npm": (js.configure_npm, js.remove_npm),
        "pnpm": (js.configure_pnpm, js.remove_pnpm),
        "yarn": (js.configure_yarn, js.remove_yarn),
    }
    for name in py.PYTHON_TOOLS:  # pip, uv and poetry share one netrc block
        steps[name] = (functools.partial(py.configure_python_tool, name),
                       functools.partial(py.remove_python_tool, name))
    return steps[tool]


def _beyond_steps(tool: str) -> Tuple[Callable[..., List[str]], Callable[..., List[str]]]:
    from .commands import configure_azure as azure, configure_registries as reg

    setup = {"docker": reg.configure_docker, "azure": azure.configure_azure,
             "cargo": lambda cfg, dry_run, remove=False: reg.configure_cargo(dry_run=dry_run,
                                                                             remove=remove)}[tool]
    return (lambda cfg, dry_run: setup(cfg, dry_run=dry_run),
            lambda cfg, dry_run: setup(cfg, dry_run=dry_run, remove=True))


def _in_all(tool: str, cfg: Any, remove: bool) -> bool:
    """Whether ``configure all`` takes ``tool``: the tools on PATH, and only with work to do."""
    if remove:
        return True  # each undo touches only what it set up
    if tool in ("yarn", "uv", "poetry"):  # pip is in every Python
        return shutil.which(tool) is not None
    if tool == "docker":
        from .config import registry_hosts

        return shutil.which("docker") is not None and bool(registry_hosts(cfg))
    if tool == "cargo":
        from .commands.configure_registries import routed_cargo_registries

        return shutil.which("cargo") is not None and bool(routed_cargo_registries(cfg))
    if tool == "azure":
        return cfg.azure is not None
    return True


@main.command()
@click.argument("target", type=click.Choice(TOOLS + ("systemd", "all")))
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option("--remove", is_flag=True, help="Undo what configure did; the daemon stops keeping "
              "the tool's file (until it is configured again).")
def configure(target: str, dry_run: bool, remove: bool) -> None:
    """Point git, pip, uv, poetry, npm, pnpm, yarn, docker, cargo or the Azure SDKs at credhelper
    (idempotent), or undo it with --remove."""
    from . import config

    changes: List[str] = []
    if target == "systemd":
        if remove:
            raise RequestError("configure systemd --remove is not supported; "
                               "run: systemctl --user disable --now credhelper.socket")
        from .commands.install_systemd import install_units

        changes += install_units(dry_run=dry_run)
    else:
        cfg = config.load(paths.config_path())
        tools = (target,) if target != "all" else tuple(
            t for t in TOOLS if _in_all(t, cfg, remove))
        for tool in reversed(tools) if remove else tools:
            setup, undo = _tool_steps(tool)
            if not remove:
                changes += setup(cfg, dry_run=dry_run)
            elif undo is not None:
                changes += undo(cfg, dry_run=dry_run)
            elif target != "all":
                raise RequestError(f"configure {tool} --remove is not supported yet")
    prefix = "would " if dry_run else ""
    for line in changes:
        click.echo(f"{prefix}{line}")
    if not changes:
        state = "not configured" if remove else "already configured"
        click.echo(f"credhelper: {target} is {state}")


@main.command()
@click.option("--azure-devops", "org", help="Routes for this Azure DevOps organisation.")
@click.option("--gitpod", is_flag=True, help="Workspace identity from `gp idp token`.")
@click.option("--ona", is_flag=True, help="Environment identity from `ona idp token`.")
@click.option("--projects", type=click.IntRange(min=1),
              help="With --ona: how many Ona projects will use this app (Entra allows 20 "
                   "federated credentials per app).")
@click.option("--device-code", is_flag=True, help="A person signs in with a device code.")
@click.option("--tenant", help="Entra tenant id or domain.")
@click.option("--client-id", help="Application (client) id.")
@click.option("--authority", help="Identity provider URL instead of Entra's for --tenant.")
@click.option("--ca-bundle", help="PEM file of extra CAs to trust for the authority.")
@click.option("--url", "urls", multiple=True, help="A route: URL that gets tokens (repeatable).")
@click.option("--scope", "scopes", multiple=True,
              help="Scope for the --url routes (repeatable; default: the Azure DevOps preset).")
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
def init(org: Optional[str], gitpod: bool, ona: bool, projects: Optional[int],
         device_code: bool, tenant: Optional[str], client_id: Optional[str],
         authority: Optional[str], ca_bundle: Optional[str], urls: Tuple[str, ...],
         scopes: Tuple[str, ...], force: bool) -> None:
    """Write a starter config file."""
    from .commands.init import run_init

    advice: Optional[Callable[[], List[str]]] = None
    if ona:
        from .commands.init_ona import ona_advice
        advice = functools.partial(ona_advice, str(client_id), projects)
    sys.exit(run_init(org=org, gitpod=gitpod, device_code=device_code, tenant=tenant,
                      client_id=client_id, force=force, authority=authority,
                      ca_bundle=ca_bundle, urls=urls, scopes=scopes, ona=ona, advice=advice))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(as_json: bool) -> None:
    """Check the set-up and explain how to fix what is wrong."""
    from .commands.doctor import run_doctor

    sys.exit(run_doctor(as_json=as_json))


@main.command()
@click.option("--keep", is_flag=True, help="Leave the emulator and daemon running afterwards.")
@click.option("--device-code", is_flag=True,
              help="A person signs in (code and sign-in page) instead of the workspace.")
def demo(keep: bool, device_code: bool) -> None:
    """Run git, pip and npm through credhelper against the local emulator."""
    from .commands.demo import run_demo

    sys.exit(run_demo(keep=keep, device_code=device_code))
