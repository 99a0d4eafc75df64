"""What every service's part of an account's data export shares: the cap on a
section, and how a section says it was cut."""
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import Session

# No section of an export holds more than this many items: the document stays
# a size one answer can carry (a few MB), and a section that was cut is named
# in the document's `truncated` list.
MAX_ITEMS_PER_SECTION = 10_000

T = TypeVar("T")


class Sections:
    """The sections of one service's part of an export, and which were cut."""

    def __init__(self, limit: int = MAX_ITEMS_PER_SECTION) -> None:
        self.limit = limit
        self.items: dict[str, list[Any]] = {}
        self.truncated: list[str] = []

    def add(self, name: str, session: Session, query: Select[Any], shape: Callable[[Any], dict[str, Any]],
            scalars: bool = True) -> Sequence[Any]:
        """Run query (oldest first, as the caller orders it) for at most limit
        rows, shaped into section `name`; returns the rows."""
        result = session.execute(query.limit(self.limit + 1))
        rows = list(result.scalars() if scalars else result.all())
        if len(rows) > self.limit:
            rows = rows[: self.limit]
            self.truncated.append(name)
        self.items[name] = [shape(row) for row in rows]
        return rows

    def document(self) -> dict[str, Any]:
        return {"sections": self.items, "truncated": self.truncated}
