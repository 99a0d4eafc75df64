"""The Engine.IO transport on the public listener: no request hangs, none is a 5xx.

python-engineio and eventlet.websocket, as pinned, have three sharp edges that
a client can reach with one request. Each is wrapped here, in one place:

- `EngineServer.disconnect`. Engine.IO closes a session whose client sent a
  packet it refuses (an unknown type, a PING, a NOOP, a payload over the limit)
  with `Socket.close(wait=True)`, which joins the session's queue: it returns
  once a long poll already waiting has taken the CLOSE packet, and never
  otherwise (a poll that comes later finds the session closed and does not
  read it). The POST that sent the packet then holds its greenthread and its
  connection for good. Closing without the wait loses nothing: a poll or a
  websocket writer that is waiting holds the socket and still gets the packet.
- `EngineServer.handle_request`. A session closed by its client (`1`), by a
  ping timeout or by its websocket ending stays in `sockets` until its next
  request; a GET then gets a 400, a POST a `KeyError` (a 500). Such a session
  is forgotten first, so both are told it is unknown. And a POST whose body
  is not an Engine.IO payload at all (not UTF-8, an empty packet, more
  packets than a payload may hold) is refused as a packet is, where Engine.IO
  would log the error and answer 200.
- `transport_app` refuses what eventlet.websocket would mishandle before it
  sees it: a websocket request without `Sec-WebSocket-Version` goes down its
  legacy (2010 draft) path, which fails on a missing Origin (a 500); an
  extension offer whose window bits are not a number is a ValueError (a 500);
  an upgrade without `Connection: Upgrade` makes Engine.IO answer a new
  session's packets without a status line. And every refusal that Engine.IO
  (text/plain) or eventlet.websocket (empty) words itself is answered in the
  API's error format instead, with the same status and headers.

tests/unit/test_realtime_transport.py fails if an upgrade of either library
changes the behaviour wrapped here.
"""
import base64
import binascii
import io
import json
from urllib.parse import parse_qs

import engineio
import engineio.payload

from http_edge.errors import error_body, json_response

WEBSOCKET_VERSION = "13"  # RFC 6455, what every browser and client library speaks
_WINDOW_BITS = ("server_max_window_bits", "client_max_window_bits")

_NOT_AN_UPGRADE = ("WEBSOCKET_HANDSHAKE_INVALID",
                   "A websocket needs Upgrade: websocket, Connection: Upgrade and transport=websocket.")
# Engine.IO's own refusals (engineio.base_server), by the start of their text.
_ENGINEIO_REFUSALS = (
    ("Invalid session", "SESSION_UNKNOWN",
     "No such Engine.IO session: it has ended or never existed. Connect again."),
    ("Not connected", "SESSION_UNKNOWN",
     "No such Engine.IO session: it has ended or never existed. Connect again."),
    ("Unexpected HTTP request", "SESSION_UPGRADED",
     "This session has moved to a websocket; it takes no more polling requests."),
    ("Invalid transport", "TRANSPORT_INVALID", "Use transport=polling or transport=websocket."),
    ("The client is using an unsupported version", "PROTOCOL_UNSUPPORTED",
     "Use Engine.IO 4 (EIO=4), as Socket.IO clients 3 and later do."),
    ("Invalid websocket upgrade", *_NOT_AN_UPGRADE),
    ("Invalid JSONP index number", "JSONP_INDEX_INVALID", "The JSONP index (j) must be a number."),
    ("Not an accepted origin", "ORIGIN_REFUSED", "This origin may not connect."),
    ("Bad Request", "PACKET_REFUSED",
     "Engine.IO refused a packet (of a type a client does not send, or over the size limit) "
     "and closed the session. Connect again."),
)
# Any other refusal of the transport, by status.
_REFUSALS_BY_STATUS = {
    400: ("MALFORMED_REQUEST", "The Engine.IO request is not valid."),
    403: ("ORIGIN_REFUSED", "This origin may not connect."),
    404: ("NOT_FOUND", "No such endpoint."),
    405: ("METHOD_NOT_ALLOWED", "That method is not allowed here."),
    426: ("WEBSOCKET_VERSION_UNSUPPORTED", "Use WebSocket version 13 (RFC 6455)."),
}
_ALLOWED_METHODS = "GET, POST, OPTIONS"


class EngineServer(engineio.Server):
    """python-engineio's server, closing sessions without waiting on them (see the module's docstring)."""

    def disconnect(self, sid=None):
        sids = [sid] if sid is not None else list(self.sockets)
        for each in sids:
            socket = self.sockets.pop(each, None)
            if socket is not None:
                socket.close(wait=False, reason=self.reason.SERVER_DISCONNECT)

    def handle_request(self, environ, start_response):
        sid = parse_qs(environ.get("QUERY_STRING", "")).get("sid", [None])[0]
        socket = self.sockets.get(sid)
        if socket is not None and socket.closed:
            del self.sockets[sid]  # as Engine.IO's GET does; its POST raises KeyError instead
        elif socket is not None and environ.get("REQUEST_METHOD") == "POST" and not _readable_payload(environ):
            # Engine.IO would log the decoding error and answer 200, keeping a
            # session whose client speaks no Engine.IO: refused like a packet.
            self.disconnect(sid)
            start_response("400 BAD REQUEST", [("Content-Type", "text/plain")])
            return [b"Bad Request"]
        return super().handle_request(environ, start_response)


