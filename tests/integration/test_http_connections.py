"""The HTTP listener under hostile connections, against a real system whose
timeouts are set short through its config.

Idle, half-sent and slowly sent requests are closed after their timeout, so
they cannot fill the connection pool every service of a process shares; what
eventlet.wsgi answers itself is JSON in the API's error format; chunked bodies
are read, and a body whose length is stated twice or two ways is refused.
Socket.IO long-polling and websockets on the same listener outlive every one
of those timeouts.
"""
import http.client
import json
import socket
import time
import uuid

import pytest
import requests
import socketio

from tests.conftest import TEST_PORT, system_of_its_own

pytestmark = pytest.mark.integration

PORT_OFFSET = 130
PORT = TEST_PORT + PORT_OFFSET
MAX_CONNECTIONS = 12
SETTINGS = {
    "HTTP_HEADER_TIMEOUT_SECONDS": "1",
    "HTTP_BODY_TIMEOUT_SECONDS": "1",
    "HTTP_KEEPALIVE_TIMEOUT_SECONDS": "2",
    "HTTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
}
# How long this side waits for the server before calling it stuck: many times
# the timeouts above. Nothing here measures speed.
PATIENCE_SECONDS = 20
MAX_JSON_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def edge(config):
    with system_of_its_own("connections", PORT_OFFSET, env=SETTINGS) as running:
        yield running


def connect():
    connection = socket.create_connection(("127.0.0.1", PORT), timeout=PATIENCE_SECONDS)
    connection.settimeout(PATIENCE_SECONDS)
    return connection


def read_until_closed(connection):
    """Everything the server sends until it closes the connection (socket.timeout if it never does)."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def parse(raw):
    """(status, headers, body) of the first answer in raw."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    length = int(headers.get("content-length", ["0"])[0])
    return int(status_line.split()[1]), headers, rest[:length]


def exchange(raw):
    """Send raw bytes, read until the server closes; the parsed answer."""
    with connect() as connection:
        connection.sendall(raw)
        return parse(read_until_closed(connection))


def error_code(body):
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message", "details"}
    return error["code"]


# Timeouts ---------------------------------------------------------------------------

def test_an_idle_connection_is_closed_after_the_keepalive_timeout(edge):
    with connect() as connection:
        assert read_until_closed(connection) == b""  # closed, and nothing was said


def test_a_kept_alive_connection_serves_requests_then_closes_when_idle(edge):
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=PATIENCE_SECONDS)
    try:
        for _ in range(3):
            connection.request("GET", "/health", headers={"Connection": "keep-alive"})
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 200 and answer.getheader("Keep-Alive") == "timeout=2"
        first_socket = connection.sock
        assert read_until_closed(first_socket) == b""
    finally:
        connection.close()


