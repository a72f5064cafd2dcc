"""One record at a time, as the portal's forms and the API change records: read back as
an import table, overlaid, checked and written as `vpop import` would."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from vpop import provisioning
from vpop.config import IdentificationSettings
from vpop.provisioning import ProvisioningError
from vpop.provisioning.fields import Context
from vpop.provisioning.stored import (MODELS, apply_tables, problems_by_field, stored_keys,
                                      stored_table)
from vpop.store.demo import demo_plan_path
from vpop.store.generation import current
from vpop.store.isp_models import IspServer

IDENTIFICATION = IdentificationSettings(country_code="49")
CONTEXT = Context(env={}, identification=IDENTIFICATION)


@pytest.fixture
def demo(session):
    provisioning.import_file(session, demo_plan_path(), identification=IDENTIFICATION, env={},
                             iterations=1000)
    session.commit()
    return session


def test_every_stored_record_reads_back_as_the_same_record(demo):
    generation = current(demo).generation
    for section in MODELS:
        for key in stored_keys(demo, section):
            summary = apply_tables(demo, {section: [stored_table(demo, section, key)]}, CONTEXT)
            assert not summary.changed, (section, key)
    assert current(demo).generation == generation


def test_a_change_is_written_with_a_new_generation(demo):
    table = stored_table(demo, "isp", "isp-proxy")
    table["servers"][0]["auth_port"] = 11647
    generation = current(demo).generation
    summary = apply_tables(demo, {"isp": [table]}, CONTEXT)
    assert summary["isp"].updated == 1 and summary.generation == generation + 1
    assert demo.scalar(select(IspServer.auth_port).where(IspServer.name == "isp-proxy/1")) == 11647


def test_bad_values_are_named_by_field_and_nothing_is_written(demo):
    table = stored_table(demo, "isp", "isp-proxy")
    table["servers"][0]["address"] = "not-an-address"
    table["price_per_minute"] = "-1"
    generation = current(demo).generation
    with pytest.raises(ProvisioningError) as caught:
        apply_tables(demo, {"isp": [table]}, CONTEXT)
    assert problems_by_field(caught.value) == {
        "servers[1].address": ["is not an IPv4 or IPv6 address"],
        "price_per_minute": ["must be a number from 0"]}
    assert current(demo).generation == generation
    assert stored_table(demo, "isp", "isp-proxy")["servers"][0]["address"] == "127.0.0.1"


def test_a_conflict_with_another_record_names_the_field(demo):
    table = stored_table(demo, "isp", "isp-tunnel")
    table["realms"] = [*table["realms"], "@isp-proxy.example"]
    with pytest.raises(ProvisioningError) as caught:
        apply_tables(demo, {"isp": [table]}, CONTEXT)
    assert list(problems_by_field(caught.value)) == ["realms"]
