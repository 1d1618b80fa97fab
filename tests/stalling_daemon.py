"""``credhelper daemon`` whose cache saves stall halfway, for the kill -9 test.

Run as ``python stalling_daemon.py MARKER``: every vault save writes half its temp file, fsyncs,
creates MARKER, then hangs until the test kills the process. The product has no such hook; the
fault is injected here, through the Vault's ``writer`` parameter.
"""

import functools
import os
import sys
import time
from pathlib import Path

from credhelper import daemon, vault


def stall(marker: str, fd: int, data: bytes) -> None:
    """Write half of ``data``, make it durable, say so through ``marker``, then hang."""
    vault.write_all(fd, data[:len(data) // 2])
    os.fsync(fd)
    Path(marker).touch()
    while True:
        time.sleep(60)


if __name__ == "__main__":
    daemon.Vault = functools.partial(vault.Vault, writer=functools.partial(stall, sys.argv[1]))  # type: ignore
    from credhelper.cli import main

    sys.argv[1:] = ["daemon"]
    main()
