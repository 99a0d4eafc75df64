"""The time, in one place: every service stores and compares aware UTC times."""
from datetime import UTC, datetime
from typing import overload


def now() -> datetime:
    """This instant, as an aware UTC datetime."""
    return datetime.now(UTC)


@overload
def iso(moment: datetime) -> str: ...


@overload
def iso(moment: None) -> None: ...


def iso(moment: datetime | None) -> str | None:
    """How every answer and event writes a time: ISO 8601 in UTC, to the
    second (`2026-11-23T18:00:00Z`); None stays None."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None
