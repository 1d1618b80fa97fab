"""The ``credhelper`` command line. Errors are one line on stderr with a documented exit code.

Exit codes:

    0    ok
    1    something failed (doctor found problems, auth failed, a sign-in could not start)
    2    bad usage or bad config
    3    the daemon is not running
    4    sign-in needed: run ``credhelper login ACCOUNT``
    5    login: the person declined the sign-in
    6    login: the code expired before the sign-in finished
    7    login: cancelled by another ``credhelper login`` or ``logout`` of the same account
    130  login: interrupted (Ctrl-C); the sign-in is cancelled in the daemon too
"""

import json
import os
import sys
import time
from typing import Any, Dict, NoReturn, Optional

import click

from . import __version__, paths
from .client import Client
from .errors import (ConfigError, CredhelperError, DaemonUnavailable, LoginFailed, NotSignedIn,
                     RequestError)

EXIT_FAILED, EXIT_USAGE, EXIT_NO_DAEMON, EXIT_SIGN_IN = 1, 2, 3, 4

_EXIT_BY_ERROR = (
    (ConfigError, EXIT_USAGE), (RequestError, EXIT_USAGE), (DaemonUnavailable, EXIT_NO_DAEMON),
    (NotSignedIn, EXIT_SIGN_IN), (LoginFailed, EXIT_FAILED),
)


def fail(exc: CredhelperError) -> NoReturn:
    """Print one line for ``exc`` and exit with its documented code."""
    click.echo(f"credhelper: {exc.message}", err=True)
    for cls, code in _EXIT_BY_ERROR:
        if isinstance(exc, cls):
            sys.exit(code)
    sys.exit(EXIT_FAILED)


def call(op: str, timeout: Optional[float] = None, **fields: Any) -> Dict[str, Any]:
    """One daemon request; errors end the command with one line."""
    try:
        return Client().call(op, timeout=timeout, **fields)
    except CredhelperError as exc:
        fail(exc)


class _Group(click.Group):
    """Turns any error that escapes a command into one line (CREDHELPER_DEBUG=1 shows the trace)."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; never end in a traceback."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except CredhelperError as exc:
            fail(exc)
        except KeyboardInterrupt:
            click.echo("credhelper: interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # noqa: BLE001
            if os.environ.get("CREDHELPER_DEBUG"):
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
def daemon() -> None:
    """Run the daemon in the foreground (systemd socket activation supported)."""
    from .daemon import Daemon

    try:
        Daemon(foreground=True).serve()
    except CredhelperError as exc:
        fail(exc)


@main.command()
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for readiness.")
def start(timeout: float) -> None:
    """Start the daemon in the background; returns when it answers (idempotent)."""
    from . import config
    from .autostart import ensure_daemon

    if Client().ping():
        click.echo("credhelper: the daemon is already running")
        return
    try:
        config.load(paths.config_path())  # a clear error now beats a dead background process
        if not ensure_daemon(paths.socket_path(), timeout=timeout, force=True):
            raise DaemonUnavailable(
                f"the daemon did not become ready in {timeout:g}s; see {paths.state_dir() / 'daemon.log'}")
    except CredhelperError as exc:
        fail(exc)
    click.echo(f"credhelper: daemon ready on {paths.socket_path()}")


@main.command()
def stop() -> None:
    """Stop the daemon."""
    client = Client()
    try:
        client.call("stop")
    except DaemonUnavailable:
        click.echo("credhelper: the daemon is not running")
        return
    except CredhelperError as exc:
        fail(exc)
    deadline = time.monotonic() + 10
    while os.path.exists(client.socket_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    click.echo("credhelper: daemon stopped")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Show accounts, token slots and their health (never a token)."""
    from .commands.status import render_status

    reply = call("status")
    if as_json:
        click.echo(json.dumps(reply, indent=2, sort_keys=True))
    else:
        click.echo(render_status(reply, now=time.time()))


