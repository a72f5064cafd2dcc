"""Packet rewriting for the proxy's two legs (RFC 2865 §2.3, RFC 5080 §2.1).

Hidden attributes are tied to a shared secret and a Request Authenticator, so they
are recovered and hidden again on each leg: User-Password toward the ISP; salted
keys (MS-MPPE-*, Tunnel-Password) and MS-CHAP-MPPE-Keys back toward the NAS.
CHAP, MS-CHAP and EAP pass unchanged; a CHAP challenge that was carried in the
NAS's authenticator is made explicit, since the upstream request has its own.
"""

from __future__ import annotations

from typing import Callable

from vpop.radius import attributes as A
from vpop.radius.codec import Packet, attribute, vendor_attribute
from vpop.radius.crypto import (decrypt_mschap_mppe_keys, decrypt_salted,
                                decrypt_user_password, encrypt_mschap_mppe_keys,
                                encrypt_salted, encrypt_user_password)

TUNNEL_PASSWORD = 69
MS_CHAP_MPPE_KEYS = (A.MICROSOFT, 12)
SALTED = frozenset({TUNNEL_PASSWORD, (A.MICROSOFT, 16), (A.MICROSOFT, 17)})
SKIP_UPSTREAM = frozenset({A.MESSAGE_AUTHENTICATOR})
SKIP_DOWNSTREAM = frozenset({A.MESSAGE_AUTHENTICATOR, A.PROXY_STATE})


def _wire(key, value: bytes) -> bytes:
    if isinstance(key, tuple):
        return vendor_attribute(key[0], key[1], value)
    return attribute(key, value)


def upstream_attributes(packet: Packet, *, nas_secret: bytes, secret: bytes,
                        authenticator: bytes, user_name: bytes | None,
                        proxy_state: bytes) -> bytes:
    """The NAS's attributes re-encoded for the ISP's server, with our Proxy-State last."""
    out = []
    for key, values in packet.attrs.items():
        if key in SKIP_UPSTREAM or key == A.PROXY_STATE:  # Proxy-State: re-added below
            continue
        if key == A.USER_NAME and user_name is not None:
            values = (user_name,)
        elif key == A.USER_PASSWORD:
            values = [encrypt_user_password(
                decrypt_user_password(v, nas_secret, packet.authenticator), secret,
                authenticator) for v in values]
        for value in values:  # a plain loop: a generator per attribute costs more here
            out.append(_wire(key, value))
    if A.CHAP_PASSWORD in packet.attrs and A.CHAP_CHALLENGE not in packet.attrs:
        # RFC 2865 §5.40: the challenge was the Request Authenticator; keep it.
        out.append(attribute(A.CHAP_CHALLENGE, packet.authenticator))
    out.extend(attribute(A.PROXY_STATE, v) for v in packet.attrs.get(A.PROXY_STATE, ()))
    out.append(attribute(A.PROXY_STATE, proxy_state))
    return b"".join(out)


def downstream_attributes(reply: Packet, *, secret: bytes, authenticator: bytes,
                          nas_secret: bytes, nas_authenticator: bytes,
                          salt: Callable[[], bytes]) -> bytes:
    """The ISP's reply attributes re-encoded for the NAS.

    Proxy-State and Message-Authenticator are left out: the reply to the NAS gets
    the NAS's own Proxy-States and a fresh Message-Authenticator.
    """
    out = []
    for key, values in reply.attrs.items():
        if key in SKIP_DOWNSTREAM:
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
