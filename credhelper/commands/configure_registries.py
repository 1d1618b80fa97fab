"""``credhelper configure docker|cargo``: point docker and cargo at credhelper, touching nothing else.

docker: ``credHelpers`` in ``$DOCKER_CONFIG/config.json`` (else ``~/.docker/config.json``) names
``entra`` for each container registry route (``preset = "acr"``), so docker, skopeo, buildah and
podman run ``docker-credential-entra`` for those hosts only.

cargo: ``[registry] global-credential-providers`` in ``$CARGO_HOME/config.toml`` (else
``~/.cargo/config.toml``) puts ``cargo-credential-entra`` first (cargo tries the last entry first);
the provider answers ``url-not-supported`` for any index that is not routed, so cargo goes on to
``cargo:token`` for crates.io as before.

Each returns one line per change (the same with ``dry_run``); ``remove=True`` undoes exactly that.
"""

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

from .. import paths
from ..atomic import write_atomic
from ..config import Config, registry_hosts
from ..errors import ConfigError, CredhelperError

DOCKER_HELPER = "entra"
CARGO_PROVIDER = "cargo-credential-entra"
CARGO_DEFAULT = "cargo:token"   # what cargo uses when the setting is absent


def _exe(name: str, explicit: Optional[str]) -> str:
    candidates = [explicit] if explicit else [str(Path(sys.executable).parent / name),
                                              shutil.which(name)]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    raise ConfigError(f"cannot find the {name} executable (is credhelper installed?)")


# docker ------------------------------------------------------------------------------------

def docker_config_path() -> Path:
    """The docker CLI's config: ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    explicit = os.environ.get("DOCKER_CONFIG")
    base = Path(explicit).expanduser() if explicit else Path.home() / ".docker"
    return base / "config.json"


def read_json(path: Path) -> Dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc}); fix it by hand first") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a JSON object; fix it by hand first")
    return data


def configure_docker(config: Config, dry_run: bool = False, remove: bool = False,
                     helper_exe: Optional[str] = None) -> List[str]:
    """Set (or with ``remove`` unset) ``credHelpers[host] = "entra"`` for each ACR route."""
    path = docker_config_path()
    data = read_json(path)
    helpers = data.get("credHelpers", {})
    if not isinstance(helpers, dict):
        raise ConfigError(f"{path}: credHelpers is not an object; fix it by hand first")
    hosts = registry_hosts(config)
    if not hosts and not remove:
        raise ConfigError('no container registry route in the config (a whole-host route with '
                          'preset = "acr"); nothing for docker to use')
    changes: List[str] = []
    if remove:
        for host in [h for h, name in helpers.items() if name == DOCKER_HELPER]:
            del helpers[host]
            changes.append(f"docker: {path}: credHelpers[{host!r}] removed")
    else:
        if not dry_run:
            _exe("docker-credential-entra", helper_exe)  # docker finds it on PATH by that name
        for host in hosts:
            if helpers.get(host) != DOCKER_HELPER:
                was = repr(helpers[host]) if host in helpers else "unset"
                helpers[host] = DOCKER_HELPER
                changes.append(f"docker: {path}: credHelpers[{host!r}] = {DOCKER_HELPER!r} "
                               f"(was: {was})")
    if not changes or dry_run:
        return changes
    if helpers:
        data["credHelpers"] = helpers
    else:
        data.pop("credHelpers", None)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    # docker itself rewrites this file as tab-indented JSON; so do we
    write_atomic(Path(os.path.realpath(path)), (json.dumps(data, indent="\t") + "\n").encode(),
                 mode)
    return changes


# cargo -------------------------------------------------------------------------------------

def cargo_config_path() -> Path:
    """cargo's user config: ``$CARGO_HOME/config.toml``, else ``~/.cargo/config.toml``."""
    explicit = os.environ.get("CARGO_HOME")
    base = Path(explicit).expanduser() if explicit else Path.home() / ".cargo"
    return base / "config.toml"


