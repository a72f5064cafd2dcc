"""A directory's lookups and binds on the event loop (server/ldap_directory.py: the
connection lent to the loop, answers matched by message id, bind connections one bind
at a time) against a real slapd, driven as a worker drives them (udp.step, no Task)
and by Tasks, many at once."""

from __future__ import annotations

import asyncio

import pytest
from support.slapd import SERVICE_DN, SERVICE_PASSWORD, SUFFIX, Slapd, password_of, username_of

from vpop.aaa.subscribers import ServiceProfile
from vpop.config import DirectorySettings
from vpop.server.ldap_directory import LdapDirectory
from vpop.server.udp import step

pytestmark = pytest.mark.e2e

SUBSCRIBERS = 60


@pytest.fixture(scope="module")
def ldap(tmp_path_factory):
    with Slapd(tmp_path_factory.mktemp("slapd"), subscribers=SUBSCRIBERS) as server:
        yield server


def directory(ldap: Slapd, pap: str = "hash") -> LdapDirectory:
    settings = DirectorySettings(
        servers=(ldap.url,), bind_dn=SERVICE_DN, bind_password=SERVICE_PASSWORD,
        base_dn=SUFFIX, default_profile="basic", methods=("pap",), pap=pap, pool_size=2,
        cache_ttl=0, negative_ttl=0)
    return LdapDirectory("global", settings, profiles={"basic": ServiceProfile(name="basic")},
                         relative=str, on_loop=True)


def stepped(coroutines) -> list:
    """The coroutines stepped as the worker steps deferred work, all at once; their
    outcomes in order."""
    async def main():
        loop = asyncio.get_running_loop()
        finished = [loop.create_future() for _ in coroutines]
        for coroutine, done in zip(coroutines, finished):
            step(coroutine, done.set_result)
        return [outcome() for outcome in await asyncio.gather(*finished)]
    return asyncio.run(main())


def tasks(coroutines) -> list:
    async def main():
        return await asyncio.gather(*coroutines)
    return asyncio.run(main())


@pytest.mark.parametrize("drive", [stepped, tasks])
def test_lookups_at_once_on_one_connection(ldap, drive):
    found = directory(ldap)
    try:
        found.check_once()  # a connection ready, as the health thread keeps one
        names = [username_of(n) for n in range(1, SUBSCRIBERS + 1)] + ["nobody"]
        searches = [found.search_filter("user_name", "", n, n, "") for n in names]
        accounts = drive([found.find_on_loop(s, n) for s, n in zip(searches, names)])
        assert [a.username if a else None for a in accounts] == names[:-1] + [None]
        assert all(a.dn == f"uid={a.username},ou=subscribers,{SUFFIX}" for a in accounts[:-1])
        assert found.snapshot()["operations"] >= len(names)
    finally:
        found.close()


@pytest.mark.parametrize("drive", [stepped, tasks])
def test_binds_one_at_a_time_on_each_connection(ldap, drive):
    binding = directory(ldap, pap="bind")
    try:
        binding.check_once()
        numbers = [6, 12, 18]  # {SSHA} (PASSWORD_SCHEMES): the harness's slapd binds with it
        checks = [binding.check_password_on_loop(
            f"uid={username_of(n)},ou=subscribers,{SUFFIX}",
            (password_of(n) if right else "wrong").encode())
            for _ in range(4) for n in numbers for right in (True, False)]  # > pool_size
        assert drive(checks) == [True, False] * len(numbers) * 4
    finally:
        binding.close()
