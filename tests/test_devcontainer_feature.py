"""The dev container feature (features/src/credhelper), run the way the devcontainer CLI runs it.

The CLI copies the feature folder into the image, writes the options it resolved into
``devcontainer-features.env``, sources that and runs ``install.sh`` as root with ``_REMOTE_USER``
and friends set; at each container start it runs the feature's ``postStartCommand`` as the user,
in the workspace folder. There is no docker daemon here, so the "image" is this machine seen
through a private mount namespace with an overlay on /usr/local: install.sh writes to its real
paths, and nothing of it reaches the machine's own /usr/local.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

ROOT = Path(__file__).resolve().parents[1]
FEATURE = ROOT / "features" / "src" / "credhelper"
SHARE = "/usr/local/share/credhelper"
# the machine's own network settings for pip (its index, its proxy's CA), passed as a build would
PASS_THROUGH = re.compile(r"^(PIP_|SSL_CERT_|REQUESTS_CA_BUNDLE$|CURL_CA_BUNDLE$|"
                          r"(HTTPS?|NO)_PROXY$|(https?|no)_proxy$)")


def option_env_name(option: str) -> str:
    """The spec's option resolution: non-word characters and leading digits to _, upper case."""
    return re.sub(r"^[\d_]+", "_", re.sub(r"[^\w_]", "_", option)).upper()


def resolved_options(**given: object) -> Dict[str, str]:
    """What the CLI writes to devcontainer-features.env: each option, given or its default."""
    options = json.loads((FEATURE / "devcontainer-feature.json").read_text())["options"]
    out = {}
    for name, spec in options.items():
        value = given.get(name, spec["default"])
        out[option_env_name(name)] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def env_file(values: Dict[str, str]) -> str:
    return "".join(f'{key}="{value}"\n' for key, value in values.items())


def test_feature_metadata_follows_the_spec():
    meta = json.loads((FEATURE / "devcontainer-feature.json").read_text())
    assert meta["id"] == FEATURE.name  # the id must be the folder's name
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"]) and meta["name"]
    for spec in meta["options"].values():
        assert spec["type"] in ("string", "boolean") and "default" in spec and spec["description"]
    assert meta["postStartCommand"] == f"{SHARE}/start.sh"
    assert f"share={SHARE}" in (FEATURE / "install.sh").read_text()
    assert os.access(FEATURE / "install.sh", os.X_OK)
    assert resolved_options() == {"VERSION": "latest", "PACKAGE": "",
                                  "CONFIG": ".devcontainer/credhelper.toml",
                                  "CONFIGURETOOLS": "true"}
    assert option_env_name("configureTools") == "CONFIGURETOOLS"


@pytest.mark.parametrize("options, message", [
    ({"version": "1.0; rm -rf /"}, "version: '1.0; rm -rf /' is not a version"),
    ({"version": "newest"}, "version: 'newest' is not 'latest' or a version"),
    ({"configureTools": "yes"}, "configureTools: 'yes' is not true or false"),
])
def test_bad_options_stop_the_build_with_one_line(tmp_path, options, message):
    if os.geteuid() != 0:
        pytest.skip("install.sh runs as root, as the devcontainer CLI runs it")
    (tmp_path / "devcontainer-features.env").write_text(env_file(resolved_options(**options)))
    result = subprocess.run(
        ["bash", "-c", f"set -a; . ./devcontainer-features.env; set +a; exec {FEATURE}/install.sh"],
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "_REMOTE_USER": "root"},
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"credhelper feature: {message}")


def _can_overlay() -> str:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return "needs root and unshare(1) for a private mount namespace"
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs none /mnt"], capture_output=True)
    return "" if probe.returncode == 0 else "mount namespaces are not allowed here"


