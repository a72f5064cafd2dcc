"""Authorize: find the subscriber by line, caller ID or name, and pick the method."""

from __future__ import annotations

from vpop.aaa.caller_id import normalise_caller_id
from vpop.aaa.request import AccessContext
from vpop.aaa.subscribers import SubscriberDirectory
from vpop.config import IdentificationSettings
from vpop.pipeline.core import Rcode
from vpop.radius import attributes as A

LINE_ATTRIBUTES = (("circuit_id", A.AGENT_CIRCUIT_ID), ("remote_id", A.AGENT_REMOTE_ID),
                   ("nas_port_id", A.NAS_PORT_ID))


def read_identity(ctx: AccessContext, deps) -> Rcode:
    """Pull the names the later stages need out of the packet, once."""
    attrs = ctx.packet.attrs
    name = attrs.get(A.USER_NAME)
    if name:
        ctx.username = name[0].decode("utf-8", "replace")
    caller = attrs.get(A.CALLING_STATION_ID)
    if caller:
        ctx.caller_id = caller[0].decode("utf-8", "replace")
    return Rcode.NOOP


def identify(ctx: AccessContext, deps) -> Rcode:
    settings: IdentificationSettings = deps.settings.identification
    directory: SubscriberDirectory = deps.directory
    attrs = ctx.packet.attrs
    for way in settings.order:
        account = None
        if way == "line":
            for kind, key in LINE_ATTRIBUTES:
                values = attrs.get(key)
                if values:
                    account = directory.by_line(kind, values[0].decode("utf-8", "replace"))
                    if account is not None:
                        break
        elif way == "caller_id" and ctx.caller_id:
            number = caller_number(ctx.caller_id, settings)
            account = directory.by_caller_id(number) if number else None
        elif way == "user_name" and ctx.username:
            account = directory.by_name(ctx.username)
            delimiter = settings.realm_delimiter
            if account is None and settings.strip_realm and delimiter in ctx.username:
                account = directory.by_name(ctx.username.rsplit(delimiter, 1)[0])
        if account is not None:
            ctx.account = account
            ctx.identified_by = way
            return Rcode.OK
    # Not necessarily an error: an ISP's own users are known only upstream (route decides).
    return Rcode.NOTFOUND


def caller_number(raw: str, settings: IdentificationSettings) -> str:
    try:
        return normalise_caller_id(raw, country_code=settings.country_code,
                                   national_prefix=settings.national_prefix,
                                   international_prefix=settings.international_prefix)
    except ValueError:
        return ""


def check_account(ctx: AccessContext, deps) -> Rcode:
    account = ctx.account
    if account is None:
        return ctx.reject("unknown subscriber", "Authentication failed")
    if not account.enabled:
        return ctx.reject("account disabled", "Account disabled")
    if account.expires_at is not None and account.expires_at.timestamp() <= ctx.now:
        return ctx.reject("account expired", "Account expired")
    return Rcode.OK


def choose_method(ctx: AccessContext, deps) -> Rcode:
    """The method follows from the credentials the NAS sent (RFC 2865, 2548)."""
    attrs = ctx.packet.attrs
    if A.USER_PASSWORD in attrs:
        method = "pap"
    elif A.CHAP_PASSWORD in attrs:
        method = "chap"
    elif A.MS_CHAP_CHALLENGE in attrs and A.MS_CHAP2_RESPONSE in attrs:
        method = "mschapv2"
    elif A.MS_CHAP_CHALLENGE in attrs and A.MS_CHAP_RESPONSE in attrs:
        method = "mschap"
    elif A.EAP_MESSAGE in attrs:
        return ctx.reject("EAP is not served locally", "Authentication failed")
    else:
        method = ""
    account = ctx.account
    if ctx.identified_by == "caller_id" and account.profile.caller_id_login:
        # The caller ID is the credential: whatever password came with it is not checked.
        ctx.method = "caller_id"
        return Rcode.OK
    if not method:
        return ctx.reject("no credentials in request", "Authentication failed")
    if method not in account.methods:
        return ctx.reject(f"method {method} not allowed", "Authentication failed")
    ctx.method = method
    return Rcode.OK