_HEADER = re.compile(r"\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_KEY = re.compile(r"\s*global-credential-providers\s*=")


def _parse_toml(text: str, path: Path) -> Dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix it by hand first") from None


def read_toml(path: Path) -> Dict[str, Any]:
    """cargo's config as a dict: missing is empty, unreadable or invalid is a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return _parse_toml(text, path)


def routed_cargo_registries(config: Config) -> List[str]:
    """Names of the registries in cargo's user config whose index URL a route serves."""
    from ..routing import Router

    try:
        doc = read_toml(cargo_config_path())
    except ConfigError:
        return []
    router, names = Router(config.routes), []
    registries = doc.get("registries")
    for name, table in (registries.items() if isinstance(registries, dict) else ()):
        index = table.get("index") if isinstance(table, dict) else None
        if isinstance(index, str):
            try:
                router.resolve(index[len("sparse+"):] if index.startswith("sparse+") else index)
            except CredhelperError:
                continue
            names.append(name)
    return names


def _is_ours(entry: str) -> bool:
    words = entry.split()
    return bool(words) and os.path.basename(words[0]) == CARGO_PROVIDER


def cargo_launcher() -> Path:
    """Where ``configure cargo`` keeps the provider script cargo runs (in the state dir)."""
    return paths.state_dir() / CARGO_PROVIDER


def _launcher_text() -> Optional[str]:
    """A script that runs the provider with ``python -IS``: no site, no .pth files, no shim.

    None when the interpreter's path holds a space (a ``#!`` line cannot carry it).
    """
    if " " in sys.executable or not os.path.isabs(sys.executable):
        return None
    root = str(Path(__file__).resolve().parents[2])
    return (f"#!{sys.executable} -IS\n"
            "# Written by `credhelper configure cargo`: cargo's credential provider.\n"
            "import sys\n"
            f"sys.path.append({root!r})\n"
            "from credhelper.frontends.cargo import main\n"
            "main()\n")


def cargo_provider(dry_run: bool = False, provider_exe: Optional[str] = None) -> str:
    """The provider entry for cargo: our ``-IS`` script (written unless ``dry_run``), else the
    ``cargo-credential-entra`` console script."""
    text = None if provider_exe else _launcher_text()
    if text is None:
        return _exe(CARGO_PROVIDER, provider_exe)
    path = cargo_launcher()
    if not dry_run:
        try:
            fresh = path.read_text(encoding="utf-8") == text
        except OSError:
            fresh = False
        if not fresh:
            paths.ensure_private_dir(path.parent)
            write_atomic(path, text.encode(), 0o700)
    return str(path)


def cargo_configured(entries: Any) -> bool:
    """Whether cargo's ``global-credential-providers`` (as read from TOML) names our provider."""
    return isinstance(entries, list) and any(isinstance(e, str) and _is_ours(e) for e in entries)


def configure_cargo(dry_run: bool = False, remove: bool = False,
                    provider_exe: Optional[str] = None) -> List[str]:
    """Put (or with ``remove`` take) our provider in ``[registry] global-credential-providers``."""
    path = cargo_config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    doc = _parse_toml(text, path)
    registry = doc.get("registry", {})
    current = registry.get("global-credential-providers") if isinstance(registry, dict) else None
    if current is not None and not (isinstance(current, list) and
                                    all(isinstance(p, str) for p in current)):
        raise ConfigError(f"{path}: registry.global-credential-providers is not a list of strings")
    ours = [p for p in current or [] if _is_ours(p)]
    others = [p for p in current or [] if p not in ours]
    if remove:
        if not ours:
            return []
        wanted: Optional[List[str]] = None if others in ([], [CARGO_DEFAULT]) else others
    else:
        # the last entry is the one cargo asks first
        wanted = (others or [CARGO_DEFAULT]) + [cargo_provider(dry_run, provider_exe)]
        if current == wanted:
            return []
    lines = text.splitlines(keepends=True)
    section, header_at, key_at = None, None, None
    for index, line in enumerate(lines):
        header = _HEADER.match(line)
        if header:
            section = header.group(1)
            if section == "registry":
                header_at = index
            continue
        if section == "registry" and _KEY.match(line):
            key_at = index
    if key_at is not None and not lines[key_at].rstrip().endswith("]"):
        raise ConfigError(f"{path}: registry.global-credential-providers spans several lines; "
                          f"set it by hand to {json.dumps(wanted)}")
    setting = None if wanted is None else f"global-credential-providers = {json.dumps(wanted)}\n"
    if key_at is not None:
        if setting is None:
            del lines[key_at]
        else:
            lines[key_at] = setting
    elif header_at is not None and setting is not None:
        lines.insert(header_at + 1, setting)
    elif setting is not None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines += (["\n"] if lines else []) + ["[registry]\n", setting]
    change = (f"cargo: {path}: {CARGO_PROVIDER} removed from registry.global-credential-providers"
              if remove else f"cargo: {path}: registry.global-credential-providers = "
                             f"{json.dumps(wanted)}")
    if not dry_run:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        write_atomic(Path(os.path.realpath(path)), "".join(lines).encode("utf-8"), mode)
        if remove:
            try:
                cargo_launcher().unlink()
            except FileNotFoundError:
                pass
    return [change]
