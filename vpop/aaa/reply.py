"""Post-auth: the profile's reply attributes, rendered per NAS type from Jinja2 templates.

A template renders lines of `Attribute-Name = value` (`#` starts a comment), so
"10 Mbit/s" becomes Mikrotik-Rate-Limit on a MikroTik and a Cisco-AVPair on a
Cisco. Rendering depends only on the account and NAS type, so the encoded bytes
are cached: a provisioned subscriber's until the next data generation (which makes a
new renderer), a directory subscriber's while the directory answers with the same
entry (an account that differs is rendered again: its profile, group or address
changed there).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import jinja2

from vpop.aaa.subscribers import Account
from vpop.errors import ConfigError
from vpop.radius.dictionary import Dictionary

SHIPPED = Path(__file__).resolve().parent.parent / "templates" / "reply"
# Rendered replies kept at most; beyond, all are dropped and rendered again as asked.
REPLIES_HELD = 1_000_000


def template_environment(directories: list[str]) -> jinja2.Environment:
    """Templates of `Name = value` lines, searched in ``directories`` in order.

    The ``quote`` filter makes any text one value token (`Name = {{ x|quote }}`).
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directories), undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, autoescape=False, keep_trailing_newline=True)
    env.filters["quote"] = lambda value: shlex.quote(str(value))
    return env


def parse_pairs(text: str, name: str, dictionary: Dictionary) -> list[tuple[str, str]]:
    """`Name = value` lines to pairs; errors name the template and line."""
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        attr, sep, value = line.partition("=")
        if not sep:
            raise ConfigError("expected 'Attribute = value'", file=name, line=number)
        try:
            (value,) = shlex.split(value.strip()) or [""]
        except ValueError as exc:
            raise ConfigError(f"bad value: {exc}", file=name, line=number) from None
        attr = attr.strip()
        if attr not in dictionary.by_name:
            raise ConfigError(f"unknown attribute {attr}", file=name, line=number)
        pairs.append((attr, value))
    return pairs


class ReplyRenderer:
    def __init__(self, dictionary: Dictionary, extra_dir: str = ""):
        search = [extra_dir] if extra_dir else []
        self.env = template_environment(search + [str(SHIPPED)])
        self.dictionary = dictionary
        # (user, NAS type) and ("isp", ISP, user, NAS type) -> (the account rendered, bytes)
        self._cache: dict[tuple, tuple[Account | None, bytes]] = {}
        self.extra_dir = extra_dir  # also where tunnel templates are looked for

    def template_for(self, nas_type: str) -> jinja2.Template:
        try:
            return self.env.get_template(f"{nas_type}.j2")
        except jinja2.TemplateNotFound:
            return self.env.get_template("generic.j2")

    def pairs(self, account: Account, nas_type: str) -> list[tuple[str, str]]:
        """Render the template and parse its `Name = value` lines."""
        name = f"{nas_type}.j2"
        try:
            text = self.template_for(nas_type).render(
                account=account, profile=account.profile, nas_type=nas_type)
        except jinja2.TemplateError as exc:
            raise ConfigError(f"reply template: {exc}", file=name) from None
        return self.parse(text, name)

    def parse(self, text: str, name: str) -> list[tuple[str, str]]:
        return parse_pairs(text, name, self.dictionary)

    def encoded(self, account: Account, nas_type: str) -> bytes:
        key = (account.username, nas_type)
        held = self._cache.get(key)
        # The same object (a provisioned subscriber, a directory's cached lookup), else
        # an equal one: a directory subscriber looked up again, unchanged.
        if held is not None and (held[0] is account or held[0] == account):
            return held[1]
        try:
            data = self.dictionary.encode_pairs(self.pairs(account, nas_type))
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"reply template {nas_type}.j2: {exc}") from None
        self._hold(key, account, data)
        return data

    def _hold(self, key: tuple, account: Account | None, data: bytes) -> None:
        if len(self._cache) >= REPLIES_HELD:  # a directory's subscribers are not all known
            self._cache.clear()
        self._cache[key] = (account, data)

    def isp_extra(self, isp, account: Account | None, nas_type: str) -> bytes:
        """Attributes an ISP's own template adds to sessions routed to it (pool, VRF...)."""
        if isp is None or not isp.template:
            return b""
        key = ("isp", isp.name, account.username if account else "", nas_type)
        held = self._cache.get(key)
        if held is not None and (held[0] is account or held[0] == account):
            return held[1]
        template = self.env.get_template(isp.template)
        try:
            text = template.render(isp=isp, account=account, nas_type=nas_type,
                                   profile=account.profile if account else None)
        except jinja2.TemplateError as exc:
            raise ConfigError(f"ISP template: {exc}", file=isp.template) from None
        data = self.dictionary.encode_pairs(self.parse(text, isp.template))
        self._hold(key, account, data)
        return data
