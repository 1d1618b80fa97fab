"""Keeps ``//host/path/:_authToken=`` lines fresh in a managed block of the user npmrc.

npm has no credential-helper hook and never refreshes a token itself, so the daemon calls
``write()`` after every refresh. Everything outside the block stays byte-for-byte as it was.
npm itself rewrites the whole file on ``npm config set`` (dropping comments, so our markers),
which is why ``watch()`` puts the block back when someone else touches the file.
"""

import logging
import os
import re
import stat
import threading
import urllib.parse
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from .. import paths
from ..atomic import write_atomic
from ..config import Config
from ..errors import ConfigError, CredhelperError
from ..watch import FileWatcher
from .base import HeldTokens

BEGIN = "# >>> credhelper >>>"
END = "# <<< credhelper <<<"
NOTE = "# Managed by credhelper: rewritten after every token refresh; edits in here are lost."
DEBOUNCE = 0.2  # seconds of quiet before restoring: writers truncate, then write
RECENT = 3  # our past tokens per registry recognised as ours when found outside the block
log = logging.getLogger(__name__)
_BEGIN_RE = re.compile(r"^# >>> credhelper >>>[ \t]*\r?$", re.M)
_END_RE = re.compile(r"^# <<< credhelper <<<[ \t]*(\r?\n)?", re.M)
# npm's ini parser splits keys at '=', strips ';'/'#' comments and unescapes '\\'; a key or
# token holding any of these (or space, quotes, controls) would not reach npm as written.
_INI_UNSAFE = frozenset(" \t\"'=;#\\") | frozenset(chr(c) for c in range(0x20)) | {"\x7f"}