CONTAINER = r'''
set -euo pipefail
# the image: this machine, with /usr/local on an overlay whose upper layer is ours
mount -t overlay overlay -o "lowerdir=/usr/local,upperdir=$T/upper,workdir=$T/work" /usr/local
# build: the CLI's copy of the feature, its env file, install.sh as root
cd "$T/feature"
env -i $BUILD_ENV bash -c 'set -a; . ./devcontainer-features.env; set +a; chmod +x install.sh && ./install.sh'
echo "== built"
# container start: postStartCommand as the user, in the workspace folder
cd "$T/workspace"
env -i $USER_ENV bash -c "$POST_START"
echo "== started"
# a new terminal: git finds entra in /usr/local/bin, which runs the feature's venv
env -i $USER_ENV git clone --quiet "$GIT_URL" "$T/checkout"
echo "== cloned"
env -i $USER_ENV credhelper stop
'''


@pytest.mark.timeout(900)
def test_install_then_start_as_the_devcontainer_cli_does(tmp_path, em):
    why = _can_overlay()
    if why:
        pytest.skip(why)
    for name in ("upper", "work", "workspace/.devcontainer", "home", "bin"):
        (tmp_path / name).mkdir(parents=True)
    shutil.copytree(FEATURE, tmp_path / "feature")
    # the package to install: a copy of this checkout (pip must not write into the real one)
    source = tmp_path / "src"
    shutil.copytree(ROOT / "credhelper", source / "credhelper",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.cfg", "setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    (tmp_path / "feature" / "devcontainer-features.env").write_text(
        env_file(resolved_options(package=str(source))))
    # the repository's config: the environment's identity from `ona idp token` (the emulator's)
    (tmp_path / "workspace" / ".devcontainer" / "credhelper.toml").write_text(
        f'[accounts.env]\nauthority = "{em.idp_base}/{em.tenant}"\nclient_id = "ona-app"\n'
        f'flow = "federated"\nassertion_provider = "ona"\nca_bundle = "{em.ca_file}"\n\n'
        f'[[routes]]\nurl = "{em.feed_base}/"\naccount = "env"\npreset = "azure-devops"\n')
    ona = tmp_path / "bin" / "ona"
    ona.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m credhelper.emulator ona '
                   f'--dir "{em.workdir}" "$@"\n')
    ona.chmod(0o755)
    home = tmp_path / "home"
    build_env = " ".join(
        ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root", "_REMOTE_USER=root",
         "_REMOTE_USER_HOME=/root", "_CONTAINER_USER=root", "_CONTAINER_USER_HOME=/root"]
        + [f"{k}={v}" for k, v in os.environ.items() if PASS_THROUGH.match(k)])
    user_env = " ".join([
        f"PATH={tmp_path / 'bin'}:/usr/local/bin:/usr/bin:/bin", f"HOME={home}",
        f"GIT_SSL_CAINFO={em.ca_file}", "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1",
        f"NPM_CONFIG_USERCONFIG={home / '.npmrc'}"])
    post_start = json.loads((FEATURE / "devcontainer-feature.json").read_text())["postStartCommand"]
    before = em.idp.count(client_id="ona-app")
    result = subprocess.run(
        ["unshare", "-m", "bash", "-c", CONTAINER], capture_output=True, text=True, timeout=800,
        env={"PATH": "/usr/bin:/bin", "T": str(tmp_path), "BUILD_ENV": build_env,
             "USER_ENV": user_env, "POST_START": post_start, "GIT_URL": em.git_url()})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "== built" in output and "== started" in output and "== cloned" in output
    assert f"installing {source} into {SHARE}/venv" in output
    assert "credhelper: using .devcontainer/credhelper.toml" in output
    assert (tmp_path / "checkout" / "README.md").exists()
    assert em.idp.count(client_id="ona-app") > before
    # what the image gained, and that the machine's own /usr/local did not
    upper = tmp_path / "upper"
    assert (upper / "share" / "credhelper" / "venv" / "bin" / "credhelper").exists()
    assert os.readlink(upper / "bin" / "git-credential-entra") == f"{SHARE}/venv/bin/git-credential-entra"
    assert not Path(SHARE).exists()
    config = home / ".config" / "credhelper" / "config.toml"
    assert config.stat().st_mode & 0o777 == 0o600
    # configure all ran: git asks the feature's install for the feed's credentials
    gitconfig = (home / ".gitconfig").read_text()
    assert f'[credential "{em.feed_base}"]' in gitconfig and f"{SHARE}/venv/" in gitconfig
