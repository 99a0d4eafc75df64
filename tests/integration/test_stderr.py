"""What a process writes to stderr is JSON log lines, and never a secret.

A real system takes hostile Socket.IO events (reserved names, secrets in the
payload, malformed and oversized packets), malformed Engine.IO and websocket
requests and malformed HTTP; then it stops. Every line its stderr holds must be
a JSON log record: no raw traceback from python-socketio, Engine.IO,
eventlet.wsgi, eventlet's hub or Nameko, no warning printed by Python, and no
access token or password anywhere.
"""
import json
import socket
import time
import uuid

import pytest
import requests
import socketio

from tests.conftest import TEST_PORT, system_of_its_own

pytestmark = pytest.mark.integration

PORT_OFFSET = 131
PORT = TEST_PORT + PORT_OFFSET
PASSWORD = "stderr-" + uuid.uuid4().hex  # unique: found only if it leaked
HOSTILE_EVENTS = 100


@pytest.fixture(scope="module")
def attacked(config):
    """The system's stderr and stdout after the attack, once it has stopped, and the secrets used."""
    env = {"LOG_LEVEL": "INFO", "HTTP_HEADER_TIMEOUT_SECONDS": "1", "HTTP_BODY_TIMEOUT_SECONDS": "1"}
    with system_of_its_own("stderr", PORT_OFFSET, env=env, separate_stderr=True) as running:
        user = register(running.base_url)
        secrets = {"password": PASSWORD, "access token": user["access_token"],
                   "refresh token": user["refresh_token"]}
        hostile_socket_events(running.base_url, user["access_token"])
        malformed_engineio_requests(running.base_url, user["access_token"])
        malformed_websockets(user["access_token"])
        malformed_http(running.base_url, user["access_token"])
    with open(running.stderr_path) as stderr, open(running.log_path) as stdout:
        return stderr.read(), stdout.read(), secrets


