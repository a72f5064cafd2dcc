"""What makes an ISP unusable, found before it is used: ``vpop import`` checks each
[[isp]] with these, and ``vpop check-config`` the stored ones."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import jinja2

from vpop.aaa.subscribers import Account, ServiceProfile
from vpop.errors import ConfigError
from vpop.isp.model import BALANCES, MODES, STATUSES, Isp
from vpop.isp.realms import REGEX, check_rewrite, has_user_group
from vpop.isp.tunnel import MAX_TAG
from vpop.radius.clients import NAS_TYPES

# A subscriber with every profile value set, so templates meet each branch they have.
SAMPLE_ACCOUNT = Account(
    username="check", methods=frozenset({"pap"}), profile=ServiceProfile(
        name="check", rate_down_kbps=10000, rate_up_kbps=2000, address_pool="pool",
        session_timeout=3600, idle_timeout=600, class_="check"))


def isp_problems(isp: Isp) -> Iterator[tuple[str, str]]:
    """(field, reason) for each thing that keeps the ISP from working as configured."""
    for field, value, allowed in (("mode", isp.mode, MODES), ("balance", isp.balance, BALANCES),
                                  ("status", isp.status, STATUSES)):
        if value not in allowed:
            yield field, f"unknown {field} {value!r}: use {', '.join(allowed)}"
    if isp.mode == "proxy" and not isp.servers:
        yield "servers", "is required in proxy mode: give at least one RADIUS server"
    if isp.mode == "tunnel" and not isp.tunnels:
        yield "tunnels", "is required in tunnel mode: give at least one LNS"
    if len(isp.tunnels) > MAX_TAG:
        yield "tunnels", f"has {len(isp.tunnels)} entries: RFC 2868 tags allow {MAX_TAG}"
    if isp.rewrite:
        try:
            check_rewrite(isp.rewrite)
        except ValueError as exc:
            yield "rewrite", str(exc)
    # The user part is needed to strip the realm, or for a rewrite that uses it.
    needs_user = "{user}" in isp.rewrite if isp.rewrite else isp.strip_realm
    for index, rule in enumerate(isp.realms, 1):
        if rule.kind == REGEX and needs_user and not has_user_group(rule):
            yield (f"realms[{index}]",
                   "has no named group 'user' ((?P<user>...)) to strip the realm or "
                   "rewrite the name with: add one, or set strip_realm = false")
    seen: dict[str, int] = {}
    for index, server in enumerate(isp.servers, 1):
        first = seen.setdefault(server.name, index)
        if first != index:
            yield (f"servers[{index}].name", f"server name {server.name!r} is also "
                   f"servers[{first}]'s: give each server a name")


def template_problem(isp: Isp, replies, nas_types: Sequence[str] = NAS_TYPES) -> str | None:
    """Why the ISP's reply template cannot be used, or None. It is rendered for every
    NAS type, with a local subscriber and without one (users the ISP authenticates)."""
    if not isp.template:
        return None
    for nas_type in nas_types:
        for account in (SAMPLE_ACCOUNT, None):
            try:
                replies.isp_extra(isp, account, nas_type)
            except jinja2.TemplateNotFound:
                return f"no reply template {isp.template!r} (looked in the reply templates)"
            except jinja2.TemplateError as exc:
                return f"template {isp.template}: {exc}"
            except ConfigError as exc:
                return f"template {isp.template}: {exc}"
            except (ValueError, TypeError) as exc:
                who = "a local subscriber" if account else "no local subscriber"
                return f"template {isp.template} for {nas_type} with {who}: {exc}"
    return None


def check_isps(isps: Sequence[Isp], replies, tunnels=None,
               nas_types: Sequence[str] = NAS_TYPES) -> list[ConfigError]:
    """Every problem of stored ISPs, as ``vpop check-config`` reports them: field
    'isp NAME.FIELD'. ``tunnels`` (vpop.isp.tunnel.TunnelTemplates) also renders the
    tunnel templates for the tunnel-mode ISPs."""
    problems = []
    for isp in isps:
        found = list(isp_problems(isp))
        reason = template_problem(isp, replies, nas_types)
        if reason:
            found.append(("template", reason))
        if tunnels is not None and isp.mode == "tunnel" and isp.tunnels:
            for nas_type in nas_types:
                try:
                    tunnels.encoded(isp, nas_type)
                except (ConfigError, ValueError) as exc:
                    found.append(("tunnels", str(exc)))
                    break
        problems.extend(ConfigError(reason, field=f"isp {isp.name}.{field}")
                        for field, reason in found)
    return problems
