"""``python -m credhelper.emulator``: run the emulator as a process, or act as a fake ``gp``.

    serve --dir D [--port-idp N] [--port-feed N] [--port-msi N]
        Serve until SIGTERM/SIGINT; writes D/emulator.json (0600) once ready.
    gp --dir D idp token --audience AUD [--subject S]
        Print a fresh workspace ID token, as Gitpod's ``gp idp token`` does.
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
from .server import STATE_FILE, WORKSPACE_SUBJECT, Emulator, mint_workspace_token



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


def gp_token(workdir: Path, audience: str, subject: str) -> int:
    """Print a workspace token signed with the key the serving emulator trusts."""
    try:
        issuer = json.loads((workdir / STATE_FILE).read_text())["workspace_issuer"]
    except (OSError, ValueError, KeyError):
        print("gp: no running emulator in {}".format(workdir), file=sys.stderr)
        return 1
    key = jwt.SigningKey(ca.load_or_create_key(workdir / "workspace_issuer.key"))
    print(mint_workspace_token(key, issuer, subject, audience))
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
    gp_cmd = commands.add_parser("gp", help="a fake `gp` CLI: gp idp token --audience AUD")
    gp_cmd.add_argument("--dir", required=True, type=Path)
    gp_cmd.add_argument("words", nargs=2, metavar="idp token")
    gp_cmd.add_argument("--audience", default=EXCHANGE_AUDIENCE)
    gp_cmd.add_argument("--subject", default=WORKSPACE_SUBJECT)
    args = parser.parse_args(argv)
    args.dir = args.dir.absolute()  # git runs in subdirectories of it: a relative one would miss
    if args.command == "serve":
        return serve(args.dir, args.port_idp, args.port_feed, args.port_msi)
    if args.words != ["idp", "token"]:
        parser.error("gp supports only: idp token")
    return gp_token(args.dir, args.audience, args.subject)


if __name__ == "__main__":
    sys.exit(main())