def register(base_url):
    name = "e" + uuid.uuid4().hex[:12]
    answer = requests.post(base_url + "/auth/register", timeout=15, json={
        "email": name + "@example.com", "username": name, "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    return answer.json()


def hostile_socket_events(base_url, token):
    """The events that used to print a raw traceback each, and their kin."""
    secret = {"token": token, "password": PASSWORD, "authorization": "Bearer " + token}
    names = ["disconnect", "connect", "connect_error", "typing", "no-such-event", "message"]
    client = socketio.Client(reconnection=False)
    client.connect(base_url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
    try:
        for number in range(HOSTILE_EVENTS):
            name = names[number % len(names)]
            client.emit(name, [secret, number] if number % 2 else secret)
            if number % 20 == 19:
                time.sleep(1.1)  # stay under the event rate limit, so that events reach handlers
        client.emit("typing", {"conversation_id": token, "password": PASSWORD})
        client.emit("typing", "x" * 20000)  # over the packet limit: the server closes the socket
        time.sleep(1)
    finally:
        client.disconnect()


def engineio_session(base_url, token):
    """A long-polling Engine.IO session with its Socket.IO namespace joined; its sid."""
    handshake = requests.get(base_url + "/socket.io/?EIO=4&transport=polling", timeout=10)
    sid = json.loads(handshake.text[1:])["sid"]
    post(base_url, sid, "40" + json.dumps({"token": token}))
    requests.get(f"{base_url}/socket.io/?EIO=4&transport=polling&sid={sid}", timeout=10)
    return sid


def post(base_url, sid, payload):
    try:
        requests.post(f"{base_url}/socket.io/?EIO=4&transport=polling&sid={sid}", data=payload.encode(),
                      headers={"Content-Type": "text/plain;charset=UTF-8"}, timeout=3)
    except requests.RequestException:
        pass  # what it answers, if it does, is not the point here


def malformed_engineio_requests(base_url, token):
    for query in ["EIO=3&transport=polling", "EIO=4&transport=bogus", "EIO=x", "",
                  "EIO=4&transport=polling&sid=" + token, "EIO=4&transport=polling&sid=%00%ff"]:
        requests.get(base_url + "/socket.io/?" + query, timeout=10)
        requests.post(base_url + "/socket.io/?" + query, data=b"4" + PASSWORD.encode(), timeout=10)
    for packet in ['42["typing", {"password": "' + PASSWORD + '"', "42[", "40{bad json", "4x", "9", "\x1e\x1e",
                   '451-["typing",{"_placeholder":true,"num":9}]', '42["disconnect"]', "41", "40/nowhere,",
                   "42" + json.dumps(["typing", {"token": token}]), "2probe", "6", "1"]:
        sid = engineio_session(base_url, token)
        post(base_url, sid, packet)
        post(base_url, sid, packet)  # after the first, the session may be gone
    requests.post(base_url + "/socket.io/?EIO=4&transport=polling", data=b"\xff" * 100000, timeout=10)


def websocket_handshake(path, headers=b""):
    connection = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    connection.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    return connection


def malformed_websockets(token):
    path = b"/socket.io/?EIO=4&transport=websocket"
    upgrade = b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
    key = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    attempts = [
        (path, b"", b""),  # no upgrade at all
        (path, upgrade, b""),  # no key, no version
        (path, upgrade + key + b"Sec-WebSocket-Version: 99\r\n", b""),
        (path, upgrade + key + b"Sec-WebSocket-Version: 13\r\n", b"\x81\x05hello"),  # unmasked frame
        (path, upgrade + key + b"Sec-WebSocket-Version: 13\r\n", b"\x8f\x80\x00\x00\x00\x00"),  # unknown opcode
        (path, upgrade + key + b"Sec-WebSocket-Version: 13\r\n", b"\x81\xff" + b"\xff" * 8),  # absurd length
        (path, upgrade + key + b"Sec-WebSocket-Version: 13\r\n",
         b"\x81\x85\x01\x02\x03\x04" + bytes(a ^ b for a, b in zip(b"40{}x", b"\x01\x02\x03\x04\x01", strict=True))),
        (path + b"&sid=" + token.encode(), upgrade + key + b"Sec-WebSocket-Version: 13\r\n", b""),
    ]
    for target, headers, frames in attempts:
        with websocket_handshake(target, headers) as connection:
            try:
                connection.recv(65536)
                if frames:
                    connection.sendall(frames)
                    connection.recv(65536)
            except OSError:
                pass


def malformed_http(base_url, token):
    raw_requests = [
        b"GARBAGE\r\n\r\n",
        b"GET /health HTTP/2.0\r\n\r\n",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
        b"GET /health HTTP/1.1\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n",
        b"POST /auth/login HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        b"POST /auth/login HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /auth/login HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        b'{"password": "' + PASSWORD.encode() + b'"',  # then silence: a 408
        b"GET /auth/me?access_token=" + token.encode() + b" HTTP/1.1\r\nAuthorization: Bearer "
        + token.encode() + b"x\r\n\r\n",
        b"GET /health HTTP/1.1\r\n",  # and nothing more
    ]
    for raw in raw_requests:
        with socket.create_connection(("127.0.0.1", PORT), timeout=10) as connection:
            connection.sendall(raw)
            try:
                while connection.recv(65536):
                    pass
            except OSError:
                pass
    # A client that resets the connection in the middle of its request.
    reset = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    reset.sendall(b"POST /auth/login HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{")
    reset.close()
    headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
    requests.post(base_url + "/auth/login", data=b'{"login": "x", "password": "' + PASSWORD.encode(), timeout=10,
                  headers=headers)
    requests.post(base_url + "/auth/login", json={"login": "nobody", "password": PASSWORD}, timeout=10)
    requests.get(base_url + "/users", params={"q": "a", "cursor": token}, headers=headers, timeout=10)
    time.sleep(2)  # the silent ones time out


def test_stderr_holds_json_log_records_only(attacked):
    stderr, _, _ = attacked
    lines = stderr.splitlines()
    assert len(lines) > 10  # the system did log (start, requests, stop)
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail("not a JSON log line on stderr: " + line[:300])
        assert isinstance(record, dict) and {"ts", "level", "logger", "message"} <= set(record), line[:300]


def test_no_traceback_reached_stderr_outside_a_record(attacked):
    stderr, _, _ = attacked
    for line in stderr.splitlines():
        assert not line.startswith(("Traceback", "  File ")), line[:300]


def test_no_secret_reached_stderr_or_stdout(attacked):
    stderr, stdout, secrets = attacked
    for name, secret in secrets.items():
        assert secret not in stderr, name + " on stderr"
        assert secret not in stdout, name + " on stdout"
        # Nor a recognisable part of one (a JWT's signature, say).
        assert secret[-24:] not in stderr, name + " (in part) on stderr"


def test_stdout_holds_nothing(attacked):
    _, stdout, _ = attacked
    assert stdout.strip() == ""
