"""stderr carries log records and nothing else.

Libraries write to sys.stderr behind logging's back: eventlet's hub, green
pools and queues print the traceback of a greenthread that died, http.server a
line per refused request, eventlet's websocket its shutdown errors, Python the
warnings and the exceptions nobody caught. Each would be a raw line beside the
JSON logs, unredacted (a traceback shows the values of a failed call).

`console_handler()`, the handler of the LOGGING config, writes records to the
real stderr and replaces sys.stderr with `StderrToLog`, which turns anything
else written there into records of the logger `stderr`: a traceback as one
ERROR record, any other line as a WARNING. Warnings (`py.warnings`) and
uncaught exceptions (`uncaught`) become records directly.
"""
import contextvars
import io
import logging
import sys
import threading
from typing import TextIO

STDERR_LOGGER = "stderr"
MAX_LINE_CHARS = 64 * 1024

_TRACEBACK_STARTS = ("Traceback (most recent call last):", "+ Exception Group Traceback (most recent call last):")

# Set while StderrToLog is writing: if logging itself writes to stderr then
# (logging's own "--- Logging error ---"), that text goes straight out.
_inside_write = contextvars.ContextVar("lifytp_inside_stderr_write", default=False)


def console_handler() -> logging.Handler:
    """The process's log handler on the real stderr, which it keeps for itself."""
    handler = logging.StreamHandler(sys.__stderr__)
    route_stderr_to_logging()
    return handler


def route_stderr_to_logging() -> None:
    """Make every write to sys.stderr, every warning and every uncaught exception a log record. Idempotent."""
    # sys.__stderr__ is None only in a process started without one: nothing to fall back to.
    if not isinstance(sys.stderr, StderrToLog) and sys.__stderr__ is not None:
        sys.stderr = StderrToLog(logging.getLogger(STDERR_LOGGER), sys.__stderr__)
    logging.captureWarnings(True)
    uncaught = logging.getLogger("uncaught")
    sys.excepthook = lambda kind, value, tb: uncaught.critical("uncaught exception", exc_info=(kind, value, tb))
    threading.excepthook = lambda args: uncaught.error(
        "uncaught exception in thread %s", getattr(args.thread, "name", "?"),
        # A value of None is formatted too; typeshed's exc_info wants one.
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback))  # type: ignore[arg-type]
    sys.unraisablehook = lambda args: uncaught.warning(
        "exception ignored in %r: %s", args.object, args.err_msg or "",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback) if args.exc_type else None)  # type: ignore[arg-type]


class StderrToLog(io.TextIOBase):
    """A text stream whose lines become log records (see the module's docstring).

    Tracebacks arrive line by line (traceback.print_exception); the lines from
    "Traceback (most recent call last):" to the exception's own line (the
    first one not indented) make one record, emitted then or at flush().
    """

    def __init__(self, logger: logging.Logger, fallback: TextIO) -> None:
        super().__init__()
        self._logger = logger
        self._fallback = fallback
        self._partial = ""
        self._traceback: list[str] = []

    # Read-only, as on io.TextIOBase at run time (typeshed declares a plain attribute).
    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fallback.fileno()

    def write(self, text: str) -> int:
        if _inside_write.get():
            self._fallback.write(text)
            return len(text)
        token = _inside_write.set(True)
        try:
            *lines, self._partial = (self._partial + text).split("\n")
            if len(self._partial) > MAX_LINE_CHARS:  # no newline coming: do not hold it forever
                lines.append(self._partial)
                self._partial = ""
            for line in lines:
                self._take(line.rstrip("\r"))
        finally:
            _inside_write.reset(token)
        return len(text)

    def flush(self) -> None:
        if _inside_write.get():
            return
        token = _inside_write.set(True)
        try:
            if self._partial:
                line, self._partial = self._partial, ""
                self._take(line)
            self._end_traceback()
        finally:
            _inside_write.reset(token)

    def _take(self, line: str) -> None:
        if self._traceback:
            self._traceback.append(line)
            if line and not line[0].isspace():  # "ValueError: ..." closes it
                self._end_traceback()
        elif line.lstrip().startswith(_TRACEBACK_STARTS):
            self._traceback = [line]
        elif line.strip():
            self._logger.warning("%s", line)

    def _end_traceback(self) -> None:
        if self._traceback:
            lines, self._traceback = self._traceback, []
            self._logger.error("%s", "\n".join(lines).strip("\n"))
