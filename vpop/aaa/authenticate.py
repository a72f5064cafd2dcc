"""Authenticate: check the credentials with the method authorize picked."""

from __future__ import annotations

import functools
import hashlib
import hmac

from vpop.aaa import credentials as cred
from vpop.aaa.eap import authenticate_eap_md5
from vpop.aaa.identify import DIRECTORY_UNAVAILABLE
from vpop.aaa.request import AccessContext
from vpop.aaa.subscribers import DirectoryAccount
from vpop.errors import MalformedPacket
from vpop.pipeline.core import Rcode
from vpop.radius import attributes as A
from vpop.radius.codec import vendor_attribute
from vpop.radius.crypto import (decrypt_user_password, encrypt_mschap_mppe_keys, encrypt_salted,
                               random_salt)

FAILED = "Authentication failed"


def authenticate(ctx: AccessContext, deps) -> Rcode:
    method = ctx.method
    if method == "caller_id":
        return Rcode.OK
    if method == "pap":
        return _pap(ctx, deps)
    if method == "chap":
        return _chap(ctx)
    if method == "mschap":
        return _mschap1(ctx, deps)
    if method == "mschapv2":
        return _mschap2(ctx, deps)
    if method == "eap-md5":
        return authenticate_eap_md5(ctx, deps)
    return ctx.reject(f"unknown method {method}", FAILED)


def _pap(ctx: AccessContext, deps) -> Rcode:
    account = ctx.account
    result = ctx.deferred_result
    if result is not None:  # resumed after the slow hash check or the directory's bind
        if type(result) is str:  # the directory could not tell
            return ctx.reject(result, DIRECTORY_UNAVAILABLE)
        return Rcode.OK if result else ctx.reject("wrong password", FAILED)
    try:
        password = decrypt_user_password(ctx.packet.attrs[A.USER_PASSWORD][0],
                                         ctx.client.secret, ctx.packet.authenticator)
    except MalformedPacket:
        return ctx.reject("User-Password has a bad length", FAILED)
    if type(account) is DirectoryAccount and account.check_password is not None:
        # pap = "bind": the directory checks, by binding as the subscriber
        ctx.deferred = functools.partial(account.check_password, password)
        return Rcode.DEFER
    if account.cleartext is not None:  # the common case, without a call
        if hmac.compare_digest(password, account.cleartext):
            return Rcode.OK
        return ctx.reject("wrong password", FAILED)
    ok = _quick_pap(account, password)
    if ok is None and account.password_hash is not None:
        cached = deps.verified.get(account.password_hash)
        if cached is not None and hmac.compare_digest(cached, _fingerprint(account, password)):
            return Rcode.OK
        # A slow hash by design: the shell runs it off the event loop.
        ctx.password = password
        ctx.deferred = functools.partial(_verify_slow, deps.verified, account, password)
        return Rcode.DEFER
    if ok is None:
        return ctx.reject("no PAP credential stored", FAILED)
    return Rcode.OK if ok else ctx.reject("wrong password", FAILED)


def _quick_pap(account, password: bytes) -> bool | None:
    """PAP against the cleartext or the NT hash; None when neither is stored."""
    if account.cleartext is not None:
        return hmac.compare_digest(password, account.cleartext)
    if account.nt_hash is not None:
        try:
            return hmac.compare_digest(cred.nt_hash(password.decode("utf-8")), account.nt_hash)
        except UnicodeDecodeError:
            return False
    return None


def pap_password_ok(account, password: bytes) -> bool:
    """The whole PAP check of one password, the slow hash included, run where it is
    called: the portal's subscriber login checks passwords as RADIUS PAP does."""
    ok = _quick_pap(account, password)
    if ok is not None:
        return ok
    if account.password_hash is None:
        return False
    try:
        return cred.verify_password_hash(password, account.password_hash)
    except ValueError:
        return False


def _fingerprint(account, password: bytes) -> bytes:
    # Keyed by the stored hash (BLAKE2b with the key first, which no length extension
    # reaches): a fifth of an HMAC-SHA256's cost, checked on each login it remembers.
    return hashlib.blake2b(account.password_hash.encode() + b"\0" + password,
                           digest_size=32).digest()


