"""PBKDF2 for provisioning: how the writers make and check password hashes, over the
cores when there are many (a file of PAP-only subscribers is bound by them)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from vpop.aaa.credentials import hash_password, verify_password_hash
from vpop.progress import Progress, silent

PBKDF2_ITERATIONS = 200_000
SALT_BYTES = 16
POOL_MIN_JOBS = 32  # PBKDF2 hashes worth starting processes for (about a second's work)


@dataclass(frozen=True, slots=True, kw_only=True)
class Hashing:
    """What the writers are given beside the session: how to make PBKDF2 hashes, and
    where to show their progress."""

    salt: Callable[[int], bytes]
    iterations: int
    run: Callable[[Callable, Sequence], list] = lambda function, items: list(map(function, items))
    progress: Callable[[str, int], Progress] = silent


def verifies(password: str, stored: str) -> bool:
    try:
        return verify_password_hash(password.encode("utf-8"), stored)
    except ValueError:  # a corrupt stored hash is replaced
        return False


# Jobs for Hashing.run: module-level functions, so a process pool can run them.

def verify_job(job: tuple[str, str]) -> bool:
    return verifies(*job)


def hash_job(job: tuple[str, bytes, int]) -> str:
    password, salt, iterations = job
    return hash_password(password, salt=salt, iterations=iterations)


@contextmanager
def pbkdf2_runner(jobs: int, processes: int | None) -> Iterator[Callable]:
    """run(function, jobs) -> results, in order: in this process for a few jobs, else
    spread over `processes` processes (default: one per core). PBKDF2 costs tens of
    milliseconds a hash, so a file of PAP-only subscribers is bound by it."""
    processes = processes or os.cpu_count() or 1
    if processes < 2 or jobs < POOL_MIN_JOBS:
        yield lambda function, items: list(map(function, items))
        return
    # spawn: the workers start clean, without this process's database connections
    with ProcessPoolExecutor(max_workers=processes,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        def run(function: Callable, items: Sequence) -> list:
            size = max(1, len(items) // (processes * 4))
            return list(pool.map(function, items, chunksize=size))
        yield run
