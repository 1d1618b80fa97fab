#!/usr/bin/env bash
# Dev container feature: install credhelper (DESIGN §8a: one line in devcontainer.json for
# Codespaces, VS Code dev containers, DevPod and Ona). Runs as root at image build time, with the
# options as upper-cased variables (VERSION, PACKAGE, CONFIG, CONFIGURETOOLS) and the
# user in _REMOTE_USER / _REMOTE_USER_HOME. It installs only: no daemon, no sign-in and no token
# at build time (an image is shared; an identity is not). start.sh, run by postStartCommand as
# the user in the workspace folder, starts the daemon each time the container starts.
set -euo pipefail

VERSION="${VERSION:-latest}"
PACKAGE="${PACKAGE:-}"
CONFIG="${CONFIG:-.devcontainer/credhelper.toml}"
CONFIGURETOOLS="${CONFIGURETOOLS:-true}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
share=/usr/local/share/credhelper   # postStartCommand in devcontainer-feature.json names it
venv="$share/venv"

say() { echo "credhelper feature: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "install.sh must run as root (the devcontainer CLI does so)"
case "$VERSION" in
    latest) spec="credhelper" ;;
    [0-9]*.[0-9]*) [[ "$VERSION" =~ ^[0-9A-Za-z.+!-]+$ ]] || die "version: '$VERSION' is not a version"
                   spec="credhelper==$VERSION" ;;
    *) die "version: '$VERSION' is not 'latest' or a version such as 0.1.0" ;;
esac
[ -n "$PACKAGE" ] && spec="$PACKAGE"
case "$CONFIGURETOOLS" in true|false) ;; *) die "configureTools: '$CONFIGURETOOLS' is not true or false" ;; esac

# Python 3.9+ with venv: from the image, else from the distribution.
python=""
for candidate in python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 \
       && "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
        python="$(command -v "$candidate")"
        break
    fi
done
if [ -z "$python" ]; then
    if command -v apt-get >/dev/null 2>&1; then
        say "installing python3 and python3-venv with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends python3 python3-venv ca-certificates >/dev/null
        rm -rf /var/lib/apt/lists/*
        python="$(command -v python3)"
    elif command -v apk >/dev/null 2>&1; then
        say "installing python3 with apk"
        apk add --no-cache python3 >/dev/null
        python="$(command -v python3)"
    else
        die "no Python 3.9+ with venv here, and no apt-get or apk to install one"
    fi
fi

say "installing $spec into $venv"
mkdir -p "$share" /usr/local/bin
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input "$spec"
for command in credhelper git-credential-entra; do
    [ -x "$venv/bin/$command" ] || die "$spec did not install the $command command"
    ln -sf "$venv/bin/$command" "/usr/local/bin/$command"
done

# The start script, with this feature's options fixed in it.
sed -e "s|@CONFIG@|$(printf '%s' "$CONFIG" | sed 's/[|&\\]/\\&/g')|" \
    -e "s|@CONFIGURETOOLS@|$CONFIGURETOOLS|" \
    -e "s|@BIN@|$venv/bin|" "$here/start.sh" > "$share/start.sh"
chmod 0755 "$share/start.sh"
chmod -R a+rX "$share"

user="${_REMOTE_USER:-root}"
say "installed $("$venv/bin/credhelper" --version 2>/dev/null || echo credhelper);" \
    "the daemon starts as $user at each container start (config: $CONFIG)"
