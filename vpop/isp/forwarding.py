"""Packet rewriting for the proxy's two legs (RFC 2865 §2.3, RFC 5080 §2.1).

Hidden attributes are tied to a shared secret and a Request Authenticator, so they
are recovered and hidden again on each leg: User-Password toward the ISP; salted
keys (MS-MPPE-*, Tunnel-Password) and MS-CHAP-MPPE-Keys back toward the NAS.
Everything else passes as it came, byte for byte: CHAP, MS-CHAP, EAP and vendor
attributes. A CHAP challenge that was carried in the NAS's authenticator is made
explicit, since the upstream request has its own. The User-Name is renamed (realm
stripped or rewritten) only where the credentials do not cover it.
"""

from __future__ import annotations

from typing import Callable

from vpop.radius import attributes as A
from vpop.radius.codec import VENDOR_SPECIFIC, Packet, attribute, vendor_attribute
from vpop.radius.crypto import (decrypt_mschap_mppe_keys, decrypt_salted,
                                decrypt_user_password, encrypt_mschap_mppe_keys,
                                encrypt_salted, encrypt_user_password)
from vpop.radius.wire import attributes_without, type_set

TUNNEL_PASSWORD = 69
MS_CHAP_MPPE_KEYS = (A.MICROSOFT, 12)
SALTED = frozenset({TUNNEL_PASSWORD, (A.MICROSOFT, 16), (A.MICROSOFT, 17)})
REHIDDEN = SALTED | {MS_CHAP_MPPE_KEYS}
# Types not passed on as they came: re-added below (Proxy-State, User-Name, User-Password)
# or by the encoder (Message-Authenticator).
_UPSTREAM = type_set(A.MESSAGE_AUTHENTICATOR, A.PROXY_STATE, A.USER_PASSWORD)
_UPSTREAM_RENAMED = type_set(A.MESSAGE_AUTHENTICATOR, A.PROXY_STATE, A.USER_PASSWORD,
                             A.USER_NAME)
# The name is part of these credentials: MS-CHAPv2's challenge hash covers it (RFC 2759
# §8.2), and an EAP server compares it with the identity inside EAP (RFC 3579 §2.1).
NAME_BOUND = (A.EAP_MESSAGE, A.MS_CHAP2_RESPONSE)
_DOWNSTREAM = type_set(A.MESSAGE_AUTHENTICATOR, A.PROXY_STATE)
# A reply with hidden values: Tunnel-Password and every Vendor-Specific are re-encoded.
_DOWNSTREAM_REHIDDEN = type_set(A.MESSAGE_AUTHENTICATOR, A.PROXY_STATE, TUNNEL_PASSWORD,
                                VENDOR_SPECIFIC)


def _wire(key, value: bytes) -> bytes:
    if isinstance(key, tuple):
        return vendor_attribute(key[0], key[1], value)
    return attribute(key, value)


def keeps_user_name(attrs) -> bool:
    """Whether this request must reach the ISP with the User-Name as the NAS sent it."""
    return not attrs.keys().isdisjoint(NAME_BOUND)  # one C call: no generator per request


def upstream_attributes(packet: Packet, *, nas_secret: bytes, secret: bytes,
                        authenticator: bytes, user_name: bytes | None,
                        proxy_state: bytes) -> bytes:
    """The NAS's attributes for the ISP's server, with our Proxy-State last.

    They pass as they came (VSAs included, byte for byte), except a rewritten
    User-Name (not for EAP and MS-CHAPv2: ``keeps_user_name``), the User-Password
    hidden again for this leg, and the Proxy-States, which follow in their order.
    RFC 2865 §5: only the order of attributes of the same type matters, and it is kept.
    """
    attrs = packet.attrs
    renamed = user_name is not None and A.USER_NAME in attrs and not keeps_user_name(attrs)
    out = [attributes_without(packet.raw, _UPSTREAM_RENAMED if renamed else _UPSTREAM)]
    if renamed:
        out.append(attribute(A.USER_NAME, user_name))
    for value in attrs.get(A.USER_PASSWORD, ()):
        out.append(attribute(A.USER_PASSWORD, encrypt_user_password(
            decrypt_user_password(value, nas_secret, packet.authenticator), secret,
            authenticator)))
    if A.CHAP_PASSWORD in attrs and A.CHAP_CHALLENGE not in attrs:
        # RFC 2865 §5.40: the challenge was the Request Authenticator; keep it.
        out.append(attribute(A.CHAP_CHALLENGE, packet.authenticator))
    for value in attrs.get(A.PROXY_STATE, ()):
        out.append(attribute(A.PROXY_STATE, value))
    out.append(attribute(A.PROXY_STATE, proxy_state))
    return b"".join(out)


def downstream_attributes(reply: Packet, *, secret: bytes, authenticator: bytes,
                          nas_secret: bytes, nas_authenticator: bytes,
                          salt: Callable[[], bytes]) -> bytes:
    """The ISP's reply attributes re-encoded for the NAS.

    Proxy-State and Message-Authenticator are left out: the reply to the NAS gets
    the NAS's own Proxy-States and a fresh Message-Authenticator. The rest passes as
    it came, unless it carries a hidden value (Tunnel-Password, MS-MPPE keys): then
    Tunnel-Password and the Vendor-Specific attributes are re-encoded, the hidden
    values opened with the ISP's secret and hidden again with the NAS's.
    """
    attrs = reply.attrs
    if attrs.keys().isdisjoint(REHIDDEN):
        return attributes_without(reply.raw, _DOWNSTREAM)
    out = [attributes_without(reply.raw, _DOWNSTREAM_REHIDDEN)]
    for key, values in attrs.items():
        if key != TUNNEL_PASSWORD and key != VENDOR_SPECIFIC and not isinstance(key, tuple):
            continue
        for value in values:
            if key in SALTED:
                tag = b""
                if key == TUNNEL_PASSWORD and value and value[0] < 0x20:
                    tag, value = value[:1], value[1:]  # RFC 2868 §3.5: tag, salt, string
                plain = decrypt_salted(value, secret, authenticator)
                value = tag + encrypt_salted(plain, nas_secret, nas_authenticator, salt())
            elif key == MS_CHAP_MPPE_KEYS:
                value = encrypt_mschap_mppe_keys(
                    decrypt_mschap_mppe_keys(value, secret, authenticator), nas_secret,
                    nas_authenticator)
            out.append(_wire(key, value))
    return b"".join(out)
