"""The one error hierarchy: peer faults are dropped, our own faults stop start-up."""

from __future__ import annotations


class VpopError(Exception):
    """Base of every error vpop raises on purpose."""


class MalformedPacket(VpopError):
    """A peer sent bytes that are not a valid RADIUS packet: drop and count."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ConfigError(VpopError):
    """Our configuration or provisioning data is wrong: stop with file, line and field."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None):
        self.file, self.line, self.field, self.message = file, line, field, message
        where = ":".join(str(p) for p in (file, line) if p is not None)
        parts = [p for p in (where, f"field '{field}'" if field else None) if p]
        super().__init__(f"{', '.join(parts)}: {message}" if parts else message)


class StoreUnavailable(VpopError):
    """The database cannot be reached or used; the message names it without the password."""


class ListenError(VpopError, OSError):
    """An address and port cannot be bound (in use, not an address of this host): stop
    at start-up naming both. An OSError too, for the handlers that close what was opened."""

    def __init__(self, address: str, port: int, transport: str, reason: str, *,
                 option: str | None = None):
        where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        about = f" ({option})" if option else ""
        super().__init__(f"cannot listen on {where}/{transport}{about}: {reason}")
