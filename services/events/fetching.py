"""Fetching a calendar from a URL a user gave, without letting that URL reach
our own network (SSRF).

Every hop (the URL and each redirect) is checked the same way: http or https
only, the host name resolved here, every address it resolves to public, and
the connection made to the address that was checked, so a DNS answer that
changes between the check and the connect (rebinding) cannot slip through.
TLS still verifies the certificate against the host name.
"""
import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from urllib.parse import urljoin, urlsplit

from services.events.exceptions import UrlFetchFailed, UrlNotAllowed
from services.shared.errors import TooLarge

MAX_REDIRECTS = 3
REDIRECTS = {301, 302, 303, 307, 308}
# Web servers only, unless a deployment says otherwise (CALENDAR_FETCH_PORTS):
# any other port turns the import into a port scanner of the internet.
DEFAULT_PORTS = frozenset({80, 443})
# IPv6 ranges that embed or translate to IPv4 addresses, which could be
# private (NAT64, 6to4, Teredo, IPv4-compatible, SIIT), and the deprecated
# site-local range, which Python counts as global.
_NOT_PUBLIC_V6 = [ipaddress.ip_network(net) for net in (
    "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32", "::/96", "::ffff:0:0:0/96", "fec0::/10")]
# One answer for every way a connection fails: "refused" and "timed out" apart
# would tell a caller which ports are open.
UNREACHABLE = "The calendar's server could not be reached."


def public_address(text: str) -> bool:
    """True if connecting to this IP cannot reach a private network."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    if address.version == 6:
        if address.ipv4_mapped:
            address = address.ipv4_mapped
        elif any(address in net for net in _NOT_PUBLIC_V6):
            return False
    return address.is_global and not address.is_multicast


def resolve(host: str, port: int) -> list[str]:
    """Every address host resolves to (the system resolver)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise UrlFetchFailed("The host name does not resolve.", details={"url": ["Unknown host."]}) from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _PinnedConnection(http.client.HTTPSConnection):
    """HTTP(S) to a host name, over a socket opened to an address chosen beforehand."""

    def __init__(self, host: str, port: int, address: str, tls: bool, timeout: float) -> None:
        self.tls_context = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.tls_context)
        self.address = address
        self.tls = tls
        self.default_port = 443 if tls else 80  # keeps the Host header plain

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls_context.wrap_socket(sock, server_hostname=self.host) if self.tls else sock


class Fetcher:
    def __init__(self, max_bytes: int, timeout_seconds: float, resolver: Callable[[str, int], list[str]] = resolve,
                 allowed: Callable[[str], bool] = public_address, ports: Iterable[int] = DEFAULT_PORTS) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout_seconds
        self.resolver = resolver
        self.allowed = allowed
        self.ports = frozenset(ports)

    def fetch(self, url: str) -> bytes:
        """The body of a 200 answer at url, following at most MAX_REDIRECTS redirects."""
        deadline = time.monotonic() + self.timeout
        for _ in range(MAX_REDIRECTS + 1):
            status, location, body = self._get(url, deadline)
            if status not in REDIRECTS:
                if status != 200:
                    raise UrlFetchFailed(details={"url": [f"The server answered {status}."]})
                return body
            if not location:
                raise UrlFetchFailed(details={"url": ["A redirect without a Location."]})
            url = urljoin(url, location)
        raise UrlFetchFailed(details={"url": [f"More than {MAX_REDIRECTS} redirects."]})

    def _target(self, url: str) -> tuple[str, int, bool, str]:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise UrlNotAllowed(details={"url": ["Not a valid URL."]}) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UrlNotAllowed(details={"url": ["Only http and https URLs may be fetched."]})
        if parts.username or parts.password:
            raise UrlNotAllowed(details={"url": ["URLs with credentials are not fetched."]})
        tls = parts.scheme == "https"
        if port is None:
            port = 443 if tls else 80
        if port not in self.ports:
            raise UrlNotAllowed(details={"url": ["Only ports {} may be fetched.".format(
                ", ".join(str(allowed) for allowed in sorted(self.ports)))]})
        path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        return parts.hostname, port, tls, path

    def _get(self, url: str, deadline: float) -> tuple[int, str | None, bytes]:
        host, port, tls, path = self._target(url)
        addresses = self.resolver(host, port)
        if not addresses:
            raise UrlFetchFailed(details={"url": ["The host name does not resolve."]})
        if not all(self.allowed(address) for address in addresses):
            raise UrlNotAllowed(details={"url": ["The host is not a public address."]})
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UrlFetchFailed(details={"url": [UNREACHABLE]})
        connection = _PinnedConnection(host, port, addresses[0], tls, remaining)
        try:
            connection.request("GET", path, headers={"Accept": "text/calendar", "User-Agent": "LifyTP-calendar-import"})
            response = connection.getresponse()
            if response.status in REDIRECTS:
                return response.status, response.getheader("Location"), b""
            if response.status != 200:
                return response.status, None, b""
            return 200, None, self._read(response, deadline)
        except (OSError, http.client.HTTPException, ssl.SSLError):
            raise UrlFetchFailed(details={"url": [UNREACHABLE]}) from None
        finally:
            connection.close()

    def _read(self, response: http.client.HTTPResponse, deadline: float) -> bytes:
        declared = response.getheader("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise TooLarge(details={"max_bytes": self.max_bytes})
        chunks: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() > deadline:
                raise UrlFetchFailed(details={"url": [UNREACHABLE]})
            chunk = response.read1(64 * 1024) if hasattr(response, "read1") else response.read(64 * 1024)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_bytes:
                raise TooLarge(details={"max_bytes": self.max_bytes})
            chunks.append(chunk)
