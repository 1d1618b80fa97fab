"""The end-of-run leak check, kept apart from conftest so a test can prove it catches a leak.

Every access token, refresh token, client secret and assertion the emulator saw or handed out is
searched for in every daemon log, audit log and every test's captured output.
"""

from pathlib import Path
from typing import Iterable, List, Sequence

from harness import Workspace

MIN_SECRET = 16  # shorter strings would match by accident (and no real credential is this short)

scanned_files: List[Path] = []
captured: List[str] = []


def watch(ws: Workspace) -> None:
    """Queue a workspace's daemon output, daemon log and audit log for the end-of-run check."""
    scanned_files.extend([ws.root / "daemon.stderr", ws.state_dir / "daemon.log",
                          ws.state_dir / "audit.log"])


def read_texts(paths: Iterable[Path]) -> List[str]:
    """The contents of the files among ``paths`` that exist."""
    return [path.read_text(errors="replace") for path in paths if path.exists()]


def count_leaks(secrets: Iterable[str], texts: Sequence[str]) -> int:
    """How many (secret, text) pairs have the secret inside the text."""
    wanted = [s for s in secrets if len(s) >= MIN_SECRET]
    return sum(1 for text in texts for secret in wanted if secret in text)


def check(secrets: Sequence[str], texts: Sequence[str], tokens_issued: int) -> None:
    """Fail when any secret appears in any text, or when there was nothing to look for."""
    # An emulator that stopped recording would make every run pass: refuse to prove nothing.
    assert secrets or tokens_issued == 0, \
        "tokens were issued but the emulator recorded no credentials to search for"
    leaks = count_leaks(secrets, texts)
    assert leaks == 0, f"{leaks} token/secret occurrences found in logs or captured output"