def test_half_sent_headers_get_a_408_and_the_connection_closes(edge):
    status, headers, body = exchange(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    assert status == 408 and error_code(body) == "REQUEST_TIMEOUT"
    assert headers["content-type"] == ["application/json"]


def test_headers_sent_a_byte_at_a_time_get_a_408_within_the_header_deadline(edge):
    """Every byte comes before the per-read timeout; the head as a whole is late."""
    request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"
    with connect() as connection:
        connection.settimeout(0.3)
        answer = b""
        for byte in request:
            try:
                connection.sendall(bytes([byte]))
            except OSError:  # closed under our feet: the answer is already in
                break
            try:
                answer += connection.recv(65536)
            except TimeoutError:
                continue
            if answer:
                break
        connection.settimeout(PATIENCE_SECONDS)
        answer += read_until_closed(connection)
    status, _, body = parse(answer)
    assert status == 408 and error_code(body) == "REQUEST_TIMEOUT"


def test_a_half_sent_body_gets_a_408_and_the_connection_closes(edge):
    status, headers, body = exchange(
        b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{\"login\": \"ann\"")
    assert status == 408 and error_code(body) == "REQUEST_TIMEOUT"
    assert headers["connection"] == ["close"]


def test_a_half_sent_chunked_body_gets_a_408(edge):
    status, _, body = exchange(
        b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n10\r\n{\"login\": ")
    assert status == 408 and error_code(body) == "REQUEST_TIMEOUT"


def test_idle_connections_filling_the_pool_are_closed_and_service_resumes(edge):
    """Without timeouts, MAX_CONNECTIONS silent clients would hold every slot for good."""
    hogs = [connect() for _ in range(MAX_CONNECTIONS)]
    try:
        for hog in hogs[: MAX_CONNECTIONS // 2]:
            hog.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # half the head
        answer = requests.get(edge.base_url + "/health", timeout=PATIENCE_SECONDS)
        assert answer.status_code == 200
        for hog in hogs:
            # A 408 or nothing, then closed (the status line only: a request id may hold "200").
            assert not read_until_closed(hog).startswith(b"HTTP/1.1 200")
    finally:
        for hog in hogs:
            hog.close()


# What eventlet.wsgi answers itself ---------------------------------------------------

TOO_MANY_HEADERS = b"".join(b"X-H%d: x\r\n" % number for number in range(120))


@pytest.mark.parametrize("raw, status, code", [
    (b"GARBAGE\r\n\r\n", 400, "MALFORMED_REQUEST"),
    (b"GET /health HTTP/1.1 extra\r\n\r\n", 400, "MALFORMED_REQUEST"),
    (b"GET /health\r\n\r\n", 400, "MALFORMED_REQUEST"),  # HTTP/0.9
    (b"GET /health HTTP/x.y\r\n\r\n", 400, "MALFORMED_REQUEST"),
    (b"GET /health HTTP/2.0\r\n\r\n", 505, "HTTP_VERSION_NOT_SUPPORTED"),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414, "URI_TOO_LONG"),
    (b"GET /health HTTP/1.1\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n", 431, "HEADERS_TOO_LARGE"),
    (b"GET /health HTTP/1.1\r\n" + TOO_MANY_HEADERS + b"\r\n", 431, "HEADERS_TOO_LARGE"),
    (b"GET /health HTTP/1.1\r\n" + b"X-Big: " + b"a" * 8000 + b"\r\n" * 1 + (b"X-More: " + b"b" * 8000 + b"\r\n") * 9
     + b"\r\n", 431, "HEADERS_TOO_LARGE"),
    (b"POST /auth/login HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "INVALID_CONTENT_LENGTH"),
    (b"POST /auth/login HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n", 400, "INVALID_CONTENT_LENGTH"),
    (b"POST /auth/login HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\n{}", 400, "INVALID_CONTENT_LENGTH"),
    (b"POST /auth/login HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 400,
     "CONFLICTING_BODY_LENGTH"),
    (b"POST /auth/login HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}", 400,
     "CONFLICTING_BODY_LENGTH"),
    (b"POST /auth/login HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
     400, "CONFLICTING_BODY_LENGTH"),
    (b"POST /auth/login HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "MALFORMED_TRANSFER_ENCODING"),
    (b"POST /auth/login HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400, "MALFORMED_TRANSFER_ENCODING"),
    (b"POST /auth/login HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
     "MALFORMED_TRANSFER_ENCODING"),
    (b"POST /auth/login HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501,
     "UNSUPPORTED_TRANSFER_ENCODING"),
    (b"POST /auth/login HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     400, "MALFORMED_TRANSFER_ENCODING"),
])
def test_what_the_listener_refuses_itself_is_json_and_closes(edge, raw, status, code):
    answer_status, headers, body = exchange(raw)
    assert (answer_status, error_code(body)) == (status, code)
    assert headers["content-type"] == ["application/json"]
    assert headers["connection"] == ["close"]
    assert headers["x-content-type-options"] == ["nosniff"]
    assert "x-request-id" in headers


def test_a_refused_head_request_has_no_body(edge):
    with connect() as connection:
        connection.sendall(b"HEAD /health HTTP/2.0\r\n\r\n")
        raw = read_until_closed(connection)
    assert raw.startswith(b"HTTP/1.1 505") and raw.endswith(b"\r\n\r\n")


# Bodies ------------------------------------------------------------------------------

def chunked(body, size=7):
    """body in chunks of size bytes, as a client streaming it would send it."""
    for start in range(0, len(body), size):
        yield body[start:start + size]


def test_a_chunked_json_body_is_read(edge):
    username = "c" + uuid.uuid4().hex[:12]
    body = json.dumps({"email": username + "@example.com", "username": username,
                       "password": "correct horse battery"}).encode()
    registered = requests.post(edge.base_url + "/auth/register", data=chunked(body),
                               headers={"Content-Type": "application/json"}, timeout=PATIENCE_SECONDS)
    assert registered.status_code == 201, registered.text
    assert registered.request.headers["Transfer-Encoding"] == "chunked"
    login = requests.post(edge.base_url + "/auth/login", headers={"Content-Type": "application/json"},
                          data=chunked(json.dumps({"login": username, "password": "correct horse battery"}).encode()),
                          timeout=PATIENCE_SECONDS)
    assert login.status_code == 200 and login.json()["user"]["username"] == username


def test_a_chunked_body_over_the_limit_is_a_413_and_closes_the_connection(edge):
    oversized = b'{"login": "' + b"a" * MAX_JSON_BYTES + b'", "password": "x"}'
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in chunked(oversized, 4096))
    status, headers, body = exchange(
        b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
    assert status == 413 and error_code(body) == "PAYLOAD_TOO_LARGE"
    assert headers["connection"] == ["close"]


def test_a_malformed_chunked_body_is_a_400(edge):
    status, _, body = exchange(
        b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
    assert status == 400 and error_code(body) == "MALFORMED_CHUNKED_BODY"


def test_a_body_stated_twice_is_refused_and_changes_nothing(edge):
    username = "d" + uuid.uuid4().hex[:12]
    body = json.dumps({"email": username + "@example.com", "username": username,
                       "password": "correct horse battery"}).encode()
    for lengths in ([len(body), len(body)], [len(body), 2]):
        head = b"".join(b"Content-Length: %d\r\n" % length for length in lengths)
        status, _, answer = exchange(b"POST /auth/register HTTP/1.1\r\nHost: x\r\n"
                                     b"Content-Type: application/json\r\n" + head + b"\r\n" + body)
        assert status == 400 and error_code(answer) == "CONFLICTING_BODY_LENGTH"
    login = requests.post(edge.base_url + "/auth/login", timeout=PATIENCE_SECONDS,
                          json={"login": username, "password": "correct horse battery"})
    assert login.status_code == 401  # no such account was made


def test_an_answer_given_before_a_large_body_is_read_closes_the_connection(edge):
    """A 401 before the body is read: the body is not read to be thrown away."""
    with connect() as connection:
        connection.sendall(b"PATCH /users/me HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 10000000\r\n\r\n{\"bio\": \"")
        status, headers, body = parse(read_until_closed(connection))
    assert status == 401 and headers["connection"] == ["close"]


# Realtime on the same listener --------------------------------------------------------

@pytest.mark.parametrize("transport", ["polling", "websocket"])
def test_socketio_outlives_every_http_timeout_and_still_gets_pushes(edge, transport):
    api = requests.Session()

    def register():
        name = "s" + uuid.uuid4().hex[:12]
        answer = api.post(edge.base_url + "/auth/register", timeout=PATIENCE_SECONDS, json={
            "email": name + "@example.com", "username": name, "password": "correct horse battery"})
        assert answer.status_code == 201, answer.text
        return answer.json()

    ann, bob = register(), register()
    received = []
    client = socketio.Client(reconnection=False)
    client.on("message:new", lambda data: received.append(data))
    client.connect(edge.base_url, auth={"token": bob["access_token"]}, transports=[transport], wait_timeout=10)
    try:
        time.sleep(5)  # longer than the header, body and keep-alive timeouts together
        assert client.connected and client.transport() == transport
        conversation = api.post(edge.base_url + "/messages/conversations", timeout=PATIENCE_SECONDS,
                                headers={"Authorization": "Bearer " + ann["access_token"]},
                                json={"member_ids": [bob["user"]["id"]]}).json()
        sent = api.post(edge.base_url + "/messages", timeout=PATIENCE_SECONDS,
                        headers={"Authorization": "Bearer " + ann["access_token"]},
                        json={"conversation_id": conversation["id"], "body": "still there?"})
        assert sent.status_code == 201, sent.text
        deadline = time.monotonic() + PATIENCE_SECONDS
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [push["message"]["body"] for push in received] == ["still there?"]
        assert client.connected
    finally:
        client.disconnect()


def test_a_keep_alive_request_after_the_last_service_let_go_is_told_to_retry():
    """A replica's listener closes once its last service stops, but a proxy's
    keep-alive connection accepted before may still bring a request: it gets a
    503 to retry elsewhere, never a 404 from a routing table that is empty now."""
    from http_edge.server import SharedListener

    listener = SharedListener(("127.0.0.1", 0))
    connection = http.client.HTTPConnection("127.0.0.1", listener.port, timeout=PATIENCE_SECONDS)
    try:
        connection.request("GET", "/metrics")
        connection.getresponse().read()
        listener.detach(None)  # as EdgeWebServer.stop does for the last service
        connection.request("GET", "/users/" + str(uuid.uuid4()))
        response = connection.getresponse()
        assert response.status == 503
        assert json.loads(response.read())["error"]["code"] == "SHUTTING_DOWN"
        assert response.getheader("Connection") == "close"
    finally:
        connection.close()
