"""vpop's state on disk is its operator's alone: the database holds NAS secrets and
CHAP cleartexts, the journal the accounting records. Files are made owner-only (0600),
directories too (0700), whatever the umask; docs/configuration.md says so."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

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


def kept_secret(path: str | os.PathLike[str], make: Callable[[], str]) -> str:
    """The secret kept in the file `path`; at the first call, make() is written there,
    owner-only. Processes starting at once agree on one: each writes its own file aside
    and links it into place, and the ones that find it taken read the winner's.
    OSError when the file cannot be read or made."""
    path = Path(path)
    try:
        text = path.read_text().strip()
        if text:
            return text
    except FileNotFoundError:
        pass
    private_dirs(path.parent)
    value = make()
    aside = path.with_name(f".{path.name}.{os.getpid()}")
    with open(aside, "w", opener=private_opener) as out:
        out.write(value + "\n")
    try:
        os.link(aside, path)
    except FileExistsError:  # another process made it first: use theirs
        text = path.read_text().strip()
        if text:
            value = text
        else:  # an empty file: ours takes its place
            os.replace(aside, path)
    finally:
        if aside.exists():
            os.unlink(aside)
    return value
