"""Time in the store: always UTC. SQLite hands back naive datetimes; these are UTC too."""
from __future__ import annotations

import datetime as dt


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.timezone.utc)


def stamp(value: dt.datetime | None) -> str:
    """A short UTC time for event details and CLI output."""
    value = aware(value)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"
