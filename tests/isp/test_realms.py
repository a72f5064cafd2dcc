"""Realm strings, matching and the upstream User-Name."""

from __future__ import annotations

import pytest

from vpop.isp.model import Isp
from vpop.isp.realms import (check_rewrite, has_user_group, match_rule, parse_realm, realm_text,
                             rewrite, upstream_name)


@pytest.mark.parametrize("text, kind, pattern", [
    ("@ISP.example", "suffix", "@isp.example"),
    ("isp/", "prefix", "isp/"),
    ("ISP\\", "prefix", "isp\\"),
    (r"~(?P<user>.+)%isp", "regex", r"(?P<user>.+)%isp"),
    ("~a b", "regex", "a b"),  # spaces inside a regex are the regex's business
])
def test_parse(text, kind, pattern):
    rule = parse_realm(text)
    assert (rule.kind, rule.pattern) == (kind, pattern)
    assert realm_text(rule) == (text.lower() if kind != "regex" else text)


@pytest.mark.parametrize("text, words", [
    ("", "must not be empty"),
    (" @isp", "spaces at either end"),
    ("@", "needs a realm after '@'"),
    ("/", "needs a realm before"),
    ("~", "needs a regular expression"),
    ("~(unclosed", "not a valid regular expression"),
    ("isp", "write '@realm' for a suffix"),
    ("@is p", "spaces or control characters"),
    ("@" + "x" * 253, "longer than 253"),
])
def test_parse_errors(text, words):
    with pytest.raises(ValueError, match=words):
        parse_realm(text)


@pytest.mark.parametrize("realm, name, user", [
    ("@isp.example", "joe@isp.example", "joe"),
    ("@isp.example", "joe@ISP.EXAMPLE", "joe"),
    ("@isp.example", "@isp.example", None),  # nothing before the realm
    ("@isp.example", "joe@other.example", None),
    ("@isp.example", "joe@sub.isp.example", None),
    ("isp/", "ISP/joe", "joe"),
    ("isp/", "joe", None),
    (r"~(?P<user>[^%]+)%isp", "joe%isp", "joe"),
    (r"~(?P<user>[^%]+)%isp", "joe%isp2", None),  # the whole name must match
    (r"~.*%isp", "joe%isp", "joe%isp"),  # without a user group: the name itself
])
def test_match(realm, name, user):
    assert match_rule(parse_realm(realm), name) == user


def test_user_group():
    assert has_user_group(parse_realm(r"~(?P<user>.+)@x"))
    assert not has_user_group(parse_realm(r"~(.+)@x"))


@pytest.mark.parametrize("template, words", [
    ("{user}@x", None), ("{name}", None), ("{{literal}}-{user}", None), ("plain", None),
    ("{user", "unmatched brace"), ("user}", "unmatched brace"),
    ("{realm}", "unknown field {realm}"), ("{user.__class__}", "unknown field"),
    ("{user!r}", "unknown field"), ("{}", "unknown field {}"),
])
def test_check_rewrite(template, words):
    if words is None:
        check_rewrite(template)
    else:
        with pytest.raises(ValueError, match=words):
            check_rewrite(template)


def test_rewrite_and_upstream_name():
    assert rewrite("{{{user}}}@{name}", user="joe", name="joe@a") == "{joe}@joe@a"
    isp = Isp(name="a")
    assert upstream_name(isp, "joe@a", "joe") == "joe"
    assert upstream_name(Isp(name="a", strip_realm=False), "joe@a", "joe") == "joe@a"
    assert upstream_name(Isp(name="a", rewrite="{user}@b"), "joe@a", "joe") == "joe@b"
