"""The mail auth sends: queued by a request, sent by the mail worker after commit.

A request queues a mail (a row of outgoing_mail saying what it is about)
and records MailQueued in the same unit of work, so the mail exists exactly
when the change it tells of is committed. The mail worker (AuthMailWorker)
receives the event, writes the mail, making the token its link needs at that
moment, and sends it through SMTP, then marks the row settled:

- Sent at most once per row: the row is locked while it is sent, and a row
  already settled is skipped, so a redelivered event sends nothing. Each
  attempt carries the same Message-ID, so should a crash between sending
  and committing ever repeat one, the receiver can tell.
- An SMTP outage fails the worker with DependencyUnavailable; the event is
  requeued (services.shared.events) and the mail goes out once the server is
  back. Its token is made by the attempt that succeeds: one that failed
  rolled its token back with it.
- A mail that has lost its reason by the time it is sent (the account is
  gone, the address changed, already verified, no account has the address a
  reset was asked for) is skipped.
"""
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any, Protocol

from sqlalchemy import func, select

from services.auth import account_tokens, letters
from services.auth.models import OutgoingMail, User
from services.shared import clock, contracts
from services.shared.mail import Letter, MailRejected, message_of
from services.shared.unit_of_work import UnitOfWork

VERIFY_EMAIL = "verify_email"
PASSWORD_RESET = "password_reset"
EMAIL_CHANGED = "email_changed"

SENT, SKIPPED, REJECTED = "sent", "skipped", "rejected"

# Where the app opens each link (below APP_LINK_BASE_URL).
VERIFY_PATH = "verify-email"
RESET_PATH = "reset-password"


class Post(Protocol):
    """Where mail goes (services.shared.mail.Post)."""
    sender: str
    link_base_url: str

    def send(self, message: EmailMessage) -> None: ...


def queue(uow: UnitOfWork, kind: str, recipient: str, user_id: str | None = None,
          data: dict[str, str] | None = None) -> str:
    """Queue a mail for after the commit; returns its id."""
    mail = OutgoingMail(kind=kind, recipient=recipient, user_id=user_id, data=data or {})
    uow.session.add(mail)
    uow.session.flush()
    uow.record(contracts.MailQueued(mail_id=mail.id))
    return mail.id


def deliver(uow: UnitOfWork, post: Post, mail_id: str) -> str | None:
    """Write and send one queued mail; returns how it was settled (None if it
    already was, or never existed)."""
    mail = uow.session.execute(
        select(OutgoingMail).where(OutgoingMail.id == mail_id).with_for_update()
    ).scalar_one_or_none()
    if mail is None or mail.settled_at is not None:
        return None
    letter = _write(uow, post, mail)
    if letter is None:
        outcome = SKIPPED
        if mail.user_id is None:
            # An address nobody has: not worth keeping.
            mail.recipient = ""
    else:
        try:
            post.send(message_of(letter, post.sender, message_id(mail.id, post.sender)))
            outcome = SENT
        except MailRejected:
            outcome = REJECTED
    mail.settled_at = clock.now()
    mail.outcome = outcome
    return outcome


def message_id(mail_id: str, sender: str) -> str:
    """The same for every attempt at one mail, in the sender's domain."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "lifytp.invalid"
    return f"<{mail_id}@{domain}>"


def _write(uow: UnitOfWork, post: Post, mail: OutgoingMail) -> Letter | None:
    session = uow.session
    if mail.kind == PASSWORD_RESET:
        user = session.execute(
            select(User).where(User.email == mail.recipient, User.is_active)
        ).scalar_one_or_none()
        if user is None:
            return None
        mail.user_id = user.id
        token = account_tokens.issue(uow, user, account_tokens.PASSWORD_RESET)
        minutes = int(account_tokens.LIFETIMES[account_tokens.PASSWORD_RESET].total_seconds() // 60)
        return letters.password_reset(user.email, user.display_name,
                                      letters.link(post.link_base_url, RESET_PATH, token), minutes)
    user = session.get(User, mail.user_id) if mail.user_id else None
    if user is None or not user.is_active:
        return None
    if mail.kind == VERIFY_EMAIL:
        if user.email != mail.recipient or user.email_verified:
            return None
        token = account_tokens.issue(uow, user, account_tokens.VERIFY_EMAIL)
        hours = int(account_tokens.LIFETIMES[account_tokens.VERIFY_EMAIL].total_seconds() // 3600)
        return letters.verify_email(user.email, user.display_name,
                                    letters.link(post.link_base_url, VERIFY_PATH, token), hours)
    if mail.kind == EMAIL_CHANGED:
        return letters.email_changed(mail.recipient, user.display_name, mail.data.get("new_email", user.email))
    raise ValueError(f"no mail of kind {mail.kind!r}")


def backlog(uow: UnitOfWork) -> dict[str, Any]:
    """For operators: mails not settled yet, and since when the oldest waits."""
    waiting, oldest = uow.session.execute(
        select(func.count(), func.min(OutgoingMail.created_at)).where(OutgoingMail.settled_at.is_(None))
    ).one()
    return {"waiting": waiting, "oldest_queued_at": clock.iso(oldest)}
