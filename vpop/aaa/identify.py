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


def walk(ctx: AccessContext, settings: IdentificationSettings, directory) -> tuple:
    """Ask `directory` in the configured order until a lookup finds a subscriber:
    (account, way), or (None, "") when none does. The one home of the order: an
    in-memory directory is asked directly (no list, no result object per request),
    a remote one through `lookups`' recorder."""
    attrs = ctx.packet.attrs
    for way in settings.order:
        if way == "line":
            for kind, key in LINE_ATTRIBUTES:
                values = attrs.get(key)
                if values:
                    account = directory.by_line(kind, values[0].decode("utf-8", "replace"))
                    if account is not None:
                        return account, way
        elif way == "caller_id" and ctx.caller_id:
            number = caller_number(ctx.caller_id, settings)
            if number:
                account = directory.by_caller_id(number)
                if account is not None:
                    return account, way
        elif way == "user_name" and ctx.username:
            account = directory.by_name(ctx.username)
            if account is not None:
                return account, way
            delimiter = settings.realm_delimiter
            if settings.strip_realm and delimiter in ctx.username:
                account = directory.by_name(ctx.username.rsplit(delimiter, 1)[0])
                if account is not None:
                    return account, way
    return None, ""


class _Recorder:
    """A directory that finds nobody and notes what it was asked, in order."""
    __slots__ = ("wanted",)

    def __init__(self) -> None:
        self.wanted: list[Lookup] = []

    def by_line(self, kind: str, value: str) -> None:
        self.wanted.append(("line", kind, value))

    def by_caller_id(self, value: str) -> None:
        self.wanted.append(("caller_id", "", value))

    def by_name(self, value: str) -> None:
        self.wanted.append(("user_name", "", value))


def lookups(ctx: AccessContext, settings: IdentificationSettings) -> list[Lookup]:
    """The directory lookups for this request, in the configured order (what a remote
    directory is asked, at once from its cache or off the event loop)."""
    recorder = _Recorder()
    walk(ctx, settings, recorder)
    return recorder.wanted


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
    directory: SubscriberDirectory = deps.directory
    # In memory, asked directly: the common case. (Resumed after a remote lookup, the
    # result is taken even if a reload has since swapped in an in-memory directory.)
    if not directory.remote and ctx.deferred_result is None:
        account, way = walk(ctx, deps.settings.identification, directory)
        if account is None:
            return Rcode.NOTFOUND  # an ISP's own users are known only upstream
        ctx.account = account
        ctx.identified_by = way
        return Rcode.OK
    found = ctx.deferred_result
    if type(found) is Identified:  # resumed with what the directory found
        ctx.deferred_result = None  # a later stage may defer too
    else:
        wanted = lookups(ctx, deps.settings.identification)
        found = directory.at_once(wanted)  # what it knows at once, else off the loop
        if found is None:
            ctx.deferred = functools.partial(directory.lookup, wanted)
            return Rcode.DEFER
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
    if account.enabled and account.expires_at is None:  # the common case, without a call
        return Rcode.OK
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

