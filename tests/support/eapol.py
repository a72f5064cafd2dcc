"""eapol_test (wpa_supplicant's RADIUS test client) running one PEAP/MSCHAPv2 or EAP-MD5
login."""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from support.freeradius import find_tool


@dataclass(frozen=True)
class EapolResult:
    ok: bool  # eapol_test printed SUCCESS and exited 0
    output: str  # its stdout and stderr
    msk: bytes | None  # the MSK (EAP master session key) the supplicant derived
    # The MS-MPPE keys in the Access-Accept equal the supplicant's MSK (None: no keys seen).
    # eapol_test fails on a mismatch, so `ok` implies it; kept for clearer asserts.
    mppe_keys_match: bool | None = None

    def __str__(self) -> str:
        return ("SUCCESS" if self.ok else "FAILURE") + "\n" + self.output[-6000:]


def quoted(value: str) -> str:
    """A wpa_supplicant config string; it has no escapes, so refuse what it cannot hold."""
    if any(c in value for c in '"\n\r'):
        raise ValueError("eapol_test config values cannot contain quotes or newlines")
    return f'"{value}"'


def network_config(identity: str, password: str, *, anonymous_identity: str | None = None,
                ca_cert: Path | None = None, method: str = "PEAP") -> str:
    """A network block for `method`: PEAP (with MSCHAPv2 inside) or MD5."""
    lines = ["network={", "\tkey_mgmt=IEEE8021X", f"\teap={method}",
             f"\tidentity={quoted(identity)}", f"\tpassword={quoted(password)}"]
    if method == "PEAP":
        lines += ['\tphase1="peapver=0"', '\tphase2="auth=MSCHAPV2"']
    if anonymous_identity is not None:
        lines.append(f"\tanonymous_identity={quoted(anonymous_identity)}")
    if ca_cert is not None:
        lines.append(f"\tca_cert={quoted(str(ca_cert))}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def run_eapol_test(server: str, port: int, secret: str, identity: str, password: str, *,
                   anonymous_identity: str | None = None, ca_cert: Path | None = None,
                   timeout: int = 10, extra_args: tuple[str, ...] = (),
                   method: str = "PEAP") -> EapolResult:
    """One PEAP/MSCHAPv2 (or, with method="MD5", EAP-MD5) authentication against
    `server`:`port`, no re-authentication. EAP-MD5 derives no keys (RFC 3748 §5.4), so
    eapol_test is told to expect no MPPE keys (-n).

    `anonymous_identity` is the outer identity (what a proxy routes on); `ca_cert`
    makes the supplicant verify the server certificate. `extra_args` go to
    eapol_test as they are (e.g. ("-N", "30:s:0301234567") for Called-Station-Id).
    """
    binary = find_tool("eapol_test")
    with tempfile.TemporaryDirectory(prefix="vpop-eapol-") as tmp:
        conf = Path(tmp) / "eap.conf"
        conf.write_text(network_config(identity, password,
                                       anonymous_identity=anonymous_identity,
                                       ca_cert=ca_cert, method=method))
        args = [binary, "-c", str(conf), "-a", server, "-p", str(port), "-s", secret,
                "-r0", f"-t{timeout}", *(("-n",) if method == "MD5" else ()), *extra_args]
        try:
            result = subprocess.run(args, capture_output=True, text=True, timeout=timeout + 10)
        except subprocess.TimeoutExpired as exc:
            # The partial output comes back as bytes here even in text mode.
            partial = exc.stdout or b""
            if isinstance(partial, bytes):
                partial = partial.decode(errors="replace")
            return EapolResult(False, partial + "\n(eapol_test did not exit in time)", None)
    output = result.stdout + result.stderr
    ok = result.returncode == 0 and re.search(r"^SUCCESS$", output, re.M) is not None
    mppe = re.search(r"^MPPE keys OK: (\d+)\s+mismatch: (\d+)", output, re.M)
    return EapolResult(ok, output, _msk(output),
                       None if mppe is None else mppe.group(1) != "0" and mppe.group(2) == "0")


def _msk(output: str) -> bytes | None:
    """The MSK from the method's hex dump: `EAP-PEAP: Derived key - hexdump(len=64): 28 a0 ...`."""
    found = None
    for match in re.finditer(r"^EAP-[\w-]+: Derived key - hexdump\(len=\d+\):((?: [0-9a-f]{2})+)",
                             output, re.M):
        found = bytes.fromhex(match.group(1).replace(" ", ""))
    return found
