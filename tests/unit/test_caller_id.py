import pytest

from vpop.aaa.caller_id import normalise_caller_id

GERMANY = dict(country_code="49", national_prefix="0", international_prefix="00")
NO_COUNTRY = dict(country_code="", national_prefix="0", international_prefix="00")
NORTH_AMERICA = dict(country_code="1", national_prefix="1", international_prefix="011")


@pytest.mark.parametrize("raw, settings, expected", [
    ("+49 30 1234567", GERMANY, "49301234567"),
    ("0049301234567", GERMANY, "49301234567"),
    ("030 1234567", GERMANY, "49301234567"),
    ("030/123-45-67", GERMANY, "49301234567"),
    ("(030) 1234567", GERMANY, "49301234567"),
    ("  +49 (0)30 1234567 ", GERMANY, "490301234567"),  # the "(0)" is not interpreted
    ("+1 212 555 0100", GERMANY, "12125550100"),
    ("0044 20 7946 0000", GERMANY, "442079460000"),
    ("301234567", GERMANY, "301234567"),  # no prefix: kept as it is
    ("+49 30 1234567", NO_COUNTRY, "49301234567"),
    ("0049301234567", NO_COUNTRY, "49301234567"),
    ("030 1234567", NO_COUNTRY, "0301234567"),  # no country code to put in its place
    ("011 49 30 1234567", NORTH_AMERICA, "49301234567"),
    ("1 212 555 0100", NORTH_AMERICA, "12125550100"),
])
def test_normalise(raw, settings, expected):
    assert normalise_caller_id(raw, **settings) == expected


@pytest.mark.parametrize("raw", ["", "   ", "+", "anonymous", "00", "+ - ()", "²³"])
def test_no_digits_is_an_error(raw):
    with pytest.raises(ValueError):
        normalise_caller_id(raw, **GERMANY)


def test_empty_prefixes_are_ignored():
    assert normalise_caller_id("0049 30", country_code="49", national_prefix="",
                               international_prefix="") == "004930"
