"""The development mail sink (services.shared.mail_sink) as the tests run it,
and the mail it received, read from its `.eml` files."""
import email
import email.policy
import os
import sys
import time
from urllib.parse import parse_qsl, urlsplit

from tests.support.processes import ROOT, LoggedProcess, listening, wait_until


class MailSink:
    """The sink on 127.0.0.1:port writing into directory; stop() and start()
    again on the same port and directory (an SMTP outage and its end)."""

    def __init__(self, port, directory, log_path):
        self.port = port
        self.directory = directory
        self.log_path = log_path
        self.process = None

    @property
    def url(self):
        return f"smtp://127.0.0.1:{self.port}"

    def start(self, timeout=15):
        self.process = LoggedProcess(
            [sys.executable, "-m", "services.shared.mail_sink", "--port", str(self.port), "--dir", self.directory],
            self.log_path, name="mail sink", append=True)
        self.process.wait_until_ready(lambda: listening(self.port), timeout)

    def stop(self):
        if self.process is not None:
            self.process.stop()
            wait_until(lambda: not listening(self.port), 10, "the mail sink's port to close")

    def messages(self, recipient=None):
        """Every message received (oldest first), or those to recipient."""
        found = []
        for name in sorted(os.listdir(self.directory)):
            if not name.endswith(".eml") or name.startswith("."):
                continue
            with open(os.path.join(self.directory, name), "rb") as handle:
                message = email.message_from_binary_file(handle, policy=email.policy.default)
            if recipient is None or message["To"] == recipient:
                found.append(message)
        return found

    def wait_for(self, recipient, count=1, timeout=15):
        """The messages to recipient once there are at least count of them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(recipient)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(f"{len(found)} mails to {recipient} after {timeout} s, not {count}")
            time.sleep(0.1)


def parts(message):
    """(text, html) of a message."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    return (text.get_content() if text else None), (html.get_content() if html else None)


def link_token(message):
    """The token of the link in the text part: the last query parameter of its URL."""
    text, _ = parts(message)
    urls = [word for word in text.split() if word.startswith(("http://", "https://"))]
    assert len(urls) == 1, text
    query = parse_qsl(urlsplit(urls[0]).query)
    assert query and query[-1][0] == "token", urls[0]
    return query[-1][1]


__all__ = ["MailSink", "parts", "link_token", "ROOT"]
