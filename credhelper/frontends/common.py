"""What the git and pip front-ends share: how long a ``get`` may take, how they speak to a
person, and the starter that brings up a daemon on first use. Standard library only.
"""

from .. import environment

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Optional, Set, TextIO

GET_TIMEOUT = 30.0  # a first get may wait for the daemon to acquire a token from Entra


def say(stream: "TextIO", message: str, told: "Optional[Set[str]]" = None) -> None:
    """One ``credhelper: ...`` line for a person; with ``told``, each line only once."""
    line = " ".join(message.split())[:300]
    if told is not None:
        if line in told:
            return
        told.add(line)
    stream.write(f"credhelper: {line}\n")
    stream.flush()


def starter() -> "Optional[Callable[[str], bool]]":
    """What starts the daemon when nothing listens, or None under ``CREDHELPER_NO_AUTOSTART``.

    The knob is read first, so a process that may not autostart never imports ``autostart``.
    """
    if environment.autostart_disabled():
        return None

    def start(socket_path: str, **options: "Any") -> bool:
        # imported only when nothing listens: autostart pulls in subprocess, signal and enum,
        # milliseconds every git call would otherwise pay
        from ..autostart import ensure_daemon

        return ensure_daemon(socket_path, **options)

    return start
