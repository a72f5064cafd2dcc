"""Group-to-profile mapping from memberOf kept by slapd's own memberof overlay: groups
changed online, and vpop (`groups = "attribute"`, `group_attribute = "memberOf"`)
follows each change at the next lookup. The harness's other directory stands in a
plain attribute for memberOf (slapadd seeds around overlays); this one is the real
thing, as an operator's OpenLDAP or Active Directory keeps it."""

from __future__ import annotations

import os

import ldap3
import pytest

from e2e_support import DICTIONARY, VpopServer, reply_message, set_options
from support.slapd import (ADMIN_DN, ADMIN_PASSWORD, GROUPS, SERVICE_DN, SERVICE_PASSWORD,
                           SUBSCRIBERS, SUFFIX, Slapd, password_of, username_of)

from vpop.radius import codec

pytestmark = pytest.mark.e2e

PASSWORD_VARIABLE = "VPOP_TEST_MEMBEROF_PASSWORD"
GOLD = f"cn=gold,{GROUPS}"

GOLD_PROFILE = """
[[directory.group]]
group = "gold"
profile = "business-100m"
"""


@pytest.fixture(scope="module")
def ldap(tmp_path_factory):
    with Slapd(tmp_path_factory.mktemp("slapd"), subscribers=20, memberof=True) as server:
        yield server


@pytest.fixture(scope="module")
def admin(ldap):
    conn = ldap3.Connection(ldap3.Server(ldap.url), ADMIN_DN, ADMIN_PASSWORD, auto_bind=True)
    yield conn
    conn.unbind()


@pytest.fixture(scope="module")
def vpop(ldap, tmp_path_factory):
    os.environ[PASSWORD_VARIABLE] = SERVICE_PASSWORD
    server = VpopServer.create(tmp_path_factory.mktemp("vpop"))
    text = set_options(server.config.read_text(), {"directory": {
        "servers": [ldap.url], "bind_dn": SERVICE_DN,
        "bind_password": f"env:{PASSWORD_VARIABLE}", "base_dn": SUFFIX,
        "user_filter": "(&(objectClass=inetOrgPerson)(uid={user}))",
        "default_profile": "residential-10m", "groups": "attribute",
        "group_attribute": "memberOf", "cache_ttl": 0.0, "negative_ttl": 0.0}})
    server.config.write_text(text.replace("\ngroup = []\n", "\n") + GOLD_PROFILE)
    server.start()
    yield server
    status = server.stop()
    assert status == 0, server.diagnostics()
    assert "Traceback" not in server.log_text() + server.output_text(), server.diagnostics()


def member(number: int) -> str:
    return f"uid={username_of(number)},{SUBSCRIBERS}"


def profile_of(nas, vpop: VpopServer, number: int) -> str:
    reply = nas.ask(nas.access([("User-Name", username_of(number))],
                               password=password_of(number)), vpop.auth())
    assert reply.code == codec.ACCESS_ACCEPT, reply_message(reply)
    return DICTIONARY.decode_value(DICTIONARY["Vpop-Profile"],
                                   reply.first(DICTIONARY.key("Vpop-Profile")))


def member_of(admin: ldap3.Connection, number: int) -> list[str]:
    admin.search(member(number), "(objectClass=*)", ldap3.BASE, attributes=["memberOf"])
    return [str(dn) for dn in admin.entries[0].memberOf.values] if admin.entries else []


def test_a_group_added_online_maps_its_members_to_the_profile(vpop, nas, admin):
    assert profile_of(nas, vpop, 3) == "residential-10m"  # in no group yet
    assert admin.add(GOLD, ["groupOfNames"], {"cn": "gold", "member": [member(3)]}), \
        admin.result
    assert member_of(admin, 3) == [GOLD]  # kept by the overlay, not written by the test
    assert profile_of(nas, vpop, 3) == "business-100m"
    assert profile_of(nas, vpop, 4) == "residential-10m"


def test_membership_changes_are_followed_at_the_next_lookup(vpop, nas, admin):
    assert admin.modify(GOLD, {"member": [(ldap3.MODIFY_ADD, [member(4)]),
                                          (ldap3.MODIFY_DELETE, [member(3)])]}), admin.result
    assert member_of(admin, 4) == [GOLD] and member_of(admin, 3) == []
    assert profile_of(nas, vpop, 4) == "business-100m"
    assert profile_of(nas, vpop, 3) == "residential-10m"
    assert admin.delete(GOLD), admin.result
    assert member_of(admin, 4) == []
    assert profile_of(nas, vpop, 4) == "residential-10m"
