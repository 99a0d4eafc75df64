"""Cursor pagination: `?limit=&cursor=` in, `{"items", "next_cursor"}` out.

A cursor is the sort key of the last item served, written out part by part:
`1796083200000000.6f1e2d3c4b5a49688776655443322110` is a time (microseconds
since 1970, UTC) and an id (32 hex digits). Pages are keyset queries
(`WHERE (key) < (cursor) ORDER BY key DESC`), so new rows never shift a page
the way OFFSET would.

Each list states its cursor's exact pattern in the API document, and every
string that matches it names a valid position: a generated client, a fuzzer
and this code agree on what a cursor is, and a cursor never carries anything
(a NUL, a number past 64 bits) that could reach the database unchecked.
Clients still treat cursors as opaque: pass `next_cursor` back as given.
"""
import functools
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from marshmallow import Schema, fields, validate

from services.shared.errors import InvalidInput

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_Row = TypeVar("_Row")


class KeyPart:
    """One part of a sort key: the pattern of its text, and the conversions."""

    def __init__(self, pattern: str, write: Callable[[Any], str], read: Callable[[str], Any]) -> None:
        self.pattern, self.write, self.read = pattern, write, read


# 16 digits either side of 1970 reach from 1653 to 2286.
TIME = KeyPart(r"-?[0-9]{1,16}", lambda moment: str((moment - _EPOCH) // _MICROSECOND),
               lambda text: _EPOCH + int(text) * _MICROSECOND)
ID = KeyPart(r"[0-9a-f]{32}", lambda value: uuid.UUID(str(value)).hex, lambda text: str(uuid.UUID(text)))
# 18 digits stay within PostgreSQL's bigint.
SEQUENCE = KeyPart(r"[0-9]{1,18}", str, int)


def name_part(pattern: str) -> KeyPart:
    """A key part that is a name matching `pattern` (which cannot hold a dot)."""
    return KeyPart(pattern, str, str)


class Keyset:
    """The sort key of a list, and the cursors that stand for its positions."""

    def __init__(self, *parts: KeyPart) -> None:
        self.parts = parts
        self.pattern = "^" + r"\.".join(part.pattern for part in parts) + "$"
        self._regex = re.compile(self.pattern)

    def encode(self, key: Sequence[Any]) -> str:
        return ".".join(part.write(value) for part, value in zip(self.parts, key, strict=True))

    def decode(self, cursor: str | None) -> tuple[Any, ...] | None:
        """The sort key a cursor stands for, or None for the first page."""
        if cursor is None:
            return None
        if not self._regex.fullmatch(cursor):
            raise InvalidInput(
                "The cursor is not valid.", code="INVALID_CURSOR", details={"cursor": ["Invalid cursor."]})
        return tuple(part.read(text) for part, text in zip(self.parts, cursor.split("."), strict=True))

    def field(self, **kwargs: Any) -> fields.String:
        return fields.String(metadata={
            "pattern": self.pattern,
            "description": "The `next_cursor` of the previous page, as given. Omit it for the first page.",
        }, **kwargs)


# Most lists: newest (or soonest) first, ties broken by id.
BY_TIME = Keyset(TIME, ID)
BY_SEQUENCE = Keyset(SEQUENCE)


@functools.cache
def page_args(keyset: Keyset) -> Any:
    """The query schema of a list sorted by `keyset`: `limit` and `cursor`.
    A class made at run time, so typed Any: request schemas subclass it."""
    return type("PageArgs", (Schema,), {
        "limit": fields.Integer(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT)),
        "cursor": keyset.field(load_default=None),
    })


PageArgs = page_args(BY_TIME)


def page(rows: Sequence[_Row], limit: int, sort_key: Callable[[_Row], Sequence[Any]],
         serialize: Callable[[_Row], Any], keyset: Keyset = BY_TIME) -> dict[str, Any]:
    """Build a page from up to limit + 1 rows fetched in order."""
    has_more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [serialize(row) for row in rows],
        "next_cursor": keyset.encode(sort_key(rows[-1])) if has_more and rows else None,
    }


@functools.cache
def page_of(item_schema: type[Schema]) -> type[Schema]:
    """The schema of a page of item_schema: `{"items": [...], "next_cursor": str | null}`."""
    return type(item_schema.__name__ + "Page", (Schema,), {
        "items": fields.List(fields.Nested(item_schema), required=True),
        "next_cursor": fields.String(required=True, allow_none=True, metadata={
            "description": "Pass it as `cursor` for the next page; null on the last."}),
    })
