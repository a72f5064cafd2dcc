"""Realms: how a User-Name names an ISP, and the name the ISP is sent.

Written in the import file as one string each:

- ``"@isp.example"``: a suffix, ``user@isp.example``
- ``"isp/"`` or ``"ISP\\"``: a prefix, ``isp/user``
- ``"~regex"``: a regular expression the whole User-Name must match; a named group
  ``user`` marks the user part, which stripping and rewriting need.

Suffixes and prefixes compare without regard to case (RFC 7542 §2.2: realms are
DNS names); a regex is taken as written (add ``(?i)`` to ignore case).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vpop.isp.model import Isp, RealmRule

SUFFIX, PREFIX, REGEX = "suffix", "prefix", "regex"
PREFIX_DELIMITERS = ("/", "\\")
MAX_LENGTH = 253
# "{user}" and "{name}" in a rewrite; "{{" and "}}" stand for braces.
_REWRITE_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
REWRITE_FIELDS = ("user", "name")


def parse_realm(text: str) -> RealmRule:
    """The rule a realm string stands for; ValueError says what is wrong with it."""
    if not text:
        raise ValueError("must not be empty")
    if text != text.strip():
        raise ValueError("has spaces at either end")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"is longer than {MAX_LENGTH} characters")
    if text.startswith("~"):
        pattern = text[1:]
        if not pattern:
            raise ValueError("needs a regular expression after '~'")
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"is not a valid regular expression: {exc}") from None
        return RealmRule(kind=REGEX, pattern=pattern, compiled=compiled)
    if any(c.isspace() or ord(c) < 32 for c in text):
        raise ValueError("must not contain spaces or control characters")
    if text.startswith("@"):
        if len(text) == 1:
            raise ValueError("needs a realm after '@'")
        return RealmRule(kind=SUFFIX, pattern=text.lower())
    if text.endswith(PREFIX_DELIMITERS):
        if len(text) == 1:
            raise ValueError("needs a realm before the delimiter")
        return RealmRule(kind=PREFIX, pattern=text.lower())
    raise ValueError("write '@realm' for a suffix, 'realm/' for a prefix or '~regex'")


def realm_text(rule: RealmRule) -> str:
    """The rule as written in the import file (and shown in reasons)."""
    return "~" + rule.pattern if rule.kind == REGEX else rule.pattern


def has_user_group(rule: RealmRule) -> bool:
    compiled = rule.compiled or re.compile(rule.pattern)
    return "user" in compiled.groupindex


# Not frozen: made per request, and a frozen dataclass's __init__ pays a call per field.
@dataclass(slots=True, kw_only=True)
class RealmMatch:
    isp: Isp
    rule: RealmRule
    user: str  # the name without the realm; for a regex its 'user' group (else the name)


def match_rule(rule: RealmRule, user_name: str) -> str | None:
    """The user part if ``user_name`` carries this realm, else None."""
    if rule.kind == SUFFIX:
        if len(user_name) > len(rule.pattern) and user_name.lower().endswith(rule.pattern):
            return user_name[:-len(rule.pattern)]
        return None
    if rule.kind == PREFIX:
        if len(user_name) > len(rule.pattern) and user_name.lower().startswith(rule.pattern):
            return user_name[len(rule.pattern):]
        return None
    found = (rule.compiled or re.compile(rule.pattern)).fullmatch(user_name)
    if found is None:
        return None
    return found.group("user") if "user" in found.re.groupindex else user_name


def find_realm(user_name: str, isps: tuple[Isp, ...] | list[Isp]) -> RealmMatch | None:
    """The most specific realm the name carries: the longest suffix or prefix, then the
    regexes in ISP order. Realms are unique, so the longest literal is unambiguous."""
    best: RealmMatch | None = None
    for isp in isps:
        for rule in isp.realms:
            if rule.kind == REGEX or (best is not None and best.rule.kind != REGEX
                                      and len(rule.pattern) <= len(best.rule.pattern)):
                continue
            user = match_rule(rule, user_name)
            if user is not None:
                best = RealmMatch(isp=isp, rule=rule, user=user)
    if best is not None:
        return best
    for isp in isps:
        for rule in isp.realms:
            if rule.kind == REGEX:
                user = match_rule(rule, user_name)
                if user is not None:
                    return RealmMatch(isp=isp, rule=rule, user=user)
    return None


def check_rewrite(text: str) -> None:
    """ValueError unless ``text`` uses only {user}, {name} and {{ }} escapes."""
    for token in _REWRITE_TOKEN.finditer(text):
        if token.group(0) in ("{{", "}}"):
            continue
        field = token.group(1)
        if field is None:
            raise ValueError("has an unmatched brace: write {{ or }} for a literal one")
        if field not in REWRITE_FIELDS:
            raise ValueError(f"unknown field {{{field}}}: use {{user}} (the name without "
                             "the realm) or {name} (the name as received)")


def rewrite(template: str, *, user: str, name: str) -> str:
    values = {"user": user, "name": name}

    def replace(token: re.Match) -> str:
        text = token.group(0)
        if text in ("{{", "}}"):
            return text[0]
        return values.get(token.group(1) or "", text)
    return _REWRITE_TOKEN.sub(replace, template)


def upstream_name(isp: Isp, user_name: str, user: str) -> str:
    """What the ISP is sent: its rewrite of the user part, the bare user part, or the
    name as received (strip_realm off)."""
    if isp.rewrite:
        return rewrite(isp.rewrite, user=user, name=user_name)
    return user if isp.strip_realm else user_name
