"""Cursor pagination: `?limit=&cursor=` in, `{"items", "next_cursor"}` out.

A cursor is the sort key of the last item served, opaque to clients (base64url
of JSON, unpadded). Pages are keyset queries (`WHERE (key) < (cursor) ORDER BY
key DESC`), so new rows never shift a page the way OFFSET would.

A cursor comes from outside like any input: its parts are checked (strings
without control characters and bounded, integers within 64 bits) before any
parser sees them, let alone the database (PostgreSQL refuses a NUL in text).
"""
import base64
import binascii
import functools
import json
import re
import uuid
from datetime import datetime

from marshmallow import Schema, fields, validate

from services.shared.errors import InvalidInput

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_CURSOR_CHARS = 512
# The longest part a cursor of ours holds is a time or a UUID (under 40).
MAX_CURSOR_PART_CHARS = 255
# Stated in the API document as well, so that what it generates is what is decoded.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+={0,2}$"
_CURSOR = re.compile(CURSOR_PATTERN)
# C0 and C1 control characters, DEL, and lone surrogates (not UTF-8 at all).
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_INT64 = range(-(2**63), 2**63)


class PageArgs(Schema):
    limit = fields.Integer(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT))
    cursor = fields.String(load_default=None, validate=validate.Length(max=MAX_CURSOR_CHARS), metadata={
        "pattern": CURSOR_PATTERN,
        "description": "The `next_cursor` of the previous page, as given (opaque; base64url). "
                       "Omit it for the first page.",
    })


def encode_cursor(key):
    parts = [part.isoformat() if isinstance(part, datetime) else part for part in key]
    raw = json.dumps(parts, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def as_time(part):
    moment = datetime.fromisoformat(part)
    if moment.tzinfo is None:
        raise ValueError("naive time")
    return moment


def as_uuid(part):
    return str(uuid.UUID(part))


def decode_cursor(cursor, *parsers):
    """The sort key a cursor stands for, each part checked by its parser
    (`str`, `int`, `as_time`, `as_uuid`), or None for the first page."""
    if cursor is None:
        return None
    try:
        if not _CURSOR.match(cursor):  # urlsafe_b64decode would skip other characters
            raise ValueError("not base64url")
        unpadded = cursor.rstrip("=")
        key = json.loads(base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4)))
        if not isinstance(key, list) or len(key) != len(parsers):
            raise ValueError("wrong shape")
        if not all(_plain_part(part) for part in key):
            raise ValueError("wrong part")
        return tuple(parse(part) for parse, part in zip(parsers, key, strict=True))
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, AttributeError, OverflowError):
        raise InvalidInput(
            "The cursor is not valid.", code="INVALID_CURSOR", details={"cursor": ["Invalid cursor."]}
        ) from None


def _plain_part(part):
    """A string or integer any parser, and the database, can take as it is."""
    if isinstance(part, str):
        return len(part) <= MAX_CURSOR_PART_CHARS and not _UNSTORABLE.search(part)
    return isinstance(part, int) and not isinstance(part, bool) and part in _INT64


def page(rows, limit, sort_key, serialize):
    """Build a page from up to limit + 1 rows fetched in order."""
    has_more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [serialize(row) for row in rows],
        "next_cursor": encode_cursor(sort_key(rows[-1])) if has_more and rows else None,
    }


@functools.cache
def page_of(item_schema):
    """The schema of a page of item_schema: `{"items": [...], "next_cursor": str | null}`."""
    return type(item_schema.__name__ + "Page", (Schema,), {
        "items": fields.List(fields.Nested(item_schema), required=True),
        "next_cursor": fields.String(required=True, allow_none=True, metadata={
            "pattern": CURSOR_PATTERN, "description": "Pass it as `cursor` for the next page; null on the last."}),
    })
