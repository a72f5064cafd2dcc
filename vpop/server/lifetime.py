"""A child process's life tied to its parent's: a SIGKILL'ed server leaves nothing behind.

Workers and the ledger ask the kernel for SIGKILL when the process that started them
dies (prctl PR_SET_PDEATHSIG). Without it, workers of a supervisor killed with SIGKILL
would go on answering on the shared ports beside the server started next.
"""

from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> bool:
    """Be killed when `parent` dies; False when it already has (the caller should exit)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent's death goes unnoticed
        pass
    return os.getppid() == parent  # it may have died before the prctl
