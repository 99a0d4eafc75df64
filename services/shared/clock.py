"""The time, in one place: every service stores and compares aware UTC times."""
from datetime import UTC, datetime


def now():
    """This instant, as an aware UTC datetime."""
    return datetime.now(UTC)
