"""Reports and moderation: users report accounts and what they wrote;
operators work the queue of open reports.

A report keeps a snapshot of what it is about (`content`: the text, the
author, media URLs), taken when it is made, so a moderator judges what was
reported. Posts, events and media are held by events, messages by messages:
whether the reporter may see them, and the snapshot, come from there
(a ContentLookup). Removing content is recorded as a ContentRemoved event,
and the service that holds the content removes it (services.events.moderation,
services.messages.conversations). Suspending an account is deactivating it.

Every operator action closes each open report on the same target at once,
and leaves one audit row (ModerationAction) per report it closed, naming the
operator. Like the rest of the domain, nothing here knows HTTP, AMQP or Nameko.
"""
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from services.auth import accounts, exceptions
from services.auth.models import ModerationAction, Report, User
from services.auth.profiles import active_user
from services.shared import clock, contracts
from services.shared.errors import InvalidInput
from services.shared.unit_of_work import UnitOfWork

TARGET_TYPES = ("user", "post", "event", "message", "media")
REASONS = ("spam", "harassment", "hate", "sexual", "violence", "self_harm", "illegal", "other")
MAX_DETAILS_LENGTH = 1000
MAX_OPERATOR_NAME_LENGTH = 80
# The most open reports one call of the queue lists.
MAX_QUEUE_PAGE = 200

OPEN, DISMISSED, ACTIONED = "open", "dismissed", "actioned"
DISMISS, REMOVE, SUSPEND = "dismiss", "remove", "suspend"


class ReportThrottle(Protocol):
    def reserve(self, user_id: str) -> None: ...


# What the service holding a post, event, media item or message says of it to
# one reporter: None if the reporter may not see it, else a snapshot with at
# least `author_id` (services.events.moderation.snapshot and
# services.messages.conversations.report_snapshot describe theirs).
ContentLookup = Callable[[str, str, str], dict[str, Any] | None]


@dataclass(frozen=True)
class Reported:
    report: Report
    created: bool


# Reporting ----------------------------------------------------------------------

def report(uow: UnitOfWork, throttle: ReportThrottle, lookup: ContentLookup, reporter_id: str, target_type: str,
           target_id: str, reason: str, details: str | None = None) -> Reported:
    """Report a target the reporter can see; the same reporter and target
    again answers the first report (created False), even in a race."""
    throttle.reserve(reporter_id)
    owner_id, content = _target_snapshot(uow, lookup, reporter_id, target_type, target_id)
    if owner_id == reporter_id:
        raise exceptions.CannotReportYourself(details={"target_id": ["You cannot report yourself or what you wrote."]})
    created = uow.session.execute(
        insert(Report).values(
            reporter_id=reporter_id, target_type=target_type, target_id=target_id, target_owner_id=owner_id,
            reason=reason, details=details or None, content=content,
        ).on_conflict_do_nothing(constraint="uq_reports_reporter_target").returning(Report.id)
    ).scalar()
    # A concurrent first report waited in the insert has committed by now, and
    # under READ COMMITTED this next statement sees it.
    found = uow.session.execute(
        select(Report).where(Report.reporter_id == reporter_id, Report.target_type == target_type,
                             Report.target_id == target_id)
    ).scalar_one()
    return Reported(found, created is not None)


def _target_snapshot(uow: UnitOfWork, lookup: ContentLookup, reporter_id: str, target_type: str,
                     target_id: str) -> tuple[str, dict[str, Any]]:
    """(the account the target is or belongs to, what it shows), or ReportTargetNotFound."""
    if target_type == "user":
        if target_id == reporter_id:
            raise exceptions.CannotReportYourself(details={"target_id": ["You cannot report yourself."]})
        try:
            user = active_user(uow.session, target_id)
        except exceptions.UserNotFound:
            raise exceptions.ReportTargetNotFound() from None
        return user.id, {"author_id": user.id, "username": user.username, "display_name": user.display_name,
                         "text": user.bio, "media_urls": [user.avatar_url] if user.avatar_url else []}
    content = lookup(reporter_id, target_type, target_id)
    if not content or not content.get("author_id"):
        raise exceptions.ReportTargetNotFound()
    return str(content["author_id"]), content


# The queue, for operators ------------------------------------------------------------

