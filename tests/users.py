"""Real second users for the tests that need another uid (created once, as root, with setpriv)."""

import os
import pwd
import shutil
import subprocess
from typing import Any, List

import pytest

needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                reason="needs root and setpriv")


def user(name: str) -> pwd.struct_passwd:
    """The system user ``name``, created (no home, no shell) when missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        name], check=True, capture_output=True)
        return pwd.getpwnam(name)


def as_user(account: pwd.struct_passwd, cmd: List[str], **kw: Any) -> subprocess.Popen:
    """Start ``cmd`` as ``account`` (its uid and gid, no supplementary groups)."""
    return subprocess.Popen(["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}",
                             "--clear-groups", *cmd], **kw)
