"""One record checked on its own (a form, an API request) finds what the import finds."""

import pytest

from vpop import provisioning
from vpop.config import IdentificationSettings
from vpop.provisioning import KEEP, Context, check_table, lease, nas, subscriber

IDENT = IdentificationSettings(country_code="49", national_prefix="0",
                               international_prefix="00")
CONTEXT = Context(env={"SECRET": "from-env"}, identification=IDENT)


def test_a_valid_record_comes_back_normalised_with_its_defaults():
    values, problems = check_table(subscriber.SECTION, {
        "username": "eve", "profile": "res", "password": "eve-pass",
        "caller_ids": ["030 1234567"]}, CONTEXT)
    assert problems == []
    assert values["caller_ids"] == ("49301234567",)
    assert values["methods"] == ("pap",) and values["enabled"] is True
    assert values["isp"] is KEEP  # left out: the stored choice is kept


def test_checks_across_fields_run_once_the_fields_are_valid():
    values, problems = check_table(nas.SECTION, {"name": "bras", "address": "192.0.2.1",
                                                 "secret_env": "SECRET"}, CONTEXT)
    assert problems == [] and values["secret"] == "from-env" and "secret_env" not in values
    assert check_table(nas.SECTION, {"name": "bras", "address": "192.0.2.1"}, CONTEXT) == (
        None, [("secret", "is required (or secret_env naming an environment variable)")])
    assert check_table(nas.SECTION, {"name": "bras", "address": "nowhere"}, CONTEXT)[1] == [
        ("address", "is not an IP address or network "
                    "('nowhere' does not appear to be an IPv4 or IPv6 address)")]


@pytest.mark.parametrize("section, table, place", [
    (subscriber.SECTION, {"username": "eve", "profile": "res", "password": "p",
                          "lines": [{"circuit_id": ""}]}, "lines[1].circuit_id"),
    (subscriber.SECTION, {"username": "eve", "profile": "res", "pasword": "p"}, "pasword"),
    (lease.SECTION, {"name": "l", "isp": "a", "nas": ["192.0.2.1"], "sessions": 5,
                     "starts": "yesterday"}, "starts"),
])
def test_the_import_reports_the_same_problem_at_the_same_place(tmp_path, section, table,
                                                               place):
    _, problems = check_table(section, table, CONTEXT)
    assert [where for where, _ in problems] == [place]
    path = tmp_path / "plan.toml"
    path.write_text(f"[[{section.name}]]\n" + "".join(
        f"{key} = {toml(value)}\n" for key, value in table.items()))
    with pytest.raises(provisioning.ProvisioningError) as caught:
        provisioning.parse(path, identification=IDENT, env=CONTEXT.env)
    assert [(p.field, p.message) for p in caught.value.problems] == [
        (f"{section.name}[1].{where}", reason) for where, reason in problems]


def toml(value) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml(v)}" for k, v in value.items()) + "}"
    return "[" + ", ".join(toml(v) for v in value) + "]"