def registry_key(url: str) -> str:
    """npm's per-registry key for ``url``: ``//host[:port]/path/`` (443 omitted, trailing /)."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme != "https" or not parts.hostname or port == -1 or parts.username:
        raise ConfigError(f"npm registry {url!r}: must be an https URL without credentials")
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    netloc = host if port in (None, 443) else f"{host}:{port}"
    # A registry is a directory; npm walks up from each request URL to the longest key.
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    key = f"//{netloc}{path}"
    if any(ch in _INI_UNSAFE for ch in key):
        raise ConfigError(f"npm registry {url!r} cannot be written as an npmrc key")
    return key


def outside_block(lines: List[str], path: Path) -> List[bool]:
    """For each line, whether it lies outside the managed block; a broken block is an error."""
    inside, out = False, []
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ConfigError(f"{path}:{number}: '{BEGIN}' inside the block")
            inside = True
        out.append(not inside)
        if stripped == END:
            if not inside:
                raise ConfigError(f"{path}:{number}: '{END}' without '{BEGIN}'")
            inside = False
    if inside:
        raise ConfigError(f"{path}: '{BEGIN}' has no '{END}'; fix the file by hand")
    return out


def block_lines(text: str) -> Optional[List[str]]:
    """The lines inside the managed block of ``text`` (markers excluded), or None without one."""
    found = _find_block(text)
    if found is None:
        return None
    start, end, _ = found
    return text[start:end].splitlines()[1:-1]


def _find_block(text: str) -> Optional[Tuple[int, int, bool]]:
    """(start, end, terminated) of the managed block, or None."""
    end = _END_RE.search(text)
    if end is None:
        return None
    begins = [m for m in _BEGIN_RE.finditer(text, 0, end.start())]
    if not begins:
        return None
    return begins[-1].start(), end.end(), bool(end.group(1))


def without_block(text: str) -> str:
    """``text`` without the managed block (shared by every sink that keeps one)."""
    found = _find_block(text)
    if found is None:
        return text
    start, end, terminated = found
    before, after = text[:start], text[end:]
    if not terminated:
        # we put the block after a last line that had no newline: give that back exactly
        before = before[:-2] if before.endswith("\r\n") else before[:-1] if before.endswith("\n") else before
    return before + after


def render(text: str, lines: List[str], stray: Iterable[str] = ()) -> str:
    """``text`` with the managed block holding ``lines`` (and ``stray`` lines dropped outside)."""
    newline = "\r\n" if "\r\n" in text else "\n"
    block = newline.join([BEGIN, NOTE] + lines + [END])
    stray_set = set(stray)
    if stray_set:
        # npm's own rewrite keeps our token lines but drops the markers around them
        text = "".join(line for line in text.splitlines(keepends=True)
                       if line.rstrip("\r\n") not in stray_set)
    found = _find_block(text)
    if found is not None:
        start, end, terminated = found
        return text[:start] + block + (newline if terminated else "") + text[end:]
    if not text or text.endswith("\n"):
        return text + block + newline
    return text + newline + block


class NpmrcSink(HeldTokens):
    """The managed block of one npmrc file, for the configured npm registries."""

    name = "npm"
    default_on = True  # kept for `[npm] registries` unless `configure npm --remove` said no

    @classmethod
    def from_config(cls, config: Config, gate: Optional[Callable[[], bool]] = None) -> "NpmrcSink":
        """The sink for ``[npm] registries``, on the npmrc of the daemon's own environment."""
        return cls(paths.npmrc_path(), config.npm_registries, gate)

    def __init__(self, path: Path, registries: Iterable[str],
                 gate: Optional[Callable[[], bool]] = None) -> None:
        self.path = Path(path)
        # Asked before every write: False once `configure TOOL --remove` took the tool off.
        self._gate = gate
        self._keys: Dict[str, str] = {registry_key(url): url for url in registries}
        self._tokens: Dict[str, str] = {}        # registry key -> current token
        self._recent: Dict[str, List[str]] = {}  # registry key -> tokens we last wrote for it
        self._created = False
        self._lock = threading.Lock()
        self._watcher: Optional[FileWatcher] = None

    @property
    def registries(self) -> Tuple[str, ...]:
        """The registry URLs this sink keeps tokens for."""
        return tuple(self._keys.values())

    def reconfigure(self, config: Config) -> None:
        """Take ``[npm] registries`` from a reloaded config."""
        self.set_registries(config.npm_registries)

    def write(self, tokens: Mapping[str, str]) -> None:
        """Set the token of each given registry (others keep theirs) and update the file."""
        paths.refuse_checkout(self.path, f"{self.name} config with tokens")
        update = {}
        for url, token in tokens.items():
            key = registry_key(url)
            if key not in self._keys:
                raise ConfigError(f"npm registry {url!r} is not in [npm] registries")
            if not token or any(ch in _INI_UNSAFE for ch in token):
                raise ValueError(f"refusing to write the token for {url}: unsafe characters in it")
            update[key] = token
        with self._lock:
            self._tokens.update(update)
            self._sync()

    def _key(self, registry: str) -> Optional[str]:
        return registry_key(registry)

    def remove(self) -> None:
        """Take the managed block (and any of our token lines npm moved out of it) out of the file."""
        with self._lock:
            self._tokens.clear()
            text = self._read()
            if text is not None:
                stray = self._stray_lines()
                cleaned = self._clean(text)
                kept = without_block(render(cleaned, [], stray) if stray else cleaned)
                if not kept and self._created:
                    self.path.unlink()
                elif kept != text:
                    self._replace(kept)
            self._recent.clear()

    def set_registries(self, registries: Iterable[str]) -> None:
        """Serve a new registry list (config reload): lines of dropped registries leave the file."""
        keys = {registry_key(url): url for url in registries}
        with self._lock:
            self._keys = keys
            self._tokens = {k: t for k, t in self._tokens.items() if k in keys}
            if self._tokens:
                self._sync()
        if not keys or not self._tokens:
            self.remove()

    def watch(self) -> None:
        """Restore the block within about a second whenever someone rewrites or deletes the file."""
        if self._watcher is None:
            self._watcher = FileWatcher(self.path, self._restore, delay=DEBOUNCE)
            self._watcher.start()

    def stop(self) -> None:
        """Stop watching."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()

    def _restore(self) -> None:
        with self._lock:
            if not self._tokens or self._watcher is None:
                return
            try:
                self._sync()
            except (CredhelperError, OSError) as exc:
                log.warning("could not restore the credhelper block in %s: %s", self.path, exc)

    def _stray_lines(self) -> List[str]:
        return [f"{key}:_authToken={token}" for key, tokens in self._recent.items() for token in tokens]

    def enabled(self) -> bool:
        """Whether this file is ours to keep (the tool is configured, or by default)."""
        return self._gate is None or self._gate()

    def _block_lines(self) -> List[str]:
        return [f"{key}:_authToken={self._tokens[key]}" for key in self._keys if key in self._tokens]

    def _check(self, text: str) -> None:
        """Raise when the file, outside the block, rules out writing the block."""

    def _clean(self, text: str) -> str:
        """``text`` without what a tool's own rewrite left of our block outside the markers
        (npm's case is the stray lines ``render`` drops)."""
        return text

    def _sync(self) -> None:
        """Make the file hold the current block (called with the lock held)."""
        if not self.enabled():
            self._tokens.clear()  # removed: stay out of the file until configured again
            return
        lines = self._block_lines()
        text = self._read()
        if text is None:
            self._created = True
            text = ""
        cleaned = self._clean(text)
        self._check(without_block(cleaned))
        new = render(cleaned, lines, self._stray_lines())
        for key, token in self._tokens.items():
            recent = self._recent.setdefault(key, [])
            if token not in recent:
                recent[:] = (recent + [token])[-RECENT:]
        if new != text:
            self._replace(new)
        elif stat.S_IMODE(os.stat(self.path).st_mode) != 0o600:
            os.chmod(self.path, 0o600)

    def _read(self) -> Optional[str]:
        try:
            if self.path.is_symlink():
                # Writing through it could put a token into a dotfiles checkout.
                raise ConfigError(f"{self.path} is a symlink; credhelper does not write through "
                                  "it (point NPM_CONFIG_USERCONFIG at a plain file)")
            return self.path.read_bytes().decode("utf-8", "surrogateescape")
        except FileNotFoundError:
            return None

    def _replace(self, text: str) -> None:
        """Atomically replace the file with ``text``, mode 0600."""
        write_atomic(self.path, text.encode("utf-8", "surrogateescape"), 0o600,
                     prefix=f".{self.path.name}.credhelper-")
