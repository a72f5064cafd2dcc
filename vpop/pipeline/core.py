"""Sections of stages with FreeRADIUS-style return codes.

A stage is a plain function (ctx, deps) -> Rcode. A section runs its stages in
order and stops at the first REJECT, FAIL, HANDLED or DEFER; DEFER means the
stage handed slow work (ctx.deferred) to the shell, which runs it off the event
loop, stores the result in ctx.deferred_result and resumes the section at the
same stage.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence


class Rcode:
    """A stage's return code. Eight singletons compared by identity.

    Not an Enum: reading an Enum member goes through the metaclass's attribute
    hook, and stages read these on every request.
    """
    __slots__ = ("name", "stops")

    REJECT: "Rcode"
    FAIL: "Rcode"
    OK: "Rcode"
    HANDLED: "Rcode"
    NOOP: "Rcode"
    UPDATED: "Rcode"
    NOTFOUND: "Rcode"
    DEFER: "Rcode"

    def __init__(self, name: str, stops: bool):
        self.name = name
        self.stops = stops  # ends its section

    def __repr__(self) -> str:
        return f"Rcode.{self.name}"


for _name in ("REJECT", "FAIL", "OK", "HANDLED", "NOOP", "UPDATED", "NOTFOUND", "DEFER"):
    setattr(Rcode, _name, Rcode(_name, stops=_name in ("REJECT", "FAIL", "HANDLED", "DEFER")))
del _name


Stage = Callable[[Any, Any], Rcode]


def run_section(stages: Sequence[Stage], ctx: Any, deps: Any, start: int = 0) -> tuple[Rcode, int]:
    """Run stages from `start`; return the deciding code and the index it stopped at."""
    result = noop = Rcode.NOOP
    for index in range(start, len(stages)):
        code = stages[index](ctx, deps)
        if code.stops:
            return code, index
        if code is not noop:
            result = code
    return result, len(stages)
