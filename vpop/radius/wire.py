"""The wire primitives in use: compiled (vpop/radius/_wire.c) when it is built, else
the Python reference (vpop/radius/wire_py.py). Same names, same results.

`VPOP_WIRE=python` in the environment takes the Python ones even when the compiled
module is there (for comparing the two, as bench/auth_vs_freeradius.py does).
"""

from __future__ import annotations

import os

from vpop.radius import wire_py

if os.environ.get("VPOP_WIRE", "").lower() == "python":
    _impl = wire_py
else:
    try:
        from vpop.radius import _wire as _impl
    except ImportError:  # not built (a source tree without a compiler): same results, slower
        _impl = wire_py

COMPILED = _impl is not wire_py
# For the start-up log line: which of the two runs.
IMPLEMENTATION = ("compiled (vpop.radius._wire)" if COMPILED
                  else "Python reference (vpop.radius.wire_py, slower)")
md5 = _impl.md5
hmac_md5 = _impl.hmac_md5
message_authenticator_ok = _impl.message_authenticator_ok
hashed_authenticator_ok = _impl.hashed_authenticator_ok
encode_reply = _impl.encode_reply
md5_chain = _impl.md5_chain
decode = _impl.decode
attributes_without = _impl.attributes_without


def type_set(*types: int) -> bytes:
    """The `skip` table of attributes_without(): one octet per attribute type."""
    table = bytearray(256)
    for kind in types:
        table[kind] = 1
    return bytes(table)
