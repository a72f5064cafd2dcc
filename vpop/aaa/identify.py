"""Authorize: find the subscriber by line, caller ID or name, and pick the method."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from vpop.aaa.caller_id import normalise_caller_id
from vpop.aaa.request import AccessContext
from vpop.aaa.subscribers import Account, SubscriberDirectory
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


# A lookup: (way, kind, value). way: line | caller_id | user_name, what identified the
# subscriber if it answers; kind: by_line's kind, or "" for caller IDs and names. Plain
# tuples: made for every request, where a frozen dataclass pays a call per field.
Lookup = tuple[str, str, str]


# Not frozen: made per request, and a frozen dataclass's __init__ pays a call per field.
@dataclass(slots=True)
class Identified:
    """What the lookups found (account None: nobody), as a deferred result too."""
    account: Account | None
    way: str = ""


NOBODY = Identified(None)  # never changed: stages only read it
# A remote directory's Identified(None, way) when it could not say: the way starts with
# one of these and goes on with the reason.
DIRECTORY_UNAVAILABLE_WAY = "unavailable: "
DIRECTORY_UNUSABLE_WAY = "unusable: "
DIRECTORY_UNAVAILABLE = "Subscriber directory unavailable, please try again later"


def lookups(ctx: AccessContext, settings: IdentificationSettings) -> list[Lookup]:
    """The directory lookups for this request, in the configured order."""
    attrs = ctx.packet.attrs
    found = []
    for way in settings.order:
        if way == "line":
            for kind, key in LINE_ATTRIBUTES:
                values = attrs.get(key)
                if values:
                    found.append(("line", kind, values[0].decode("utf-8", "replace")))
        elif way == "caller_id" and ctx.caller_id:
            number = caller_number(ctx.caller_id, settings)
            if number:
                found.append(("caller_id", "", number))
        elif way == "user_name" and ctx.username:
            found.append(("user_name", "", ctx.username))
            delimiter = settings.realm_delimiter
            if settings.strip_realm and delimiter in ctx.username:
                found.append(("user_name", "", ctx.username.rsplit(delimiter, 1)[0]))
    return found


def first_found(directory: SubscriberDirectory, wanted: list[Lookup]) -> Identified:
    """Ask the directory, in order, until one lookup finds a subscriber."""
    for way, kind, value in wanted:
        if way == "line":
            account = directory.by_line(kind, value)
        elif way == "caller_id":
            account = directory.by_caller_id(value)
        else:
            account = directory.by_name(value)
        if account is not None:
            return Identified(account, way)
    return NOBODY


def identify(ctx: AccessContext, deps) -> Rcode:
    """Find the subscriber by line, caller ID or name, in the configured order. A remote
    directory is asked off the event loop (DEFER), and the stage resumes with what it
    found."""
    found = ctx.deferred_result
    if type(found) is Identified:
        ctx.deferred_result = None  # a later stage may defer too
    else:
        directory: SubscriberDirectory = deps.directory
        wanted = lookups(ctx, deps.settings.identification)
        if directory.remote:  # what it knows at once, else asked off the event loop
            found = directory.at_once(wanted)
            if found is None:
                ctx.deferred = functools.partial(directory.lookup, wanted)
                return Rcode.DEFER
        else:
            found = first_found(directory, wanted)
    if found.account is None:
        # Not necessarily an error: an ISP's own users are known only upstream (route decides).
        if found.way:  # why a directory could not say (unavailable: ..., unusable: ...)
            ctx.identified_by = found.way
        return Rcode.NOTFOUND
    ctx.account = found.account
    ctx.identified_by = found.way
    return Rcode.OK


def caller_number(raw: str, settings: IdentificationSettings) -> str:
    try:
        return normalise_caller_id(raw, country_code=settings.country_code,
                                   national_prefix=settings.national_prefix,
                                   international_prefix=settings.international_prefix)
    except ValueError:
        return ""


def unknown_subscriber(ctx: AccessContext) -> Rcode:
    """Reject a request whose subscriber was not found: with the Reply-Message saying
    so when a directory could not be asked (docs/ldap.md, outage policy)."""
    why = ctx.identified_by
    if why.startswith(DIRECTORY_UNAVAILABLE_WAY):
        return ctx.reject(why, DIRECTORY_UNAVAILABLE)
    if why.startswith(DIRECTORY_UNUSABLE_WAY):
        return ctx.reject(why, "Authentication failed")
    return ctx.reject("unknown subscriber", "Authentication failed")


def check_account(ctx: AccessContext, deps) -> Rcode:
    account = ctx.account
    if account is None:
        return unknown_subscriber(ctx)
    why = refusal(account, ctx.now)
    return ctx.reject(why, why.capitalize()) if why else Rcode.OK


def refusal(account, now: float) -> str:
    """Why the account may not log in at `now` (epoch seconds), "" if it may: RADIUS
    and the portal's subscriber login ask the same."""
    if not account.enabled:
        return "account disabled"
    if account.expires_at is not None and account.expires_at.timestamp() <= now:
        return "account expired"
    return ""


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
        method = "eap-md5"  # the one EAP method served locally (aaa/eap.py)
    else:
        method = ""
    account = ctx.account
    if (ctx.identified_by == "caller_id" and account.profile.caller_id_login
            and method != "eap-md5"):
        # The caller ID is the credential: whatever password came with it is not checked.
        # (Not for EAP: the peer waits for an EAP-Success only a conversation gives.)
        ctx.method = "caller_id"
        return Rcode.OK
    if not method:
        return ctx.reject("no credentials in request", "Authentication failed")
    if method not in account.methods:
        return ctx.reject(f"method {method} not allowed", "Authentication failed")
    ctx.method = method
    return Rcode.OK

