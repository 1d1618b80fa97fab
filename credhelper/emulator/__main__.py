"""``python -m credhelper.emulator``: run the emulator as a process, or act as a platform's CLI.

    serve --dir D [--port-idp N] [--port-feed N] [--port-msi N]
        Serve until SIGTERM/SIGINT; writes D/emulator.json (0600) once ready.
    gp --dir D idp token --audience AUD [--subject S]
        Print a fresh workspace ID token, as Gitpod's ``gp idp token`` does.
    ona|gitpod --dir D idp token --audience AUD [--subject S] [--decode]
        The same from the Ona issuer, as ``ona idp token`` (formerly ``gitpod``) does; ``--decode``
        prints the claims instead, as the real CLI's flag does.
"""

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import List, Optional

from . import ca, jwt
from .directory import EXCHANGE_AUDIENCE
from .server import STATE_FILE, Emulator
from .workload import SUBJECTS, mint

# which issuer each fake CLI speaks for
CLI_ISSUERS = {"gp": "workspace", "ona": "ona", "gitpod": "ona"}


def serve(workdir: Path, idp_port: int, feed_port: int, msi_port: int) -> int:
    """Run until SIGTERM or SIGINT."""
    state = workdir / STATE_FILE
    workdir.mkdir(parents=True, exist_ok=True)
    if state.exists():
        state.unlink()   # a stale file would announce ports nobody listens on
    em = Emulator(workdir, idp_port=idp_port, feed_port=feed_port, msi_port=msi_port).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    try:
        ca.write_private(workdir / "client_secret", em.client_secret.encode())
        print("emulator ready: idp {} feed {}".format(em.idp_base, em.feed_base), file=sys.stderr)
        while not done.wait(1):
            pass
    finally:
        em.stop()
    return 0


def cli_token(cli: str, workdir: Path, audience: str, subject: Optional[str],
              decode: bool = False) -> int:
    """Print a workload token signed with the key the serving emulator trusts."""
    name = CLI_ISSUERS[cli]
    try:
        issuer = json.loads((workdir / STATE_FILE).read_text())["workload_issuers"][name]
    except (OSError, ValueError, KeyError):
        print("{}: no running emulator in {}".format(cli, workdir), file=sys.stderr)
        return 1
    key = jwt.SigningKey(ca.load_or_create_key(workdir / "workspace_issuer.key"))
    token = mint(key, issuer, subject or SUBJECTS[name], audience)
    print(json.dumps(jwt.decode_unverified(token)[1], indent=2) if decode else token)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m credhelper.emulator")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the emulator until SIGTERM")
    serve_cmd.add_argument("--dir", required=True, type=Path)
    serve_cmd.add_argument("--port-idp", type=int, default=0)
    serve_cmd.add_argument("--port-feed", type=int, default=0)
    serve_cmd.add_argument("--port-msi", type=int, default=0)
    for cli in CLI_ISSUERS:
        cli_cmd = commands.add_parser(cli, help=f"a fake `{cli}` CLI: {cli} idp token "
                                                "--audience AUD")
        cli_cmd.add_argument("--dir", required=True, type=Path)
        cli_cmd.add_argument("words", nargs=2, metavar="idp token")
        cli_cmd.add_argument("--audience", default=EXCHANGE_AUDIENCE)
        cli_cmd.add_argument("--subject", default=None)
        cli_cmd.add_argument("--decode", action="store_true")
    args = parser.parse_args(argv)
    args.dir = args.dir.absolute()  # git runs in subdirectories of it: a relative one would miss
    if args.command == "serve":
        return serve(args.dir, args.port_idp, args.port_feed, args.port_msi)
    if args.words != ["idp", "token"]:
        parser.error(f"{args.command} supports only: idp token")
    return cli_token(args.command, args.dir, args.audience, args.subject, args.decode)


if __name__ == "__main__":
    sys.exit(main())