@main.command()
def reload() -> None:
    """Reload the config file; a broken file keeps the running config."""
    call("reload")
    click.echo("credhelper: config reloaded")


@main.command()
@click.argument("account", required=False)
def login(account: Optional[str]) -> None:
    """Sign a person in with a device code."""
    from .commands.login import run_login

    try:
        sys.exit(run_login(Client(), account))
    except CredhelperError as exc:
        fail(exc)


@main.command()
@click.argument("account", required=False)
def logout(account: Optional[str]) -> None:
    """Forget an account's sign-in: memory, cache and npm config."""
    reply = call("logout", account=account)
    click.echo(f"credhelper: signed out of {reply['account']}")


@main.command()
@click.argument("url")
@click.option("--header", "form", flag_value="header", help="Print 'Authorization: Bearer …'.")
@click.option("--header-value", "form", flag_value="value", help="Print 'Bearer …'.")
def token(url: str, form: Optional[str]) -> None:
    """Print a token for URL (for scripts and pnpm's tokenHelper)."""
    try:
        reply = Client(autostart=True).get(url, for_="cli")
    except CredhelperError as exc:
        fail(exc)
    value = reply["token"]
    if form == "header":
        click.echo(f"Authorization: Bearer {value}")
    elif form == "value":
        click.echo(f"Bearer {value}")
    else:
        click.echo(value)


@main.command()
@click.argument("target", type=click.Choice(["git", "pip", "npm", "pnpm", "systemd", "all"]))
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option("--remove", is_flag=True, help="npm: remove the managed block instead.")
def configure(target: str, dry_run: bool, remove: bool) -> None:
    """Point git, pip, npm or pnpm at credhelper (idempotent)."""
    from . import config
    from .commands import configure as conf

    try:
        changes = []
        if target == "systemd":
            from .commands.install_systemd import install_units

            changes += install_units(dry_run=dry_run)
        else:
            cfg = config.load(paths.config_path())
            if target in ("git", "all"):
                changes += conf.configure_git(cfg, dry_run=dry_run)
            if target in ("pip", "all"):
                changes += conf.configure_pip(dry_run=dry_run)
            if target in ("npm", "all"):
                changes += conf.configure_npm(cfg, dry_run=dry_run, remove=remove)
            if target in ("pnpm", "all"):
                changes += conf.configure_pnpm(cfg, dry_run=dry_run)
    except CredhelperError as exc:
        fail(exc)
    prefix = "would " if dry_run else ""
    for line in changes:
        click.echo(f"{prefix}{line}")
    if not changes:
        click.echo(f"credhelper: {target} is already configured")


@main.command()
@click.option("--azure-devops", "org", help="Routes for this Azure DevOps organisation.")
@click.option("--gitpod", is_flag=True, help="Workspace identity from `gp idp token`.")
@click.option("--device-code", is_flag=True, help="A person signs in with a device code.")
@click.option("--tenant", help="Entra tenant id or domain.")
@click.option("--client-id", help="Application (client) id.")
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
def init(org: Optional[str], gitpod: bool, device_code: bool, tenant: Optional[str],
         client_id: Optional[str], force: bool) -> None:
    """Write a starter config file."""
    from .commands.init import run_init

    try:
        sys.exit(run_init(org=org, gitpod=gitpod, device_code=device_code, tenant=tenant,
                          client_id=client_id, force=force))
    except CredhelperError as exc:
        fail(exc)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(as_json: bool) -> None:
    """Check the set-up and explain how to fix what is wrong."""
    from .commands.doctor import run_doctor

    sys.exit(run_doctor(as_json=as_json))


@main.command()
@click.option("--keep", is_flag=True, help="Leave the emulator and daemon running afterwards.")
def demo(keep: bool) -> None:
    """Run git, pip and npm through credhelper against the local emulator."""
    from .commands.demo import run_demo

    try:
        sys.exit(run_demo(keep=keep))
    except CredhelperError as exc:
        fail(exc)
