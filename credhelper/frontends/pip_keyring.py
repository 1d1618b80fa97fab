"""A keyring backend that answers pip (and twine, uv, ...) with the daemon's tokens.

Registered under the ``keyring.backends`` entry point, so keyring imports this module for every
keyring call on the machine: keep it to keyring and credhelper's standard-library modules.
It answers only URLs (and ``host[:port]`` netlocs) the daemon routes and returns ``None`` for
everything else, so the other backends in keyring's chainer go on as before.
"""

import os
import sys
from typing import Optional, Set

from keyring import backend, credentials, errors
from keyring.compat import properties

from .. import paths
from ..client import Client, ours_listening
from ..errors import AmbiguousRoute, CredhelperError, NoRoute, RequestError
from .common import GET_TIMEOUT, say, starter
from .keyring_cli import service_url
from .terminal import get_or_sign_in

# Below the chainer's 10, so with other backends present keyring still builds a chain (and
# asks us first); above every real store (SecretService, macOS, Windows: 5), whose saved
# password for the same host would be a stale copy of what the daemon holds.
PRIORITY = 9.0
_told: Set[str] = set()  # messages already written in this process (pip asks for URL, then netloc)


class ReadOnlyError(errors.PasswordSetError, errors.PasswordDeleteError, NotImplementedError):
    """credhelper stores nothing: tokens come from the daemon.

    It is keyring's documented ``PasswordSetError``/``PasswordDeleteError``, and also a
    ``NotImplementedError`` because that is what keyring's chainer catches to move on to the
    next backend: without it, ``keyring set`` would stop at us and never reach a real store.
    """


def _say(message: str) -> None:
    say(sys.stderr, message, _told)


class CredhelperKeyring(backend.KeyringBackend):
    """Read-only backend: routed https URLs get the daemon's (username, token)."""

    @properties.classproperty
    def priority(cls) -> float:
        """Viable when our own daemon socket or a config exists (autostart may start the daemon)."""
        sock = paths.socket_file()
        # A socket another user planted is not a sign that we are set up: ask the kernel who
        # listens (a connect, nothing sent) before counting it.
        if os.path.exists(sock) and ours_listening(sock):
            return PRIORITY
        if os.path.exists(paths.config_path()):
            return PRIORITY
        raise RuntimeError("credhelper is not set up here (no daemon socket, no config file)")

    def get_credential(self, service: str, username: Optional[str]) -> Optional[credentials.Credential]:
        """``(route username, token)`` for a routed URL; ``None`` so other backends go on."""
        url = service_url(service)
        if url is None:
            return None
        try:
            reply = get_or_sign_in(Client(timeout=GET_TIMEOUT, starter=starter()), url, "pip")
        except (NoRoute, AmbiguousRoute, RequestError):
            return None
        except CredhelperError as exc:
            # keyring callers (pip) treat an exception as "disable keyring for this run";
            # None plus one line lets the user see why and pip carry on.
            _say(exc.message)
            return None
        return credentials.SimpleCredential(reply["username"], reply["token"])

    def get_password(self, service: str, username: str) -> Optional[str]:
        """The token for a routed URL, whatever username the caller has in mind."""
        credential = self.get_credential(service, username)
        return credential.password if credential is not None else None

    def set_password(self, service: str, username: str, password: str) -> None:
        """Refuse: the daemon holds the tokens, nothing here can be stored."""
        raise ReadOnlyError("credhelper does not store passwords")

    def delete_password(self, service: str, username: str) -> None:
        """Refuse: there is nothing stored here to delete."""
        raise ReadOnlyError("credhelper does not store passwords")
