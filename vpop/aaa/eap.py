"""EAP-MD5 for local subscribers (RFC 3748 §5.4) over RADIUS (RFC 3579), with no
conversation kept on the server.

The NAS relays EAP between the peer and vpop, one Access-Request a round:

    EAP-Response/Identity              -> Access-Challenge: EAP-Request/MD5-Challenge, State
    EAP-Response/MD5-Challenge + State -> Access-Accept: EAP-Success (and the profile)
                                          or Access-Reject: EAP-Failure
    EAP-Response/Nak + State           -> Access-Reject: EAP-Failure, "EAP method X is not
                                          served locally; only EAP-MD5"

Workers share the ports, so the second round may reach another worker, or come after a
reload: the State carries what that round needs (the challenge, the EAP Identifier, the
User-Name and an expiry) and an HMAC-SHA256 over them under the installation's key
([radius] eap_key_file), and any worker checks it. A State that does not verify, or
has expired, is refused and counted (EapServer.refused).
"""

from __future__ import annotations

import hmac
import struct

from vpop.aaa.credentials import chap_verify
from vpop.aaa.request import AccessContext
from vpop.pipeline.core import Rcode
from vpop.radius import attributes as A
from vpop.radius.codec import ACCESS_CHALLENGE, attribute
from vpop.radius.crypto import random_octets

METHOD = "eap-md5"  # its name among a subscriber's methods
FAILED = "Authentication failed"

# RFC 3748 §4: codes; §5, §9: method types.
REQUEST, RESPONSE, SUCCESS, FAILURE = 1, 2, 3, 4
IDENTITY, NOTIFICATION, NAK, MD5_CHALLENGE = 1, 2, 3, 4
TYPE_NAMES = {1: "Identity", 2: "Notification", 3: "Nak", 4: "MD5", 5: "OTP", 6: "GTC",
              13: "TLS", 17: "LEAP", 18: "SIM", 21: "TTLS", 23: "AKA", 25: "PEAP",
              26: "MSCHAPv2", 29: "MSCHAPv2", 43: "FAST", 47: "PSK", 48: "SAKE",
              49: "IKEv2", 50: "AKA'", 52: "PWD", 55: "TEAP", 254: "expanded"}

CHALLENGE_LENGTH = 16  # octets of random challenge
STATE_LIFETIME = 60  # seconds within which the peer must answer the challenge
_HEADER = struct.Struct("!BBH")  # Code, Identifier, Length
_STATE_HEAD = struct.Struct(f"!BIB{CHALLENGE_LENGTH}s")  # version, expiry, Identifier, challenge
_STATE_VERSION = 1
_MAC_LENGTH = 32  # HMAC-SHA256
_MAC_LABEL = b"vpop eap-md5 state\x00"  # keeps these MACs apart from any other use of the key
MAX_STATE_NAME = 253 - _STATE_HEAD.size - _MAC_LENGTH  # User-Name octets a State can carry


class MalformedEap(ValueError):
    """An EAP packet that does not parse (RFC 3748 §4)."""


def parse(message: bytes) -> tuple[int, int, int, bytes]:
    """(Code, Identifier, Type, Type-Data) of one EAP packet; Type 0 for Success and
    Failure. Octets beyond Length are link-layer padding and ignored (RFC 3748 §4.1)."""
    if len(message) < _HEADER.size:
        raise MalformedEap(f"{len(message)} octets, shorter than the EAP header")
    code, identifier, length = _HEADER.unpack_from(message)
    if not _HEADER.size <= length <= len(message):
        raise MalformedEap(f"Length {length} does not fit {len(message)} octets")
    if code in (REQUEST, RESPONSE):
        if length < 5:
            raise MalformedEap("a Request or Response without a Type")
        return code, identifier, message[4], message[5:length]
    if code in (SUCCESS, FAILURE):
        return code, identifier, 0, b""
    raise MalformedEap(f"unknown Code {code}")


def encode(code: int, identifier: int, kind: int = 0, data: bytes = b"") -> bytes:
    """One EAP packet; `kind` and `data` for Requests and Responses only."""
    body = bytes((kind,)) + data if code in (REQUEST, RESPONSE) else b""
    return _HEADER.pack(code, identifier, _HEADER.size + len(body)) + body


def message_attributes(message: bytes) -> bytes:
    """EAP-Message attributes carrying `message`, 253 octets each (RFC 3579 §3.1)."""
    return b"".join(attribute(A.EAP_MESSAGE, message[at:at + 253])
                    for at in range(0, len(message), 253))


def type_name(kind: int) -> str:
    return TYPE_NAMES.get(kind, f"type {kind}")