def _readable_payload(environ):
    """Whether a polling POST's body decodes as an Engine.IO payload; the body
    is put back for Engine.IO to read (transport_app has bounded its length)."""
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    environ["wsgi.input"] = io.BytesIO(body)
    try:
        engineio.payload.Payload(encoded_payload=body.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError among them
        return False
    return True


def transport_app(app, max_payload_bytes):
    """The Socket.IO WSGI app, behind the checks above and answering refusals in the API's format."""
    def serve(environ, start_response):
        wants_websocket = _wants_websocket(environ)
        refusal = (_websocket_handshake_refusal(environ) if wants_websocket else None) or \
            _post_refusal(environ, max_payload_bytes)
        if refusal is not None:
            return refusal(environ, start_response)
        held = {}

        def start(status, headers, exc_info=None):
            if int(status.split(None, 1)[0]) >= 400 and not _is_json(headers):
                held["status"], held["headers"] = status, headers
                return lambda data: None  # neither library writes; the body is returned
            return start_response(status, headers, exc_info)

        body = app(environ, start)
        if not held:
            return body
        refusal = _json_refusal(held["status"], held["headers"], _read_all(body))
        if wants_websocket:
            refusal.headers["Connection"] = "close"  # see _websocket_handshake_refusal
        return refusal(environ, start_response)
    return serve


# Requests refused before the libraries see them ---------------------------------------

def _wants_websocket(environ):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    return environ.get("REQUEST_METHOD") == "GET" and (
        query.get("transport", [""])[0] == "websocket" or "websocket" in environ.get("HTTP_UPGRADE", "").lower())


def _websocket_handshake_refusal(environ):
    """A refusal of a websocket request that is not a valid RFC 6455 handshake, or None.

    Like eventlet's own refusals it closes the connection: the client meant
    to leave HTTP on it."""
    problem = _handshake_problem(environ, parse_qs(environ.get("QUERY_STRING", "")))
    if problem is None:
        return None
    status, code, message, headers = problem
    return _refusal(status, code, message, headers=[("Connection", "close"), *headers])


def _handshake_problem(environ, query):
    connection = [token.strip() for token in environ.get("HTTP_CONNECTION", "").lower().split(",")]
    if ("upgrade" not in connection or environ.get("HTTP_UPGRADE", "").strip().lower() != "websocket"
            or query.get("transport", [""])[0] != "websocket"):
        return 400, *_NOT_AN_UPGRADE, []
    version = environ.get("HTTP_SEC_WEBSOCKET_VERSION")
    if version is None:
        return 400, "WEBSOCKET_HANDSHAKE_INVALID", "A websocket needs Sec-WebSocket-Version: 13.", []
    if version.strip() != WEBSOCKET_VERSION:
        return 426, *_REFUSALS_BY_STATUS[426], [("Sec-WebSocket-Version", WEBSOCKET_VERSION)]
    if not _is_websocket_key(environ.get("HTTP_SEC_WEBSOCKET_KEY", "")):
        return 400, "WEBSOCKET_HANDSHAKE_INVALID", "A websocket needs Sec-WebSocket-Key: 16 random bytes in base64.", []
    if not _window_bits_are_numbers(environ.get("HTTP_SEC_WEBSOCKET_EXTENSIONS", "")):
        return (400, "WEBSOCKET_HANDSHAKE_INVALID",
                "Window bits in Sec-WebSocket-Extensions must be numbers from 8 to 15.", [])
    return None


def _is_websocket_key(key):
    try:
        return len(base64.b64decode(key.strip(), validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


def _window_bits_are_numbers(extensions):
    """eventlet.websocket int()s these parameters of a permessage-deflate offer, unguarded."""
    for offer in extensions.split(","):
        for parameter in offer.split(";")[1:]:
            name, has_value, value = parameter.partition("=")
            if name.strip().lower() in _WINDOW_BITS and has_value:
                value = value.strip().strip('"')
                if not (value.isdigit() and 8 <= int(value) <= 15):
                    return False
    return True


def _post_refusal(environ, max_payload_bytes):
    """A polling POST's body must have a length Engine.IO can read, under its limit."""
    if environ.get("REQUEST_METHOD") != "POST":
        return None
    length = environ.get("CONTENT_LENGTH")
    if not length:
        # Engine.IO reads Content-Length bytes: a chunked body would be dropped unread.
        return _refusal(411, "LENGTH_REQUIRED", "Send the payload with a Content-Length.")
    if int(length) > max_payload_bytes:  # the listener has checked it is decimal
        return _refusal(413, "PAYLOAD_TOO_LARGE", f"A payload may have at most {max_payload_bytes} bytes.",
                        details={"max_bytes": [str(max_payload_bytes)]})
    return None


# Refusals in the API's error format ---------------------------------------------------

def _json_refusal(status, headers, text):
    code = int(status.split(None, 1)[0])
    try:
        said = json.loads(text.decode("utf-8")) if text else ""
    except ValueError:
        said = text.decode("utf-8", "replace")
    said = said if isinstance(said, str) else ""
    error_code, message = next(
        ((error_code, message) for start, error_code, message in _ENGINEIO_REFUSALS if said.startswith(start)),
        _REFUSALS_BY_STATUS.get(code, ("TRANSPORT_REFUSED", "The Engine.IO request was refused.")))
    # CORS headers, Connection: close and Sec-WebSocket-Version stay.
    kept = [(name, value) for name, value in headers if name.lower() not in ("content-type", "content-length")]
    if code == 405:
        kept.append(("Allow", _ALLOWED_METHODS))
    return _refusal(code, error_code, message, headers=kept)


def _refusal(status, code, message, headers=None, details=None):
    return json_response(error_body(code, message, details), status, headers)


def _is_json(headers):
    return any(name.lower() == "content-type" and value.startswith("application/json") for name, value in headers)


def _read_all(body):
    try:
        return b"".join(body)
    finally:
        if hasattr(body, "close"):
            body.close()
