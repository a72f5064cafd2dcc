"""Event times in the store: seconds since the epoch in vpop, UTC-aware datetimes in
the tables."""

from __future__ import annotations

import datetime as dt


def when(seconds: int | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.timezone.utc)


def seconds(value: dt.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())
