"""Reading request bodies and query strings into validated dicts.

Everything from outside goes through a marshmallow schema: unknown fields are
rejected, and a failure names each field in `details` (422). A body that is not
JSON at all is a 400, the wrong content type a 415, an oversized one a 413.
"""
import json
import re
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError
from werkzeug.wrappers import Request

from services.shared import text
from services.shared.errors import InvalidInput, MalformedRequest, TooLarge, UnsupportedType

MAX_JSON_BYTES = 64 * 1024
# Longer than any query value the API takes (a search is at most 100
# characters, a cursor under 60).
MAX_QUERY_VALUE_CHARS = 1024
# Control characters (NUL among them, which PostgreSQL cannot store) have no
# place in any query parameter, whatever its field would say.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def read_json(request: Request, max_bytes: int = MAX_JSON_BYTES) -> Any:
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


def load(schema: Schema, data: object, unknown: str = RAISE) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise MalformedRequest("The body must be a JSON object.", code="MALFORMED_JSON")
    try:
        loaded: dict[str, Any] = schema.load(data, unknown=unknown)
        return loaded
    except ValidationError as exc:
        raise InvalidInput(details=_flatten(exc.messages)) from None


def json_body(request: Request, schema: Schema) -> dict[str, Any]:
    return load(schema, read_json(request))


def query_args(request: Request, schema: Schema) -> dict[str, Any]:
    """Validate the query string. Unknown parameters are ignored, as clients
    and proxies add their own (cache busters and the like). Every parameter the
    schema declares is first checked for length and control characters, so no
    field, however lax, hands such a value on."""
    args = request.args.to_dict()
    declared = {field.data_key or name for name, field in schema.fields.items()}
    refused = {name: [problem] for name, value in args.items()
               if name in declared and (problem := _refusal(value))}
    if refused:
        raise InvalidInput(details=refused)
    return load(schema, args, unknown=EXCLUDE)


def _refusal(value: str) -> str | None:
    if len(value) > MAX_QUERY_VALUE_CHARS:
        return f"Longer than {MAX_QUERY_VALUE_CHARS} characters."
    found = _CONTROL.search(value)
    if found:
        return text.why_refused(found.group())  # in the words of the text policy
    return None


def _flatten(messages: object) -> Any:
    if isinstance(messages, dict):
        return {str(key): _flatten(value) for key, value in messages.items()}
    return messages