def open_reports(uow: UnitOfWork, limit: object = 50) -> list[Report]:
    """The oldest open reports first, at most limit (1 to MAX_QUEUE_PAGE)."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise InvalidInput(details={"limit": ["A whole number."]})
    limit = max(1, min(limit, MAX_QUEUE_PAGE))
    return list(uow.session.execute(
        select(Report).where(Report.status == OPEN).order_by(Report.created_at, Report.id).limit(limit)
    ).scalars())


def get_report(uow: UnitOfWork, report_id: str) -> Report:
    found = uow.session.get(Report, report_id)
    if found is None:
        raise exceptions.ReportNotFound()
    return found


def queue_stats(session: Session) -> tuple[int, datetime | None]:
    """(open reports, when the oldest open one was made, or None): one read
    of the partial index of open reports."""
    count, oldest = session.execute(
        select(func.count(), func.min(Report.created_at)).where(Report.status == OPEN)
    ).one()
    return count, oldest


# Actions ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What one action did: the report it was asked about, and every report it closed."""
    report_id: str
    action: str
    operator: str
    closed_ids: list[str]
    at: datetime


def dismiss(uow: UnitOfWork, report_id: str, operator: object) -> Outcome:
    """Nothing to act on: every open report on the target is dismissed."""
    name = _operator_name(operator)
    return _close(uow, _open_report(uow, report_id), DISMISS, DISMISSED, name)


def remove_content(uow: UnitOfWork, report_id: str, operator: object) -> Outcome:
    """Remove the reported post, event, media item or message, everywhere
    (its service does, on ContentRemoved)."""
    name = _operator_name(operator)
    found = _open_report(uow, report_id)
    if found.target_type == "user":
        raise exceptions.NotRemovable(details={"report_id": ["An account is not content: suspend it instead."]})
    if found.target_type == "media":
        # An avatar is shown from auth's own row: it goes with the media.
        uow.session.execute(update(User).where(User.avatar_media_id == found.target_id).values(avatar_media_id=None))
    uow.record(contracts.ContentRemoved(target_type=found.target_type, target_id=found.target_id))
    return _close(uow, found, REMOVE, ACTIONED, name)


def suspend(uow: UnitOfWork, report_id: str, operator: object) -> Outcome:
    """Suspend the reported account (the one the target is or belongs to), as
    an operator's deactivation: signed out everywhere, hidden, its content
    removed by the user_deleted cascade. The open reports on anything of that
    account are closed with it."""
    name = _operator_name(operator)
    found = _open_report(uow, report_id)
    accounts.deactivate(uow, found.target_owner_id)
    return _close(uow, found, SUSPEND, ACTIONED, name, Report.target_owner_id == found.target_owner_id)


def actions(uow: UnitOfWork, report_id: str) -> list[ModerationAction]:
    """The audit trail of one report, oldest first."""
    get_report(uow, report_id)
    return list(uow.session.execute(
        select(ModerationAction).where(ModerationAction.report_id == report_id)
        .order_by(ModerationAction.created_at, ModerationAction.id)
    ).scalars())


def _operator_name(operator: object) -> str:
    """Who acts, as the audit trail records them: every action names its operator."""
    if not isinstance(operator, str) or not operator.strip() or len(operator.strip()) > MAX_OPERATOR_NAME_LENGTH:
        raise exceptions.OperatorNameRequired(
            details={"by": [f"Name yourself (1 to {MAX_OPERATOR_NAME_LENGTH} characters)."]})
    return operator.strip()


def _open_report(uow: UnitOfWork, report_id: str) -> Report:
    # Locked: of two operators acting on it at once, the second finds it closed.
    found = uow.session.execute(select(Report).where(Report.id == report_id).with_for_update()).scalar_one_or_none()
    if found is None:
        raise exceptions.ReportNotFound()
    if found.status != OPEN:
        raise exceptions.ReportClosed(details={"status": found.status})
    return found


def _close(uow: UnitOfWork, found: Report, action: str, status: str, operator: str, *also: Any) -> Outcome:
    """Close every open report on found's target (and those matching `also`),
    with one audit row each."""
    now = clock.now()
    on_target = (Report.target_type == found.target_type) & (Report.target_id == found.target_id)
    closed: Sequence[str] = uow.session.execute(
        update(Report).where(Report.status == OPEN, or_(on_target, *also))
        .values(status=status, resolved_at=now).returning(Report.id)
    ).scalars().all()
    uow.session.execute(insert(ModerationAction), [
        {"report_id": closed_id, "action": action, "operator": operator, "created_at": now}
        for closed_id in closed
    ])
    # The ORM's copy of the report was updated behind its back.
    uow.session.expire(found)
    return Outcome(found.id, action, operator, sorted(closed), now)
