"""One HTTP/1.1 connection of the shared listener: deadlines, body framing, JSON refusals.

eventlet.wsgi's protocol, with what a public listener needs and it lacks:

- Deadlines. A connection waits at most `keepalive_timeout` for the first byte
  of its next request (idle, or between keep-alive requests); the request line
  and headers must then be complete within `header_timeout` in all (a client
  sending a byte now and then gains nothing); each read or write of a body
  waits at most `socket_timeout` (eventlet's own setting, the body timeout).
  A Socket.IO websocket sets its own timeout after the upgrade, and a long
  poll waits in the application, not on the socket, so neither is cut short.
- Framing. One way to know where a body ends: one decimal Content-Length, or
  `Transfer-Encoding: chunked`, never both, never a list; anything else is a
  400 (a proxy and this server could otherwise disagree about where the next
  request starts). A chunked body is marked `wsgi.input_terminated`, so
  werkzeug reads it (instead of reading it as empty), within the same limits.
- Refusals in the API's error format. Every status this layer answers itself
  (400, 408, 414, 431, 501, 505) is JSON, as every other error is, and is
  logged as a record, not printed to stderr as http.server does.
- Connections are not kept alive past a doubtful body: an answer given before
  its body was read (a 401, a 413) closes the connection rather than reading
  an unbounded body only to discard it, and so does any answer that says
  `Connection: close` (a draining replica's 503).
"""
import json
import logging
import re
import socket
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

import eventlet
from eventlet.support import get_errno
from eventlet.wsgi import (
    BROKEN_SOCK,
    STATE_REQUEST,
    ChunkReadError,
    FileObjectForHeaders,
    HeaderLineTooLong,
    HeadersTooLarge,
)
from nameko.web.server import HttpOnlyProtocol

from http_edge.access import log_refused
from http_edge.errors import RequestTimeout, error_body
from http_edge.request_ids import REQUEST_ID_HEADER
from services.shared.errors import MalformedRequest

log = logging.getLogger("http_edge.wsgi")

# A body left unread up to this size is read and dropped to keep the
# connection; a larger one closes it.
MAX_DISCARDED_BODY_BYTES = 64 * 1024
# Closing a connection the client may still be sending on: read and drop at
# most this much, for at most this long, so that its answer reaches it.
MAX_LINGER_BYTES = 1024 * 1024
LINGER_SECONDS = 1

_DECIMAL = re.compile(r"[0-9]+")
_HTTP_VERSIONS = ("HTTP/1.0", "HTTP/1.1")

# What http.server's parse_request refuses, in the API's words.
_PARSE_REFUSALS = {
    400: ("MALFORMED_REQUEST", "The request line or headers are not valid HTTP/1.1."),
    431: ("HEADERS_TOO_LARGE", "The request headers are too large or too many."),
    505: ("HTTP_VERSION_NOT_SUPPORTED", "Use HTTP/1.1 or HTTP/1.0."),
}


