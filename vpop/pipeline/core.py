"""Sections of stages with FreeRADIUS-style return codes.

A stage is a plain function (ctx, deps) -> Rcode. A section runs its stages in
order and stops at the first REJECT, FAIL, HANDLED or DEFER; DEFER means the
stage handed slow work (ctx.deferred) to the shell, which runs it off the event
loop, stores the result in ctx.deferred_result and resumes the section at the
same stage.
"""

from __future__ import annotations

import enum
from typing import Any, Callable, Sequence


class Rcode(enum.Enum):
    REJECT = "reject"
    FAIL = "fail"
    OK = "ok"
    HANDLED = "handled"
    NOOP = "noop"
    UPDATED = "updated"
    NOTFOUND = "notfound"
    DEFER = "defer"


Stage = Callable[[Any, Any], Rcode]


def run_section(stages: Sequence[Stage], ctx: Any, deps: Any, start: int = 0) -> tuple[Rcode, int]:
    """Run stages from `start`; return the deciding code and the index it stopped at."""
    result = noop = Rcode.NOOP
    reject, fail, handled, defer = Rcode.REJECT, Rcode.FAIL, Rcode.HANDLED, Rcode.DEFER
    for index in range(start, len(stages)):
        code = stages[index](ctx, deps)
        # Identity tests: hashing an Enum member runs Python code, and this is per stage.
        if code is reject or code is fail or code is handled or code is defer:
            return code, index
        if code is not noop:
            result = code
    return result, len(stages)
