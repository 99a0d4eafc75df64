"""The calendar fetcher of the events service against a real HTTP server on
this machine: what it connects to, follows, reads and refuses."""
import http.server
import socket
import threading
import time

import pytest

from services.events.exceptions import UrlFetchFailed, UrlNotAllowed
from services.events.fetching import Fetcher
from services.shared.errors import TooLarge


class _Handler(http.server.BaseHTTPRequestHandler):
    routes = {}

    def do_GET(self):
        status, headers, body = self.routes.get(self.path, (404, {}, b""))
        if status == "slow":
            time.sleep(2)
            status = 200
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        _Handler.hosts.append(self.headers.get("Host"))

    def log_message(self, *args):
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a fetcher that stops reading (too large, too slow) breaks the pipe on purpose


@pytest.fixture
def calendar_server():
    server = _QuietServer(("127.0.0.1", 0), _Handler)
    port = server.server_address[1]
    _Handler.hosts = []
    _Handler.routes = {
        "/cal.ics": (200, {}, b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"),
        "/to-private": (302, {"Location": f"http://127.0.0.2:{port}/cal.ics"}, b""),
        "/to-self": (302, {"Location": "/to-self"}, b""),
        "/big": (200, {}, b"x" * 5000),
        "/slow": ("slow", {}, b""),
    }
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield port
    server.shutdown()
    server.server_close()


def local_fetcher(**kwargs):
    """Treats 127.0.0.1 as if it were public, every other address as private,
    and resolves calendar.test to 127.0.0.1."""
    def resolver(host, port):
        return ["127.0.0.1"] if host == "calendar.test" else [host]
    return Fetcher(kwargs.pop("max_bytes", 1000), kwargs.pop("timeout", 5), resolver=resolver,
                   allowed=lambda address: address == "127.0.0.1", ports=kwargs.pop("ports", range(1, 65536)))


def test_fetch_connects_to_the_checked_address_with_the_host_name(calendar_server):
    body = local_fetcher().fetch(f"http://calendar.test:{calendar_server}/cal.ics")
    assert body.startswith(b"BEGIN:VCALENDAR")
    assert _Handler.hosts == [f"calendar.test:{calendar_server}"]


def test_redirects_are_checked_like_the_first_url(calendar_server):
    with pytest.raises(UrlNotAllowed):
        local_fetcher().fetch(f"http://127.0.0.1:{calendar_server}/to-private")
    with pytest.raises(UrlFetchFailed):
        local_fetcher().fetch(f"http://127.0.0.1:{calendar_server}/to-self")


def test_fetch_limits_size_and_time(calendar_server):
    with pytest.raises(TooLarge):
        local_fetcher().fetch(f"http://127.0.0.1:{calendar_server}/big")
    with pytest.raises(UrlFetchFailed):
        local_fetcher(timeout=0.5).fetch(f"http://127.0.0.1:{calendar_server}/slow")


def test_a_refused_connection_and_a_timeout_read_the_same(calendar_server):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refused_port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    answers = []
    for url, timeout in ((f"http://127.0.0.1:{refused_port}/cal.ics", 5),
                         (f"http://127.0.0.1:{calendar_server}/slow", 0.5)):
        with pytest.raises(UrlFetchFailed) as failed:
            local_fetcher(timeout=timeout).fetch(url)
        answers.append(failed.value.details)
    assert answers[0] == answers[1]


def test_the_real_policy_refuses_this_machine(calendar_server):
    with pytest.raises(UrlNotAllowed):
        Fetcher(1000, 5).fetch(f"http://localhost:{calendar_server}/cal.ics")


