"""[[nas]] das_address, das_port, das_secret and das_secret_env: where and with which
secret vpop sends a NAS its CoA and Disconnect requests."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from vpop import provisioning
from vpop.config import IdentificationSettings
from vpop.errors import ConfigError
from vpop.store.models import Nas

NAS = """\
[[nas]]
name = "bras1"
address = "192.0.2.1"
secret = "s3cret"
"""


def do_import(session, tmp_path, text, env=None):
    path = tmp_path / "nas.toml"
    path.write_text(text)
    return provisioning.import_file(session, path, identification=IdentificationSettings(),
                                    env=env or {}, salt=random.Random(0).randbytes,
                                    iterations=1000)


def stored(session):
    nas = session.scalars(select(Nas)).one()
    return nas.das_address, nas.das_port, nas.das_secret


def test_defaults_the_nas_own_address_port_3799_and_its_secret(session, tmp_path):
    do_import(session, tmp_path, NAS)
    assert stored(session) == (None, 3799, None)


def test_an_endpoint_of_its_own(session, tmp_path):
    do_import(session, tmp_path, NAS + 'das_address = "2001:DB8::9"\ndas_port = 1700\n'
              'das_secret_env = "DAS"\n', env={"DAS": "coa-secret"})
    assert stored(session) == ("2001:db8::9", 1700, "coa-secret")


@pytest.mark.parametrize("extra, field, words", [
    ('das_address = "192.0.2.0/24"\n', "das_address", "not an IPv4 or IPv6 address"),
    ("das_port = 0\n", "das_port", "port number from 1 to 65535"),
    ("das_port = 70000\n", "das_port", "port number from 1 to 65535"),
    ('das_port = "3799"\n', "das_port", "must be an integer"),
    ('das_secret = "a"\ndas_secret_env = "DAS"\n', "das_secret_env", "not both"),
    ('das_secret_env = "UNSET"\n', "das_secret_env", "UNSET"),
])
def test_bad_values_are_named_and_nothing_is_written(session, tmp_path, extra, field, words):
    with pytest.raises(ConfigError) as caught:
        do_import(session, tmp_path, NAS + extra, env={"DAS": "x"})
    assert caught.value.field == f"nas[1].{field}"
    assert words in caught.value.message
    assert session.scalars(select(Nas)).first() is None
