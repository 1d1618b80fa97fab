#!/usr/bin/env bash
# credhelper in a Gitpod workspace. Called from .gitpod.yml:
#   before:  credhelper.sh install   every start, restart and prebuild
#   init:    credhelper.sh prebuild  prebuilds (and a first start without one)
#   command: credhelper.sh start     every start and restart, never in a prebuild
#
# Gitpod saves /workspace into prebuild snapshots and backups, and starts every workspace with a
# fresh $HOME. So: the virtualenv (no secrets) lives in the checkout and survives; the config is
# copied into $HOME and the PATH hook rewritten on every start; the daemon, its socket and its
# state (the encrypted token cache) live only under $HOME or $XDG_RUNTIME_DIR; and nothing that
# can obtain a token runs while GITPOD_HEADLESS=true (a prebuild).
set -euo pipefail

repo="${GITPOD_REPO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
workspace="$(realpath -m "${CREDHELPER_WORKSPACE_ROOT:-/workspace}")"
# In credhelper's own checkout: its .venv and an editable install. In any other repository: a
# venv of its own beside the checkout (never the project's), from PyPI or CREDHELPER_PIP_SPEC.
if [ -f "$repo/credhelper/__init__.py" ] && [ -f "$repo/setup.cfg" ]; then
    venv="${CREDHELPER_VENV:-$repo/.venv}"
    spec=(-e "$repo")
else
    venv="${CREDHELPER_VENV:-$workspace/.credhelper-venv}"
    spec=("${CREDHELPER_PIP_SPEC:-credhelper}")
fi
bin="$venv/bin"

say() { echo "credhelper: $*" >&2; }
headless() { [ "${GITPOD_HEADLESS:-}" = "true" ]; }
# From / so a directory named credhelper in the checkout cannot shadow the installed package.
py() { (cd / && "$bin/python" "$@"); }

install() {
    if [ ! -x "$bin/credhelper" ]; then
        say "installing into $venv"
        python3 -m venv "$venv"
        "$bin/python" -m pip install -q --upgrade pip
        "$bin/python" -m pip install -q "${spec[@]}"
    fi
    # A fresh $HOME each start: put credhelper and git-credential-entra on every new shell's PATH.
    mkdir -p "$HOME/.bashrc.d"
    printf 'export PATH="%s:$PATH"\n' "$bin" > "$HOME/.bashrc.d/60-credhelper"
    check_places
}

# Refuse to run if the socket or the token cache would land in the saved /workspace.
check_places() {
    local places place
    places="$(py -c '
import os
from credhelper import paths
for p in (paths.state_dir(), paths.socket_path().parent):
    print(os.path.realpath(p))')"
    while IFS= read -r place; do
        case "$place/" in
            "$workspace"/*)
                say "refusing: $place is under $workspace, which Gitpod saves into snapshots;"
                say "unset CREDHELPER_STATE_DIR / CREDHELPER_SOCKET or point them under \$HOME"
                exit 3 ;;
        esac
    done <<< "$places"
}

prebuild() {
    py -c 'import credhelper.client' # the install works, offline
    say "prebuild: installed; no daemon and no sign-in until the workspace starts"
}

config_path() { py -c 'from credhelper import paths; print(paths.config_path())'; }

ensure_config() {
    local config
    config="$(config_path)"
    [ -f "$config" ] && return 0
    if [ -f "$repo/.gitpod/credhelper.toml" ]; then
        mkdir -p "$(dirname "$config")"
        cp "$repo/.gitpod/credhelper.toml" "$config"
        say "using the repository's .gitpod/credhelper.toml"
    elif [ -n "${CREDHELPER_INIT_ARGS:-}" ]; then
        # shellcheck disable=SC2086  # word splitting of the user's options is the point
        "$bin/credhelper" init $CREDHELPER_INIT_ARGS
    else
        say "no config: run 'credhelper init --help', or commit .gitpod/credhelper.toml"
        return 1
    fi
}

start() {
    if headless; then
        say "headless (prebuild): not starting the daemon"
        return 0
    fi
    check_places
    ensure_config || return 0
    "$bin/credhelper" start
    "$bin/credhelper" configure all
    # Other tasks' `command` may wait for this with `gp sync-await credhelper`.
    if command -v gp >/dev/null; then gp sync-done credhelper || true; fi
}

case "${1:-}" in
    install) install ;;
    prebuild) prebuild ;;
    start) start ;;
    *) echo "usage: $0 install|prebuild|start" >&2; exit 2 ;;
esac
