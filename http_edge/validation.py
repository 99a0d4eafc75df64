"""Reading request bodies and query strings into validated dicts.

Everything from outside goes through a marshmallow schema: unknown fields are
rejected, and a failure names each field in `details` (422). A body that is not
JSON at all is a 400, the wrong content type a 415, an oversized one a 413.
"""
import json

from marshmallow import EXCLUDE, RAISE, ValidationError

from services.shared.errors import InvalidInput, MalformedRequest, NotFound, TooLarge, UnsupportedType
from services.shared.ids import parse_uuid

MAX_JSON_BYTES = 64 * 1024


def read_json(request, max_bytes=MAX_JSON_BYTES):
    if request.mimetype != "application/json":
        raise UnsupportedType("Send the body as application/json.", code="UNSUPPORTED_MEDIA_TYPE")
    if request.content_length is not None and request.content_length > max_bytes:
        raise TooLarge(details={"max_bytes": max_bytes})
    raw = request.stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise TooLarge(details={"max_bytes": max_bytes})
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedRequest("The body is not valid JSON.", code="MALFORMED_JSON") from None


def load(schema, data, unknown=RAISE):
    if not isinstance(data, dict):
        raise MalformedRequest("The body must be a JSON object.", code="MALFORMED_JSON")
    try:
        return schema.load(data, unknown=unknown)
    except ValidationError as exc:
        raise InvalidInput(details=_flatten(exc.messages)) from None


def json_body(request, schema):
    return load(schema, read_json(request))


def query_args(request, schema):
    """Validate the query string. Unknown parameters are ignored, as clients
    and proxies add their own (cache busters and the like)."""
    return load(schema, request.args.to_dict(), unknown=EXCLUDE)


def _flatten(messages):
    if isinstance(messages, dict):
        return {str(key): _flatten(value) for key, value in messages.items()}
    return messages


def path_id(value, not_found=NotFound):
    """A path segment that must be a UUID; anything else names nothing (404)."""
    parsed = parse_uuid(value)
    if parsed is None:
        raise not_found()
    return parsed
