"""Engine.IO and websocket requests a client can craft, against a real system
whose connection pool is small (HTTP_MAX_CONNECTIONS).

A polling POST of a packet Engine.IO refuses used to hang for good (a few
hundred filled the pool every service of the process shares), a later POST to
that session was a 500, and so was a websocket request without a version.
Each is now answered at once, as a 4xx in the API's error format (or, for a
client's own close packet, a 200), /health answers throughout, and real
Socket.IO clients still connect, over polling and websocket, again and again.
"""
import json
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import socketio

from tests.conftest import TEST_PORT, system_of_its_own

pytestmark = pytest.mark.integration

PORT_OFFSET = 150
PORT = TEST_PORT + PORT_OFFSET
# Above one wave of hostile requests, so none waits in the kernel's accept
# queue, and below two: had the first wave held its connections, the second
# (and /health) would find no free one.
MAX_CONNECTIONS = 400
HANGING_KIND_AT_ONCE = 300
# How long this side waits for an answer before calling it stuck: far longer
# than an answer takes. Nothing here measures speed.
PATIENCE_SECONDS = 20
KEY = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
UPGRADE = b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
VERSION = b"Sec-WebSocket-Version: 13\r\n"


@pytest.fixture(scope="module")
def edge(config):
    with system_of_its_own("hostile_transport", PORT_OFFSET, env={"HTTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS)}) \
            as running:
        yield running


@pytest.fixture(scope="module")
def token(edge):
    name = "h" + uuid.uuid4().hex[:12]
    answer = requests.post(edge.base_url + "/auth/register", timeout=PATIENCE_SECONDS, json={
        "email": name + "@example.com", "username": name, "password": "correct horse battery"})
    assert answer.status_code == 201, answer.text
    return answer.json()["access_token"]


def engineio_url(edge, query):
    return f"{edge.base_url}/socket.io/?{query}"


def open_session(edge, token=None):
    """A polling Engine.IO session (joined to Socket.IO with token, if given); its sid."""
    handshake = requests.get(engineio_url(edge, "EIO=4&transport=polling"), timeout=PATIENCE_SECONDS)
    assert handshake.status_code == 200, handshake.text
    sid = json.loads(handshake.text[1:])["sid"]
    if token is not None:
        assert post(edge, sid, "40" + json.dumps({"token": token})).status_code == 200
        assert poll(edge, sid).text.startswith("40")
    return sid


def post(edge, sid, payload):
    return requests.post(engineio_url(edge, f"EIO=4&transport=polling&sid={sid}"), data=payload.encode(),
                         headers={"Content-Type": "text/plain;charset=UTF-8"}, timeout=PATIENCE_SECONDS)


def poll(edge, sid):
    return requests.get(engineio_url(edge, f"EIO=4&transport=polling&sid={sid}"), timeout=PATIENCE_SECONDS)


def refusal_code(response, status):
    """The error code of a refusal in the API's format, having checked its status and shape."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"} and error["message"]
    return error["code"]


def health_answers(edge):
    return requests.get(edge.base_url + "/health", timeout=PATIENCE_SECONDS).status_code == 200


# Polling -------------------------------------------------------------------------------

@pytest.mark.parametrize("packet", ["9", "6", "2probe", "0", "2", "4hi\x1e9",
                                    # Not a payload at all: an empty packet, more packets than one may hold.
                                    "4a\x1e\x1e4b", "\x1e".join(["4x"] * 17)])
def test_a_refused_packet_is_a_json_400_at_once_and_the_session_ends(edge, token, packet):
    sid = open_session(edge, token)
    assert refusal_code(post(edge, sid, packet), 400) == "PACKET_REFUSED"
    assert refusal_code(post(edge, sid, "42[\"typing\",{}]"), 400) == "SESSION_UNKNOWN"
    assert refusal_code(poll(edge, sid), 400) == "SESSION_UNKNOWN"


def test_a_payload_that_is_not_utf8_is_a_json_400_and_the_session_ends(edge, token):
    sid = open_session(edge, token)
    answer = requests.post(engineio_url(edge, f"EIO=4&transport=polling&sid={sid}"), data=b"4\xff\xfe",
                           headers={"Content-Type": "text/plain;charset=UTF-8"}, timeout=PATIENCE_SECONDS)
    assert refusal_code(answer, 400) == "PACKET_REFUSED"
    assert refusal_code(poll(edge, sid), 400) == "SESSION_UNKNOWN"


def test_after_a_client_closes_its_session_later_requests_are_told_it_ended(edge, token):
    sid = open_session(edge, token)
    closed = post(edge, sid, "1")  # what socket.io-client sends when it disconnects over polling
    assert (closed.status_code, closed.text) == (200, "OK")
    assert refusal_code(post(edge, sid, "40"), 400) == "SESSION_UNKNOWN"
    assert refusal_code(poll(edge, sid), 400) == "SESSION_UNKNOWN"


@pytest.mark.parametrize("wave", [1, 2])
def test_hundreds_of_refused_packets_at_once_are_all_answered_and_health_answers_throughout(edge, wave):
    sids = [open_session(edge) for _ in range(HANGING_KIND_AT_ONCE)]
    packets = ["9", "6", "2probe"]

    def hostile(number):
        return post(edge, sids[number], packets[number % len(packets)])

    with ThreadPoolExecutor(max_workers=HANGING_KIND_AT_ONCE + 1) as pool:
        answers = [pool.submit(hostile, number) for number in range(HANGING_KIND_AT_ONCE)]
        during = pool.submit(health_answers, edge)
        assert [answer.result().status_code for answer in answers] == [400] * HANGING_KIND_AT_ONCE
        assert during.result()
    assert health_answers(edge)
    assert refusal_code(post(edge, sids[0], "40"), 400) == "SESSION_UNKNOWN"


def test_a_payload_without_a_length_or_over_the_limit_is_refused_before_it_is_read(edge):
    sid = open_session(edge)
    url = engineio_url(edge, f"EIO=4&transport=polling&sid={sid}")
    chunked = requests.post(url, data=iter([b"4", b"hi"]), timeout=PATIENCE_SECONDS)
    assert refusal_code(chunked, 411) == "LENGTH_REQUIRED"
    assert refusal_code(requests.post(url, data=b"4" + b"x" * 17000, timeout=PATIENCE_SECONDS),
                        413) == "PAYLOAD_TOO_LARGE"
    assert post(edge, sid, "3").status_code == 200  # the session is still there


@pytest.mark.parametrize(("query", "code"), [
    ("EIO=3&transport=polling", "PROTOCOL_UNSUPPORTED"),
    ("transport=polling", "PROTOCOL_UNSUPPORTED"),
    ("EIO=4&transport=bogus", "TRANSPORT_INVALID"),
    ("EIO=4&transport=polling&sid=nosuchsession", "SESSION_UNKNOWN"),
    ("EIO=4&transport=polling&j=x", "JSONP_INDEX_INVALID"),
])
def test_engineio_refusals_are_in_the_api_error_format(edge, query, code):
    assert refusal_code(requests.get(engineio_url(edge, query), timeout=PATIENCE_SECONDS), 400) == code
    if "sid=" in query:
        assert refusal_code(requests.post(engineio_url(edge, query), data=b"40", timeout=PATIENCE_SECONDS),
                            400) == code


def test_other_methods_and_paths_under_socketio_are_json_refusals(edge):
    put = requests.put(engineio_url(edge, "EIO=4&transport=polling"), data=b"40", timeout=PATIENCE_SECONDS)
    assert refusal_code(put, 405) == "METHOD_NOT_ALLOWED"
    assert put.headers["Allow"] == "GET, POST, OPTIONS"
    bare = requests.get(edge.base_url + "/socket.io", timeout=PATIENCE_SECONDS)
    assert refusal_code(bare, 404) == "NOT_FOUND"


# Websocket handshakes ------------------------------------------------------------------

def handshake(edge, headers, query=b"EIO=4&transport=websocket"):
    """(status, headers, body) of a raw websocket request, read until the server closes."""
    with socket.create_connection(("127.0.0.1", edge.port), timeout=PATIENCE_SECONDS) as connection:
        connection.sendall(b"GET /socket.io/?" + query + b" HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    named = dict((name.strip().lower(), value.strip()) for name, _, value in (line.partition(":") for line in lines))
    return int(status_line.split()[1]), named, body[:int(named.get("content-length", "0"))]


@pytest.mark.parametrize(("headers", "status"), [
    (UPGRADE + KEY, 400),  # no version: eventlet's legacy path, a 500 without Origin
    (UPGRADE + KEY + b"Origin: https://app.example\r\n", 400),  # ... and a 2010-draft websocket with one
    (UPGRADE + b"Sec-WebSocket-Key1: 1 2\r\nSec-WebSocket-Key2: 3 4\r\n", 400),
    (UPGRADE + KEY + b"Sec-WebSocket-Version: 99\r\n", 426),
    (UPGRADE + VERSION, 400),  # no key
    (UPGRADE + VERSION + b"Sec-WebSocket-Key: short\r\n", 400),
    (UPGRADE + KEY + VERSION + b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=x\r\n", 400),
    (UPGRADE + KEY + VERSION + b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=99\r\n",
     400),
    (b"Upgrade: websocket\r\n" + KEY + VERSION, 400),  # no Connection: Upgrade
    (KEY + VERSION, 400),  # transport=websocket, no upgrade at all
])
def test_a_websocket_request_that_is_not_a_valid_handshake_is_a_json_4xx(edge, headers, status):
    answered, answer_headers, body = handshake(edge, headers)
    assert answered == status, body
    assert answer_headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] in ("WEBSOCKET_HANDSHAKE_INVALID", "WEBSOCKET_VERSION_UNSUPPORTED")
    if status == 426:
        assert answer_headers["sec-websocket-version"] == "13"
    assert health_answers(edge)


def test_a_websocket_for_an_unknown_session_is_a_json_400(edge):
    status, headers, body = handshake(edge, UPGRADE + KEY + VERSION, b"EIO=4&transport=websocket&sid=nosuchsession")
    assert status == 400 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "SESSION_UNKNOWN"


# Real clients ----------------------------------------------------------------------------

@pytest.mark.parametrize("transports", [["polling"], ["websocket"], ["polling", "websocket"]])
def test_real_clients_still_connect_talk_and_connect_again(edge, token, transports):
    for _ in range(2):
        client = socketio.Client(reconnection=False)
        client.connect(edge.base_url, auth={"token": token}, transports=transports, wait_timeout=10)
        try:
            ack = client.call("no-such-event", {}, timeout=PATIENCE_SECONDS)
            assert ack["error"]["code"] == "UNKNOWN_EVENT"
        finally:
            client.disconnect()
    assert health_answers(edge)
