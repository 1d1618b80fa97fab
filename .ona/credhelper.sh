#!/usr/bin/env bash
# credhelper in an Ona environment. Called from .ona/automations.yaml:
#   service credhelper, start:  credhelper.sh serve      install if needed, run the daemon (blocks)
#   service credhelper, ready:  credhelper.sh ready      exit 0 once the daemon answers
#   task credhelper-configure:  credhelper.sh configure  git, pip, npm, pnpm point at it
#
# Ona keeps the code in /workspace (saved with the environment); the daemon, its socket and its
# state live under $HOME or $XDG_RUNTIME_DIR only. The identity is the environment's own
# (`ona idp token`, assertion_provider = "ona"): no sign-in, no secret.
set -euo pipefail

repo="${ONA_REPO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
workspace="$(realpath -m "${CREDHELPER_WORKSPACE_ROOT:-/workspace}")"
# credhelper's own checkout uses its .venv; any other repository gets a venv of its own under
# $HOME (never the project's, never in /workspace), from PyPI or CREDHELPER_PIP_SPEC.
if [ -f "$repo/credhelper/__init__.py" ] && [ -f "$repo/setup.cfg" ]; then
    venv="${CREDHELPER_VENV:-$repo/.venv}"
    spec=(-e "$repo")
else
    venv="${CREDHELPER_VENV:-${XDG_DATA_HOME:-$HOME/.local/share}/credhelper/venv}"
    spec=("${CREDHELPER_PIP_SPEC:-credhelper}")
fi
bin="$venv/bin"

say() { echo "credhelper: $*" >&2; }
# From / so a directory named credhelper in the checkout cannot shadow the installed package.
py() { (cd / && "$bin/python" "$@"); }

install() {
    if [ ! -x "$bin/credhelper" ]; then
        say "installing into $venv"
        python3 -m venv "$venv"
        "$bin/python" -m pip install -q --upgrade pip
        "$bin/python" -m pip install -q "${spec[@]}"
    fi
    # every new terminal finds credhelper and git-credential-entra
    mkdir -p "$HOME/.bashrc.d"
    printf 'export PATH="%s:$PATH"\n' "$bin" > "$HOME/.bashrc.d/60-credhelper"
}

# Refuse to run if the socket or the token cache would land in the saved /workspace.
check_places() {
    local place
    while IFS= read -r place; do
        case "$place/" in
            "$workspace"/*)
                say "refusing: $place is under $workspace, which Ona keeps with the environment;"
                say "unset CREDHELPER_STATE_DIR / CREDHELPER_SOCKET or point them under \$HOME"
                exit 3 ;;
        esac
    done < <(py -c '
import os
from credhelper import paths
for p in (paths.state_dir(), paths.socket_path().parent):
    print(os.path.realpath(p))')
}

ensure_config() {
    local config
    config="$(py -c 'from credhelper import paths; print(paths.config_path())')"
    [ -f "$config" ] && return 0
    if [ -f "$repo/.ona/credhelper.toml" ]; then
        mkdir -p "$(dirname "$config")"
        cp "$repo/.ona/credhelper.toml" "$config"
        chmod 600 "$config"
        say "using the repository's .ona/credhelper.toml"
    elif [ -n "${CREDHELPER_INIT_ARGS:-}" ]; then
        # shellcheck disable=SC2086  # word splitting of the user's options is the point
        "$bin/credhelper" init $CREDHELPER_INIT_ARGS
    else
        say "no config: run 'credhelper init --ona --help', or commit .ona/credhelper.toml"
        return 1
    fi
}

serve() {
    install
    check_places
    ensure_config || exit 2
    # A git call may have autostarted one already: this service owns the daemon, so take over.
    if ready 2>/dev/null; then "$bin/credhelper" stop >/dev/null || true; fi
    # From /, like any daemon: the commands it runs (ona idp token) must not see the checkout.
    cd /
    exec "$bin/credhelper" daemon
}

ready() { py -c 'import sys; from credhelper.client import Client; sys.exit(0 if Client().ping() else 1)'; }

configure() { "$bin/credhelper" configure all; }

case "${1:-}" in
    serve) serve ;;
    ready) ready ;;
    configure) configure ;;
    *) echo "usage: $0 serve|ready|configure" >&2; exit 2 ;;
esac
