"""Mail any service may send: what a mail says (Letter), the MIME message it
becomes, and the SMTP server at SMTP_URL that takes it.

    SMTP_URL = smtp://host:25              plain SMTP (the development sink)
               smtp+starttls://user:password@host:587   STARTTLS, then AUTH
               smtps://user:password@host:465           TLS from the start, then AUTH

User and password are percent-decoded (`%40` for `@`). STARTTLS and SMTPS
verify the server's certificate against the system's CA store.

Sending raises DependencyUnavailable when the server cannot be reached or
answers "try later" (4xx), so an event handler requeues the mail, and
MailRejected when it refuses the mail for good (5xx), which no retry mends.
Nothing here knows Nameko or eventlet.
"""
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote, urlsplit

from services.shared.errors import DependencyUnavailable

SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
TIMEOUT_SECONDS = 10


class MailRejected(Exception):
    """The SMTP server refused the mail for good (a 5xx answer)."""


@dataclass(frozen=True)
class Letter:
    """One mail to one recipient, in both forms every mail has: plain text,
    and HTML whose every interpolated value the writer escaped."""
    recipient: str
    subject: str
    text: str
    html: str


def message_of(letter: Letter, sender: str, message_id: str) -> EmailMessage:
    """The MIME message (multipart/alternative: text, then HTML). The same
    message_id for every attempt at one mail lets a receiver drop a copy."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = letter.recipient
    message["Subject"] = letter.subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = message_id
    message.set_content(letter.text)
    message.add_alternative(letter.html, subtype="html")
    return message


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str  # "none", "starttls" or "tls"
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> "SmtpSettings":
        """Settings from SMTP_URL; ValueError says what is wrong with it."""
        parts = urlsplit(url.strip())
        if parts.scheme not in SCHEMES:
            raise ValueError(f"SMTP_URL must start with one of {', '.join(s + '://' for s in SCHEMES)}")
        if not parts.hostname:
            raise ValueError("SMTP_URL names no host")
        security = {"smtp": "none", "smtp+starttls": "starttls", "smtps": "tls"}[parts.scheme]
        return cls(host=parts.hostname, port=parts.port or SCHEMES[parts.scheme], security=security,
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password is not None else None)


class SmtpSender:
    """Sends each message on a connection of its own: mail is rare next to
    requests, and a connection kept open would die between mails."""

    def __init__(self, settings: SmtpSettings, timeout: float = TIMEOUT_SECONDS) -> None:
        self.settings = settings
        self.timeout = timeout

    def send(self, message: EmailMessage) -> None:
        try:
            with self._connect() as server:
                if self.settings.username:
                    server.login(self.settings.username, self.settings.password or "")
                server.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if all(code >= 500 for code in codes):
                raise MailRejected(f"recipient refused: {codes}") from None
            raise DependencyUnavailable(code="SMTP_UNAVAILABLE") from exc
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code >= 500 and not isinstance(exc, smtplib.SMTPAuthenticationError):
                raise MailRejected(f"{exc.smtp_code} {exc.smtp_error!r}") from None
            # 4xx, or our credentials refused: the operator can mend it, and
            # the mail goes out once they have.
            raise DependencyUnavailable(code="SMTP_UNAVAILABLE") from exc
        except (OSError, smtplib.SMTPException) as exc:
            # Refused, reset, timed out, a TLS failure: the server is unreachable.
            raise DependencyUnavailable(code="SMTP_UNAVAILABLE") from exc

    def _connect(self) -> smtplib.SMTP:
        settings = self.settings
        if settings.security == "tls":
            return smtplib.SMTP_SSL(settings.host, settings.port, timeout=self.timeout,
                                    context=ssl.create_default_context())
        server = smtplib.SMTP(settings.host, settings.port, timeout=self.timeout)
        if settings.security == "starttls":
            try:
                server.starttls(context=ssl.create_default_context())
            except BaseException:
                server.close()
                raise
        return server


@dataclass(frozen=True)
class Post:
    """What a service sends mail with: the server, the From address, and the
    base URL its links point at (the app's, APP_LINK_BASE_URL)."""
    transport: SmtpSender
    sender: str
    link_base_url: str

    def send(self, message: EmailMessage) -> None:
        self.transport.send(message)


def post_from_config(config: dict[str, Any]) -> Post:
    """SMTP_URL, MAIL_FROM and APP_LINK_BASE_URL; ValueError for a bad one."""
    return Post(SmtpSender(SmtpSettings.from_url(str(config["SMTP_URL"]))), str(config["MAIL_FROM"]),
                str(config["APP_LINK_BASE_URL"]))
