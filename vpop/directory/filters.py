"""Search filters from the configured templates, every value escaped (RFC 4515).

A template is an LDAP filter with placeholders: `{user}`, `{name}`, `{realm}` for user
names, `{value}` for a caller ID or a line, `{dn}` for group searches. Each value is
escaped before it is put in, so a User-Name like `*)(uid=*` is looked up as those
characters, never read as filter syntax.
"""

from __future__ import annotations

import functools
import re

PLACEHOLDER = re.compile(r"\{(\w*)\}")
# RFC 4515 §3: these octets are written as a backslash and two hex digits in a value;
# other control characters are escaped too, so that a logged filter stays one line.
_SPECIAL = frozenset(b"*()\\\x00") | frozenset(range(1, 0x20)) | {0x7F}
_ESCAPED = {code: f"\\{code:02x}" for code in _SPECIAL}
# A value with none of those: as it is (a match costs half a translate).
_NOTHING_TO_ESCAPE = re.compile("[^" + re.escape("".join(map(chr, sorted(_SPECIAL)))) + "]*"
                                ).fullmatch


def escape(value: str) -> str:
    """The value as an RFC 4515 assertion value: special octets of its UTF-8 as \\XX."""
    if _NOTHING_TO_ESCAPE(value):
        return value
    return value.translate(_ESCAPED)


def render(template: str, **values: str) -> str:
    """The filter with each placeholder replaced by its value, escaped."""
    pieces = _pieces(template)
    if len(pieces) == 3 and pieces[1] in values:  # one placeholder: the usual template
        return pieces[0] + escape(values[pieces[1]]) + pieces[2]
    out = [pieces[0]]
    for index in range(1, len(pieces), 2):
        name = pieces[index]
        if name not in values:
            raise ValueError(f"unknown placeholder {{{name}}}")
        out.append(escape(values[name]))
        out.append(pieces[index + 1])
    return "".join(out)


def around_value(template: str) -> tuple[str, str] | None:
    """The template's text before and after its one placeholder (a rendered filter is
    before + escaped value + after); None for a template with none or several."""
    pieces = _pieces(template)
    return (pieces[0], pieces[2]) if len(pieces) == 3 else None


@functools.lru_cache(maxsize=256)
def _pieces(template: str) -> list[str]:
    """The template's text and placeholder names, alternately (text first and last)."""
    return PLACEHOLDER.split(template)


def problem(template: str, allowed: tuple[str, ...]) -> str | None:
    """Why the template cannot be a filter (its placeholders filled), or None."""
    names = PLACEHOLDER.findall(template)
    unknown = [name for name in names if name not in allowed]
    if unknown:
        return (f"unknown placeholder {{{unknown[0]}}} (this filter takes "
                + ", ".join(f"{{{name}}}" for name in allowed) + ")")
    if not names:
        return "has no placeholder: it would find the same entry for everyone"
    text = render(template, **dict.fromkeys(allowed, "x"))
    return syntax_problem(text)


def syntax_problem(text: str) -> str | None:
    """A structural check of an RFC 4515 filter: parenthesised, balanced, each item
    with an operator and each of &, | and ! followed by filters."""
    if not (text.startswith("(") and text.endswith(")")):
        return "must be enclosed in parentheses"
    position, depth = 0, 0
    while position < len(text):
        char = text[position]
        if char == "(":
            if depth == 0 and position:
                return "more than one filter: combine them with & or |"
            depth += 1
            following = text[position + 1:position + 2]
            if following in ("&", "|", "!"):
                if text[position + 2:position + 3] != "(":
                    return f"{following} must be followed by a parenthesised filter"
                position += 2
                continue
            end = text.find(")", position)
            if end < 0:
                return "unbalanced parentheses"
            item = text[position + 1:end]
            if "(" in item or not re.match(r"^[A-Za-z0-9][\w;.-]*(=|~=|>=|<=|:=|:[\w.:]*:=)",
                                           item):
                return f"({item}) is not attribute, operator and value"
            depth -= 1
            position = end + 1
            if depth == 0 and position < len(text):
                return "more than one filter: combine them with & or |"
            continue
        if char == ")":
            depth -= 1
            if depth < 0:
                return "unbalanced parentheses"
        elif depth == 0:
            return "text outside the parentheses"
        position += 1
    return None if depth == 0 else "unbalanced parentheses"
