"""Cursor pagination: `?limit=&cursor=` in, `{"items", "next_cursor"}` out.

A cursor is the sort key of the last item served, opaque to clients (base64 of
JSON). Pages are keyset queries (`WHERE (key) < (cursor) ORDER BY key DESC`),
so new rows never shift a page the way OFFSET would.
"""
import base64
import binascii
import functools
import json
import uuid
from datetime import datetime

from marshmallow import Schema, fields, validate

from services.shared.errors import InvalidInput

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class PageArgs(Schema):
    limit = fields.Integer(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT))
    cursor = fields.String(load_default=None, validate=validate.Length(max=512))


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
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(key, list) or len(key) != len(parsers):
            raise ValueError("wrong shape")
        if not all(isinstance(part, (str, int)) and not isinstance(part, bool) for part in key):
            raise ValueError("wrong part type")
        return tuple(parse(part) for parse, part in zip(parsers, key, strict=True))
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, AttributeError):
        raise InvalidInput(
            "The cursor is not valid.", code="INVALID_CURSOR", details={"cursor": ["Invalid cursor."]}
        ) from None


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
        "next_cursor": fields.String(required=True, allow_none=True),
    })
