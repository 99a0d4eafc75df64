"""The time, in one place: every service stores and compares aware UTC times."""
from datetime import UTC, datetime


def now():
    """This instant, as an aware UTC datetime."""
    return datetime.now(UTC)


def iso(moment):
    """How every answer and event writes a time: ISO 8601 in UTC, to the
    second (`2026-11-23T18:00:00Z`); None stays None."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None