class EapServer:
    """The installation's key for signing States, and what was refused (for metrics).
    One per worker, kept across reloads."""

    __slots__ = ("key", "refused")

    def __init__(self, key: bytes):
        self.key = key
        self.refused: dict[str, int] = {}  # why (expired, forged) -> States refused

    def _mac(self, signed: bytes) -> bytes:
        return hmac.digest(self.key, _MAC_LABEL + signed, "sha256")

    def issue(self, *, identifier: int, challenge: bytes, name: bytes, now: float) -> bytes:
        """A State for the challenge sent with `identifier` to `name`; valid
        STATE_LIFETIME seconds from `now`. `name` is at most MAX_STATE_NAME octets."""
        signed = _STATE_HEAD.pack(_STATE_VERSION, int(now) + STATE_LIFETIME, identifier,
                                  challenge) + name
        return signed + self._mac(signed)

    def check(self, state: bytes, name: bytes, now: float) -> tuple[int, bytes] | str:
        """(Identifier, challenge) of a State this installation issued to `name` and
        that has not expired; else why not ("forged", "expired"), counted."""
        signed, mac = state[:-_MAC_LENGTH], state[-_MAC_LENGTH:]
        why = ""
        if (len(signed) < _STATE_HEAD.size or signed[0] != _STATE_VERSION
                or not hmac.compare_digest(mac, self._mac(signed))
                or signed[_STATE_HEAD.size:] != name):
            why = "forged"  # not ours, altered, or issued to another user name
        else:
            _, expires, identifier, challenge = _STATE_HEAD.unpack_from(signed)
            if now > expires:
                why = "expired"
        if why:
            self.refused[why] = self.refused.get(why, 0) + 1
            return why
        return identifier, challenge


def authenticate_eap_md5(ctx: AccessContext, deps) -> Rcode:
    """Authenticate stage for method eap-md5: challenge an identity, check an answer.
    Rejects carry EAP-Failure (eap_failure, run on every rejected EAP request)."""
    try:
        code, identifier, kind, data = parse(b"".join(ctx.packet.attrs[A.EAP_MESSAGE]))
    except MalformedEap as exc:
        return ctx.reject(f"malformed EAP-Message: {exc}", FAILED)
    if code != RESPONSE:
        return ctx.reject(f"EAP Code {code} where a Response was expected", FAILED)
    server: EapServer | None = deps.eap
    if server is None:
        return ctx.reject("EAP-MD5 has no State key here", FAILED)
    password = ctx.account.cleartext
    if password is None:
        return ctx.reject("no EAP-MD5 credential stored", FAILED)
    name = ctx.packet.first(A.USER_NAME) or b""
    if kind == IDENTITY:
        if len(name) > MAX_STATE_NAME:
            return ctx.reject(f"User-Name longer than {MAX_STATE_NAME} octets for EAP-MD5",
                              FAILED)
        return _challenge(ctx, server, (identifier + 1) % 256, name, deps.rng)
    state = ctx.packet.first(A.STATE)
    if state is None:
        return ctx.reject(f"EAP-Response/{type_name(kind)} without a State", FAILED)
    found = server.check(state, name, ctx.now)
    if type(found) is str:
        return ctx.reject(f"EAP State {found}", FAILED)
    sent, challenge = found
    if identifier != sent:
        return ctx.reject(f"EAP Identifier {identifier} does not answer the challenge's {sent}",
                          FAILED)
    if kind == NAK:
        wanted = ", ".join(type_name(k) for k in data if k) or "none"  # 0: none (§5.3.1)
        why = f"EAP method {wanted} is not served locally; only EAP-MD5"
        return ctx.reject(why, why)
    if kind != MD5_CHALLENGE:
        return ctx.reject(f"EAP-Response/{type_name(kind)} to an MD5-Challenge", FAILED)
    if len(data) < 1 + CHALLENGE_LENGTH or data[0] != CHALLENGE_LENGTH:
        return ctx.reject("EAP-MD5 response of the wrong size", FAILED)
    # RFC 3748 §5.4: the MD5-Challenge is CHAP's (RFC 1994 §4.1), Identifier and all.
    if not chap_verify(identifier, password, challenge, data[1:1 + CHALLENGE_LENGTH]):
        return ctx.reject("wrong password", FAILED)
    # RFC 3748 §4.2: Success carries the Identifier of the Response it answers.
    ctx.reply_attrs.append(message_attributes(encode(SUCCESS, identifier)))
    return Rcode.OK


def _challenge(ctx: AccessContext, server: EapServer, identifier: int, name: bytes,
               rng) -> Rcode:
    """Access-Challenge: EAP-Request/MD5-Challenge (Value-Size, Value; no Name) and the
    State the answer must bring back (RFC 2865 §5.24, RFC 3579 §2.6.1)."""
    challenge = random_octets(rng, CHALLENGE_LENGTH)
    request = encode(REQUEST, identifier, MD5_CHALLENGE,
                     bytes((CHALLENGE_LENGTH,)) + challenge)
    state = server.issue(identifier=identifier, challenge=challenge, name=name, now=ctx.now)
    ctx.reply_code = ACCESS_CHALLENGE
    ctx.reason = "EAP-MD5 challenge"
    ctx.reply_attrs = [message_attributes(request), attribute(A.STATE, state)]
    return Rcode.HANDLED


def eap_failure(ctx: AccessContext) -> None:
    """An Access-Reject of an EAP request carries EAP-Failure, with the Identifier of
    the Response it answers, and nothing else the NAS could take for a grant
    (RFC 3579 §2.6.3, RFC 3748 §4.2)."""
    message = b"".join(ctx.packet.attrs[A.EAP_MESSAGE])
    identifier = message[1] if len(message) > 1 else 0
    ctx.reply_attrs = [message_attributes(encode(FAILURE, identifier))]
