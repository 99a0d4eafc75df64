"""The library behaviour realtime.transport wraps, and the wrapper's answer to it.

Each `test_library_*` states what the pinned python-engineio or eventlet still
does wrong: when an upgrade fixes it, that test fails, and the wrapper it
justifies can go (realtime/transport.py says which)."""
import io
import json

import engineio
import eventlet
import pytest
from eventlet.websocket import WebSocketWSGI

from realtime.transport import EngineServer

PROMPTLY_SECONDS = 2  # a deadline for "it hangs", far above what an answer takes


def call(server, method, query, body=b""):
    """(status, body) of one Engine.IO request, made in-process."""
    answered = {}
    environ = {"REQUEST_METHOD": method, "QUERY_STRING": query, "PATH_INFO": "/socket.io/",
               "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
    chunks = server.handle_request(environ, lambda status, headers: answered.update(status=status))
    return int(answered["status"].split()[0]), b"".join(chunks)


def open_session(server):
    status, body = call(server, "GET", "EIO=4&transport=polling")
    assert status == 200
    return json.loads(body[1:])["sid"]


def post_within_deadline(server, sid, payload):
    with eventlet.Timeout(PROMPTLY_SECONDS):
        return call(server, "POST", f"EIO=4&transport=polling&sid={sid}", payload)


@pytest.fixture
def servers():
    made = []

    def make(server_class):
        server = server_class(async_mode="eventlet", monitor_clients=False, logger=False)
        made.append(server)
        return server
    yield make
    for server in made:
        server.disconnect()


def test_library_engineio_hangs_on_a_refused_packet_when_no_poll_is_waiting(servers):
    library = servers(engineio.Server)
    sid = open_session(library)
    with pytest.raises(eventlet.Timeout):
        post_within_deadline(library, sid, b"9")
    library.sockets.pop(sid).closed = True


@pytest.mark.parametrize("payload", [b"9", b"6", b"2probe", b"0", b"4hi\x1e9"])
def test_a_refused_packet_is_answered_at_once_and_ends_the_session(servers, payload):
    server = servers(EngineServer)
    sid = open_session(server)
    assert post_within_deadline(server, sid, payload)[0] == 400
    assert sid not in server.sockets
    assert post_within_deadline(server, sid, b"40")[0] == 400


def test_a_poll_that_is_waiting_still_gets_the_close_packet(servers):
    server = servers(EngineServer)
    sid = open_session(server)
    waiting = eventlet.spawn(call, server, "GET", f"EIO=4&transport=polling&sid={sid}")
    eventlet.sleep(0.1)
    server.disconnect(sid)
    with eventlet.Timeout(PROMPTLY_SECONDS):
        status, body = waiting.wait()
    assert (status, body) == (200, b"1")


def test_library_engineio_raises_keyerror_for_a_post_to_a_session_its_client_closed(servers):
    library = servers(engineio.Server)
    sid = open_session(library)
    assert post_within_deadline(library, sid, b"1")[0] == 200
    with pytest.raises(KeyError):
        post_within_deadline(library, sid, b"40")


def test_a_post_to_a_session_its_client_closed_is_told_the_session_is_unknown(servers):
    server = servers(EngineServer)
    sid = open_session(server)
    assert post_within_deadline(server, sid, b"1")[0] == 200
    status, body = post_within_deadline(server, sid, b"40")
    assert status == 400 and json.loads(body).startswith("Invalid session")


class Connection:
    def sendall(self, data):
        pass


def websocket_environ(**headers):
    return {"REQUEST_METHOD": "GET", "HTTP_CONNECTION": "Upgrade", "HTTP_UPGRADE": "websocket",
            "eventlet.input": type("Input", (), {"get_socket": lambda self: Connection()})(), **headers}


def test_library_eventlet_websocket_without_a_version_takes_a_legacy_path_that_crashes_without_origin():
    with pytest.raises(AttributeError):
        WebSocketWSGI(lambda ws: None)(websocket_environ(), lambda status, headers: None)


def test_library_eventlet_websocket_crashes_on_window_bits_that_are_not_numbers():
    environ = websocket_environ(HTTP_SEC_WEBSOCKET_VERSION="13", HTTP_SEC_WEBSOCKET_KEY="dGhlIHNhbXBsZSBub25jZQ==",
                                HTTP_SEC_WEBSOCKET_EXTENSIONS="permessage-deflate; server_max_window_bits=x")
    with pytest.raises(ValueError):
        WebSocketWSGI(lambda ws: None)(environ, lambda status, headers: None)
