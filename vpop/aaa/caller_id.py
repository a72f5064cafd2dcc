"""Caller IDs (Calling-Station-Id) in one form, so stored and received numbers compare."""

from __future__ import annotations

import re

_NOT_DIGIT = re.compile(r"[^0-9]")  # str.isdigit would also pass "²" and other scripts' digits


def normalise_caller_id(raw: str, *, country_code: str, national_prefix: str,
                        international_prefix: str) -> str:
    """Digits only, in international form without "+": "+49 30 1234567" -> "49301234567".

    A leading "+" or international prefix is dropped; a national prefix is replaced
    by ``country_code``. With no country code, national numbers keep their digits as
    they are. ValueError if no digits are left.
    """
    text = raw.strip()
    digits = _NOT_DIGIT.sub("", text)
    if not digits:
        raise ValueError(f"no digits in caller ID {raw!r}")
    if text.startswith("+"):
        number = digits
    # The international prefix first: "00" also starts with the national "0".
    elif international_prefix and digits.startswith(international_prefix):
        number = digits[len(international_prefix):]
    elif country_code and national_prefix and digits.startswith(national_prefix):
        number = country_code + digits[len(national_prefix):]
    else:
        number = digits
    if not number:
        raise ValueError(f"no number after the prefix in caller ID {raw!r}")
    return number