class EdgeProtocol(HttpOnlyProtocol):
    """The protocol of the shared listener (see the module's docstring).

    Reads its settings from the eventlet.wsgi Server: `keepalive_timeout`,
    `header_timeout` and `socket_timeout` (seconds)."""

    lingering = False  # whether unread input may remain when the connection closes
    # Set by http.server's StreamRequestHandler; _read_head wraps it while it reads the head.
    rfile: Any

    def handle_one_request(self):
        if not self._next_request_begins():
            self.close_connection = 1
            return
        if not self._read_head_in_time() or not self._framing_is_unambiguous():
            self.close_connection = 1
            return
        self.environ = self.get_environ()
        self.application = self._application
        self.server.outstanding_requests += 1
        try:
            self.handle_one_response()
        except OSError as exc:
            if get_errno(exc) not in BROKEN_SOCK:
                raise
        finally:
            self.server.outstanding_requests -= 1

    # Deadlines ----------------------------------------------------------------------

    def _next_request_begins(self):
        """Wait, at most the keep-alive timeout, for the first byte of a request."""
        if self.rfile.closed:
            return False
        try:
            self.connection.settimeout(self.server.keepalive_timeout)
            return bool(self.rfile.peek(1))
        except OSError:  # idle too long (a timeout is an OSError), or the client left
            return False
        finally:
            try:
                self.connection.settimeout(self.server.socket_timeout)
            except OSError:
                pass

    def _read_head_in_time(self):
        deadline = eventlet.Timeout(self.server.header_timeout)
        try:
            return self._read_head()
        except eventlet.Timeout as expired:
            if expired is not deadline:
                raise
        except TimeoutError:  # one read waited longer than the body timeout
            pass
        finally:
            deadline.cancel()
        self.refuse(408, "REQUEST_TIMEOUT", "The request headers did not arrive in time.")
        return False

    def _read_head(self):
        self.command, self.raw_requestline = None, b""  # not the previous request's, should this one be refused
        self.raw_requestline = self.rfile.readline(self.server.url_length_limit)
        self.conn_state[2] = STATE_REQUEST
        if not self.raw_requestline:
            return False
        if len(self.raw_requestline) >= self.server.url_length_limit:
            self.refuse(414, "URI_TOO_LONG", "The request line is too long.")
            return False
        plain_rfile = self.rfile
        self.rfile = FileObjectForHeaders(plain_rfile)
        try:
            if not self.parse_request():  # refused through send_error, or a blank line
                return False
        except (HeaderLineTooLong, HeadersTooLarge):
            self.refuse(431, *_PARSE_REFUSALS[431])
            return False
        finally:
            self.rfile = plain_rfile
        if self.request_version not in _HTTP_VERSIONS:  # HTTP/0.9 has no headers to answer with
            self.refuse(400, *_PARSE_REFUSALS[400])
            return False
        return True

    # Framing ------------------------------------------------------------------------

    def _framing_is_unambiguous(self):
        lengths = [value.strip() for value in self.headers.get_all("Content-Length") or ()]
        codings = [coding.strip().lower() for value in self.headers.get_all("Transfer-Encoding") or ()
                   for coding in value.split(",")]
        if len(lengths) > 1 or (lengths and codings):
            self.refuse(400, "CONFLICTING_BODY_LENGTH",
                        "Send one Content-Length, or Transfer-Encoding: chunked, not both or several.")
        elif lengths and not _DECIMAL.fullmatch(lengths[0]):
            self.refuse(400, "INVALID_CONTENT_LENGTH", "Content-Length must be a decimal number of bytes.")
        elif codings and (codings[-1] != "chunked" or codings.count("chunked") > 1
                          or self.request_version != "HTTP/1.1"):
            # RFC 9112 6.1 and 6.3: unless chunked comes once and last, nobody knows where the body ends.
            self.refuse(400, "MALFORMED_TRANSFER_ENCODING",
                        "A body sent in parts must be chunked once, over HTTP/1.1.")
        elif codings and codings != ["chunked"]:
            self.refuse(501, "UNSUPPORTED_TRANSFER_ENCODING", "Only the chunked transfer coding is supported.")
        else:
            return True
        return False

    def get_environ(self):
        environ = super().get_environ()
        body = environ["eventlet.input"]  # eventlet's own, which it drains after the answer
        environ["wsgi.input"] = BodyStream(body)
        if body.chunked_input:
            environ["wsgi.input_terminated"] = True
        return environ

    # The answer ---------------------------------------------------------------------

    def _application(self, environ, start_response):
        def start(status, headers, exc_info=None):
            if self._body_left_unread():
                self.lingering = True
            if self.lingering or _says_close(headers):
                # eventlet then writes `Connection: close` itself, and closes.
                self.close_connection = 1
                headers = [(name, value) for name, value in headers if name.lower() != "connection"]
            return start_response(status, headers, exc_info)
        return self.server.app(environ, start)

    def _body_left_unread(self):
        body = self.environ["eventlet.input"]
        if body.chunked_input:
            return body.chunk_length != 0  # 0 once the last chunk is read
        return (body.content_length or 0) - body.position > MAX_DISCARDED_BODY_BYTES

    def refuse(self, status, code, message):
        """Answer a request no application will see, in the API's error format, and close."""
        request_id = uuid.uuid4().hex
        body = json.dumps(error_body(code, message), separators=(",", ":")).encode()
        head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n"
                f"{REQUEST_ID_HEADER}: {request_id}\r\n"
                "X-Content-Type-Options: nosniff\r\n"
                "Connection: close\r\n\r\n")
        self.close_connection = 1
        self.lingering = True  # the rest of the request may still be on its way
        # http.server may refuse the request line before it sets self.command.
        method = self.command or self.raw_requestline.split(b" ", 1)[0][:16].decode("latin-1")
        try:
            self.wfile.write(head.encode("ascii") + (b"" if method == "HEAD" else body))
            self.wfile.flush()
        except OSError:
            pass  # the client is gone; nothing to tell it
        log_refused(method, status, code, request_id)

    # Closing ------------------------------------------------------------------------

    def finish(self):
        try:
            BaseHTTPRequestHandler.finish(self)  # flushes the answer
        except OSError as exc:
            if get_errno(exc) not in BROKEN_SOCK:
                raise
        if self.lingering:
            self._drain()
        self.connection.close()

    def _drain(self):
        """A lingering close: stop sending, read what the client is still
        sending for a moment, then close. Closing with unread input resets the
        connection, and the client may lose the answer it was just sent."""
        deadline = eventlet.Timeout(LINGER_SECONDS)
        try:
            self.connection.shutdown(socket.SHUT_WR)
            drained = 0
            while drained < MAX_LINGER_BYTES and (chunk := self.connection.recv(65536)):
                drained += len(chunk)
        except eventlet.Timeout as expired:
            if expired is not deadline:
                raise
        except OSError:  # the client is gone, or waited out the body timeout
            pass
        finally:
            deadline.cancel()

    # http.server's own error page and log lines ------------------------------------

    def send_error(self, code, message=None, explain=None):
        self.refuse(int(code), *_PARSE_REFUSALS.get(int(code), _PARSE_REFUSALS[400]))

    def log_message(self, format, *args):
        log.debug(format, *args)


class BodyStream:
    """The request body as the application reads it (`wsgi.input`).

    A read that waits longer than the body timeout becomes a 408, and a
    malformed or truncated chunked body a 400, whoever reads it (JSON,
    multipart or Engine.IO), instead of an OSError that would be a 500.
    """

    def __init__(self, body):
        self._body = body

    def read(self, size=None):
        return self._guarded(self._body.read, size)

    def readline(self, size=None):
        return self._guarded(self._body.readline, size)

    def readlines(self, hint=None):
        return self._guarded(self._body.readlines, hint)

    def __iter__(self):
        return iter(self.read, b"")

    def _guarded(self, read, size):
        try:
            return read(size)
        except TimeoutError:
            raise RequestTimeout() from None
        except ChunkReadError:
            raise MalformedRequest("The chunked body is malformed.", code="MALFORMED_CHUNKED_BODY") from None
        except OSError as exc:
            if get_errno(exc) in BROKEN_SOCK:
                raise
            # eventlet's "unexpected end of file while parsing chunked data"
            raise MalformedRequest("The body ended before its last chunk.", code="INCOMPLETE_BODY") from None


def _says_close(headers):
    return any(name.lower() == "connection" and "close" in value.lower() for name, value in headers)
