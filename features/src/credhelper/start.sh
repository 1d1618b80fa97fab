#!/usr/bin/env bash
# credhelper at container start (the feature's postStartCommand), as the dev container's user,
# in the workspace folder. Written by install.sh with the feature's options filled in.
# Every failure is one line; a missing config only explains, so the container still starts.
set -uo pipefail

bin="@BIN@"
config_source="${CREDHELPER_FEATURE_CONFIG:-@CONFIG@}"
configure_tools="@CONFIGURETOOLS@"

say() { echo "credhelper: $*" >&2; }

config="$("$bin/python" -c 'from credhelper import paths; print(paths.config_path())')" || exit 1
if [ ! -f "$config" ]; then
    if [ -f "$config_source" ]; then
        mkdir -p "$(dirname "$config")"
        install -m 0600 "$config_source" "$config"
        say "using $config_source"
    else
        say "no config: commit $config_source (see 'credhelper init --help'), or write $config"
        exit 0
    fi
fi
"$bin/credhelper" start || exit 1
if [ "$configure_tools" = true ]; then
    "$bin/credhelper" configure all || exit 1
fi
