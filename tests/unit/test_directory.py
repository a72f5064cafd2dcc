"""The pure parts of the LDAP directories: filters (RFC 4515 escaping), password
schemes, the entry mapping, the cache policy, the routing of lookups, the config."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from vpop import config
from vpop.aaa import schemes
from vpop.aaa.identify import NOBODY
from vpop.aaa.subscribers import ServiceProfile, SubscriberSnapshot
from vpop.config import DirectoryGroup, DirectorySettings
from vpop.directory.cache import CachePolicy, LookupCache
from vpop.directory.filters import escape, problem, render
from vpop.directory.mapping import Entry, UnusableEntry, account_from_entry, parse_expiry
from vpop.directory.routing import DirectorySet, DirectoryUnavailable
from vpop.errors import ConfigError
from vpop.isp.model import Isp, RealmRule

PROFILES = {"basic": ServiceProfile(name="basic", rate_down_kbps=1000),
            "gold": ServiceProfile(name="gold")}


@pytest.mark.parametrize("value, escaped", [
    ("alice", "alice"), ("*", r"\2a"), ("*)(uid=*", r"\2a\29\28uid=\2a"),
    ("a\\b", r"a\5cb"), ("nul\0", r"nul\00"), ("tab\t", r"tab\09"), ("jürgen", "jürgen"),
])
def test_values_are_escaped_as_rfc_4515_says(value, escaped):
    assert escape(value) == escaped
    assert render("(uid={user})", user=value) == f"(uid={escaped})"


def test_every_special_octet_is_escaped_wherever_it_stands():
    # the plain value goes through as it is; any of RFC 4515's octets, or another
    # control character, anywhere in it is escaped, and nothing else is
    for code in range(0x100):
        char = chr(code)
        special = char in "*()\\\0" or code < 0x20 or code == 0x7F
        wanted = f"\\{code:02x}" if special else char
        for before, after in (("", ""), ("user", ""), ("", "@realm"), ("us", "er")):
            assert escape(before + char + after) == before + wanted + after, hex(code)
    assert (render("(|(uid={user})(mail={name}))", user="a*", name="b(")
            == r"(|(uid=a\2a)(mail=b\28))")


@pytest.mark.parametrize("template, why", [
    ("(uid={user})", None),
    ("(&(objectClass=inetOrgPerson)(|(uid={user})(mail={name})))", None),
    ("uid={user}", "must be enclosed in parentheses"),
    ("(&(uid={user})", "unbalanced parentheses"),
    ("(uid={who})", "unknown placeholder {who}"),
    ("(objectClass=*)", "has no placeholder"),
    ("(uid={user})(cn=x)", "more than one filter"),
    ("(&uid={user})", "& must be followed by a parenthesised filter"),
])
def test_filter_templates_are_checked(template, why):
    found = problem(template, ("user", "name", "realm"))
    assert (found is None) if why is None else why in found


@pytest.mark.parametrize("scheme", ["SSHA", "SSHA256", "SSHA512", "SHA", "SMD5",
                                    "PBKDF2-SHA256", "PBKDF2-SHA512"])
def test_stored_schemes_verify(scheme):
    stored = schemes.make(scheme, b"secret", salt=b"saltsalt", iterations=100)
    assert schemes.verify(b"secret", stored) and not schemes.verify(b"other", stored)


def test_known_values_of_other_implementations():
    # slappasswd -h {SSHA} -s secret
    assert schemes.verify(b"secret", "{SSHA}bJv4/edROlZQeylfF5D3ZXNCXxRk3YFa")
    # the SHA-512 crypt specification's first test vector
    assert schemes.verify(b"Hello world!", "{CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iK"
                          "wSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1")
    with pytest.raises(ValueError, match="not valid"):
        schemes.verify(b"secret", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ")  # padding cut off
    with pytest.raises(ValueError, match="unknown password scheme"):
        schemes.verify(b"x", "{FOO}abc")


def entry(**attributes) -> Entry:
    return Entry(dn="uid=alice,dc=example", attributes={
        k.lower(): tuple(v.encode() if isinstance(v, str) else v for v in
                         (values if isinstance(values, list) else [values]))
        for k, values in attributes.items()})


SETTINGS = DirectorySettings(
    servers=("ldap://127.0.0.1",), base_dn="dc=example", access_attribute="access",
    expiry_attribute="expires", profile_attribute="profile", default_profile="basic",
    rate_down_attribute="down", framed_ip_attribute="ip",
    group=(DirectoryGroup(group="gold", profile="gold", isp="isp-g"),))


def test_an_entry_maps_to_a_subscriber():
    account = account_from_entry(
        entry(uid="alice", down="5000", ip="10.0.0.1", userPassword="{SSHA}" + "A" * 28,
              sambaNTPassword="00" * 16),
        settings=SETTINGS, profiles=PROFILES)
    assert (account.username, account.profile.name, account.profile.rate_down_kbps,
            account.framed_ip, account.nt_hash) == ("alice", "basic", 5000, "10.0.0.1",
                                                    bytes(16))
    assert account.password_hash.startswith("{SSHA}") and account.cleartext is None
    clear = account_from_entry(entry(userPassword="plain"), settings=SETTINGS,
                               profiles=PROFILES, looked_up="bob")
    assert clear.cleartext == b"plain" and clear.username == "bob"


def test_groups_give_the_profile_and_the_isp_unless_the_entry_names_one():
    groups = ["cn=Gold,ou=groups,dc=example"]
    account = account_from_entry(entry(), settings=SETTINGS, profiles=PROFILES, groups=groups)
    assert (account.profile.name, account.isp) == ("gold", "isp-g")
    named = account_from_entry(entry(profile="basic"), settings=SETTINGS, profiles=PROFILES,
                               groups=groups)
    assert named.profile.name == "basic"
    owned = account_from_entry(entry(), settings=SETTINGS, profiles=PROFILES, groups=groups,
                               isp="hosting")
    assert owned.isp == "hosting"


@pytest.mark.parametrize("value, enabled, expired", [
    ("enabled", True, False), ("TRUE", True, False), ("disabled", False, False),
    ("locked", False, False), ("expired", True, True)])
def test_the_access_attribute(value, enabled, expired):
    account = account_from_entry(entry(access=value), settings=SETTINGS, profiles=PROFILES)
    assert account.enabled is enabled and (account.expires_at is not None) is expired


@pytest.mark.parametrize("attributes, reason", [
    ({"access": "maybe"}, "access is 'maybe'"),
    ({"ip": "10.0.0.300"}, "not an IP address"),
    ({"down": "fast"}, "expected a whole number"),
    ({"sambaNTPassword": "xyz"}, "not 32 hex digits"),
    ({"profile": "platinum"}, "profile 'platinum' does not exist"),
    ({"expires": "tomorrow"}, "expected a generalized time"),
    ({"profile": ["basic", "gold"]}, "profile has 2 values"),
    ({"userPassword": "{FOO}x"}, "unknown password scheme"),
    ({"uid": b"\xff"}, "not UTF-8"),
])
def test_malformed_entries_are_refused_with_the_reason(attributes, reason):
    with pytest.raises(UnusableEntry, match=reason.replace("(", r"\(")):
        account_from_entry(entry(**attributes), settings=SETTINGS, profiles=PROFILES)


def test_no_profile_at_all_is_refused():
    settings = DirectorySettings(servers=("ldap://h",), base_dn="dc=x")
    with pytest.raises(UnusableEntry, match="no profile"):
        account_from_entry(entry(), settings=settings, profiles=PROFILES)


def test_expiry_values():
    utc = dt.timezone.utc
    assert parse_expiry("20270101000000Z") == dt.datetime(2027, 1, 1, tzinfo=utc)
    assert parse_expiry("202701010100+0100") == dt.datetime(2027, 1, 1, tzinfo=utc)
    assert parse_expiry("19723") == dt.datetime(2024, 1, 1, tzinfo=utc)
    assert parse_expiry("-1").year == 9999 and parse_expiry("soon") is None


def test_the_cache_policy():
    cache = LookupCache(CachePolicy(ttl=10, negative_ttl=2, grace=100, size=3), b"k")
    cache.remember("a", "alice", 0)
    cache.remember("x", None, 0)
    assert cache.fresh("a", 9) == (True, "alice") and cache.fresh("a", 10) == (False, None)
    assert cache.fresh("x", 1) == (True, None) and cache.fresh("x", 2) == (False, None)
    assert cache.stale("a", 99) == "alice" and cache.stale("a", 100) is None
    assert cache.stale("x", 1) is None  # not found is never served in an outage
    for key in "bcd":
        cache.remember(key, key, 1)
    assert len(cache) == 3 and cache.fresh("a", 1) == (False, None)  # the oldest went
    cache.confirm_password("uid=a", b"pw", 0)
    assert cache.password_confirmed("uid=a", b"pw", 5)
    assert not cache.password_confirmed("uid=a", b"other", 5)
    assert not cache.password_confirmed("uid=a", b"pw", 50)
    assert cache.password_confirmed("uid=a", b"pw", 50, outage=True)


class Remote:
    """A directory as the set sees it, answering from a dict."""

    def __init__(self, name, entries, down=False):
        self.name, self.entries, self.down, self.asked = name, entries, down, []

    def search_filter(self, way, kind, value, user, realm):
        return None if way == "line" else f"{way}:{user}"

    def cached(self, search):
        return (search in self.entries, self.entries.get(search))

    def find(self, search, looked_up):
        self.asked.append(search)
        if self.down:
            raise DirectoryUnavailable("down")
        if search == "user_name:broken":
            raise UnusableEntry("broken entry")
        return self.entries.get(search)


def test_the_set_asks_the_store_then_the_right_directory():
    local = SubscriberSnapshot([], {}, {})
    shared = Remote("global", {"user_name:alice": "ALICE"})
    hosted = Remote("isp-b", {})
    isps = (Isp(name="isp-b", mode="local", realms=(RealmRule(kind="suffix",
                                                             pattern="@isp-b.example"),)),)
    directories = DirectorySet(local, shared, {"isp-b": hosted}, isps)
    assert directories.at_once([("user_name", "", "alice")]).account == "ALICE"
    assert directories.at_once([("user_name", "", "carol")]) is None  # must ask
    wanted = [("user_name", "", "bob@isp-b.example"), ("user_name", "", "bob")]
    assert directories.lookup(wanted) is NOBODY
    assert hosted.asked == ["user_name:bob"] and shared.asked == []  # never the global one
    assert directories.lookup([("line", "circuit_id", "c1")]) is NOBODY
    shared.down = True
    down = directories.lookup([("user_name", "", "dave")])
    assert down.account is None and down.way.startswith("unavailable: directory global")
    shared.down = False
    broken = directories.lookup([("user_name", "", "broken")])
    assert broken.way == "unusable: directory global: broken entry"


def test_the_lookup_after_at_once_reuses_its_routes_and_the_loop_awaits_the_same():
    local = SubscriberSnapshot([], {}, {})
    shared = Remote("global", {"user_name:alice": "ALICE"})
    filters = []
    render = shared.search_filter
    shared.search_filter = lambda *args: filters.append(args) or render(*args)

    async def find_on_loop(search, looked_up, ask_cache=True):
        asked_cache.append(ask_cache)
        return shared.find(search, looked_up)
    asked_cache = []
    shared.find_on_loop = find_on_loop
    directories = DirectorySet(local, shared, on_loop=True)
    wanted = [("user_name", "", "carol")]
    assert directories.at_once(wanted) is None and len(filters) == 1
    assert asyncio.run(directories.lookup(wanted)) is NOBODY  # the coroutine, on_loop
    assert len(filters) == 1 and shared.asked == ["user_name:carol"]
    assert asked_cache == [False]  # at_once has just asked the cache for this search
    assert asyncio.run(directories.lookup(list(wanted))) is NOBODY  # another list: anew
    assert len(filters) == 2 and asked_cache == [False, True]


def test_directory_config_is_checked_with_the_option_named(tmp_path):
    path = tmp_path / "vpop.toml"
    for text, field, reason in (
        ('[directory]\nservers = ["http://x"]\nbase_dn = "dc=x"\n', "directory.servers",
         "not an ldap://"),
        ('[directory]\nservers = ["ldap://x"]\n', "directory.base_dn", "must be set"),
        ('[directory]\npap = "maybe"\n', "directory.pap", "hash or bind"),
        ('[[directory.group]]\ngroup = "g"\n', "directory.group[0]", "profile or isp"),
        ('[[directory.isp]]\nservers = ["ldap://x"]\nbase_dn = "dc=x"\n',
         "directory.isp[0].name", "needs the ISP's name"),
        ('[[directory.isp]]\nname = "a"\nbase_dn = "dc=x"\n', "directory.isp[0].servers",
         "needs servers"),
        ('[[directory.isp]]\nname = "a"\nservers = ["ldap://x"]\nbase_dn = "dc=x"\n'
         'timeout = 0\n', "directory.isp[0].timeout", "more than 0"),
    ):
        path.write_text(text)
        with pytest.raises(ConfigError) as caught:
            config.load(path)
        assert caught.value.field == field and reason in caught.value.message, caught.value


def test_an_isps_directory_inherits_the_global_options(tmp_path):
    path = tmp_path / "vpop.toml"
    path.write_text('[directory]\nservers = ["ldap://g"]\nbase_dn = "dc=g"\n'
                    'bind_password = "env:PW"\nbind_dn = "cn=vpop"\n'
                    '[[directory.isp]]\nname = "isp-b"\nservers = ["ldaps://b"]\n')
    settings = config.load(path, env={"PW": "secret"})
    own = settings.directory.isp[0]
    assert own.name == "isp-b" and own.settings.servers == ("ldaps://b",)
    assert (own.settings.base_dn, own.settings.bind_password) == ("dc=g", "secret")