def _verify_slow(verified: dict, account, password: bytes) -> bool:
    """Runs in a worker thread. A success is remembered as a keyed fingerprint only,
    so repeated logins do not cost a PBKDF2 run each and no password is kept."""
    ok = pap_password_ok(account, password)
    if ok:
        if len(verified) > 100_000:
            verified.clear()
        verified[account.password_hash] = _fingerprint(account, password)
    return ok


def _chap(ctx: AccessContext) -> Rcode:
    account = ctx.account
    if account.cleartext is None:
        return ctx.reject("no CHAP credential stored", FAILED)
    packet = ctx.packet
    ok = cred.chap_password_check(packet.attrs[A.CHAP_PASSWORD][0],
                                  packet.first(A.CHAP_CHALLENGE), packet.authenticator,
                                  account.cleartext)
    return Rcode.OK if ok else ctx.reject("wrong password", FAILED)


def _mschap1(ctx: AccessContext, deps) -> Rcode:
    account = ctx.account
    packet = ctx.packet
    response = packet.first(A.MS_CHAP_RESPONSE)
    if account.nt_hash is None:
        return ctx.reject("no NT hash stored", FAILED)
    if not cred.mschap1_check(packet.first(A.MS_CHAP_CHALLENGE), response, account.nt_hash):
        ident = response[0] if response else 0
        ctx.reply_attrs.append(_ms_error(ident, "E=691 R=0"))
        return ctx.reject("wrong password", FAILED)
    # RFC 2548 §2.4.1: MS-CHAP-MPPE-Keys, hidden like User-Password.
    keys = cred.mschap1_mppe_keys(account.nt_hash)
    hidden = encrypt_mschap_mppe_keys(keys, ctx.client.secret, packet.authenticator)
    ctx.reply_attrs.append(vendor_attribute(A.MICROSOFT, 12, hidden))
    ctx.reply_attrs.extend(_mppe_policy())
    return Rcode.OK


def _mschap2(ctx: AccessContext, deps) -> Rcode:
    account = ctx.account
    packet = ctx.packet
    response = packet.first(A.MS_CHAP2_RESPONSE)
    if account.nt_hash is None:
        return ctx.reject("no NT hash stored", FAILED)
    success = cred.mschap2_check(packet.first(A.MS_CHAP_CHALLENGE), response,
                                 ctx.username.encode(), account.nt_hash)
    if success is None:
        ident = response[0] if response else 0
        # RFC 2759 §6: E=691 authentication failure, no retry.
        challenge = packet.first(A.MS_CHAP_CHALLENGE) or b""
        ctx.reply_attrs.append(_ms_error(ident, f"E=691 R=0 C={challenge.hex().upper()} V=3"))
        return ctx.reject("wrong password", FAILED)
    ctx.reply_attrs.append(vendor_attribute(A.MICROSOFT, 26,
                                            cred.ms_chap2_success_value(response[0], success)))
    send_key, recv_key = cred.mppe_session_keys(account.nt_hash, response[26:50])
    secret, auth = ctx.client.secret, packet.authenticator
    # RFC 2548 §2.4.2-3: salts unique per attribute, high bit set.
    salt = random_salt(deps.rng)
    other = salt[:1] + bytes((salt[1] ^ 0x01,))
    for kind, key, s in ((16, send_key, salt), (17, recv_key, other)):
        hidden = encrypt_salted(key, secret, auth, s)
        ctx.reply_attrs.append(vendor_attribute(A.MICROSOFT, kind, hidden))
    ctx.reply_attrs.extend(_mppe_policy())
    return Rcode.OK


def _ms_error(ident: int, text: str) -> bytes:
    return vendor_attribute(A.MICROSOFT, 2, bytes((ident,)) + text.encode())


def _mppe_policy() -> list[bytes]:
    # MS-MPPE-Encryption-Policy 1 (allowed), Types 6 (40- and 128-bit) — RFC 2548 §2.4.4-5
    return [vendor_attribute(A.MICROSOFT, 7, (1).to_bytes(4, "big")),
            vendor_attribute(A.MICROSOFT, 8, (6).to_bytes(4, "big"))]
