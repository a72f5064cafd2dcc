"""vpop's state on disk is its operator's alone: the database holds NAS secrets and
CHAP cleartexts, the journal the accounting records. Files are made owner-only (0600),
directories too (0700), whatever the umask; docs/configuration.md says so."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_dirs(path: str | os.PathLike[str]) -> None:
    """Make the directory `path` and its missing parents, each owner-only; those that
    exist are left as they are."""
    missing = []
    at = Path(path)
    while not at.exists() and at != at.parent:
        missing.append(at)
        at = at.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:  # made meanwhile by another process
            pass


def private_opener(path: str, flags: int) -> int:
    """For open(..., opener=private_opener): a file it creates is owner-only."""
    return os.open(path, flags, PRIVATE_FILE)


def readable_by_others(path: str | os.PathLike[str]) -> bool:
    """Whether a file or directory is open to users other than its owner and group."""
    try:
        return bool(os.stat(path).st_mode & 0o007)
    except OSError:
        return False
