"""Log lines for machines (JSON) and for people (plain), with no secrets in them.

Every record written while a Nameko worker runs carries that worker's request id,
service, entrypoint and user id: `Observability` puts them in `current_call` (a
context variable, so each eventlet greenthread sees its own) and `CallContextFilter`
copies them onto the record. Both formatters redact passwords, tokens and
credentials, by key and by shape, because a secret that reaches a log collector
cannot be taken back.
"""
import json
import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

REDACTED = "[redacted]"

# What the worker now running in this greenthread is: set by Observability.
current_call: ContextVar[dict[str, Any] | None] = ContextVar("lifytp_current_call", default=None)

CALL_FIELDS = ("service", "entrypoint", "request_id", "user_id")

_SENSITIVE_WORDS = r"password|passwd|secret|token|authorization|api[_-]?key|cookie|credential"
_SENSITIVE_KEY = re.compile(r"(?i)(?:" + _SENSITIVE_WORDS + ")")
_SECRET_SHAPES = [
    # A credential after its scheme, e.g. an Authorization header in a message.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    # A JWT (access token) wherever it stands.
    (re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    # A bcrypt hash, e.g. in the parameters of a database error.
    (re.compile(r"\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}"), REDACTED),
    # Last, as the shapes above may follow a key: "password": "x", password=x,
    # 'refresh_token': 'x', token=x in a query string.
    (re.compile(r"""(?i)(["']?[\w-]*(?:""" + _SENSITIVE_WORDS + r""")[\w-]*["']?\s*[:=]\s*)"""
                r"""("[^"]*"|'[^']*'|[^\s,&;)}\]]+)"""), r"\1" + REDACTED),
]

# Attributes every LogRecord has; anything else on a record came from `extra`.
_RECORD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def redact_text(text: str) -> str:
    for pattern, replacement in _SECRET_SHAPES:
        text = pattern.sub(replacement, text)
    return text


def redact_value(key: object, value: object) -> object:
    if isinstance(key, str) and _SENSITIVE_KEY.search(key):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_value(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(None, v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_text(str(value))


class CallContextFilter(logging.Filter):
    """Puts the current worker's request id (and service, entrypoint, user) on each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        call = current_call.get()
        if call is not None:
            for field in CALL_FIELDS:
                if getattr(record, field, None) is None and call.get(field) is not None:
                    setattr(record, field, call[field])
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_") and value is not None:
                entry[key] = redact_value(key, value)
        if record.exc_info:
            entry["exc"] = redact_text(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact_text(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str)


class PlainFormatter(logging.Formatter):
    """For a person at a terminal (LOG_FORMAT=plain); `%(request_id)s` is "-" outside a call."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt, defaults={"request_id": "-"})

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))
