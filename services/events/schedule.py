"""Events: the rules of their fields, creating and changing them, who may see
them, joining and leaving, and range queries over their occurrences.

Functions work in the caller's unit of work (services.shared.unit_of_work):
they read and write through `uow.session` and record domain events with
`uow.record`; the caller commits or rolls back. They know nothing of HTTP or
AMQP, and return rows and the domain values below, never JSON views.
"""
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, func, literal, or_, select, tuple_, union
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from services.events import exceptions, recurrence
from services.events.models import Event, Follow, Media, Occurrence, Participant, Post
from services.events.people import Auth, UserSummary, either_blocks, ensure_follows, users_by_id
from services.shared import clock, contracts
from services.shared.errors import InvalidInput
from services.shared.unit_of_work import UnitOfWork, table_of

# The rules of an event's fields ----------------------------------------------------

VISIBILITIES = ("public", "followers", "private")
STATUSES = ("active", "cancelled")
MAX_TITLE_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 5000
MAX_LOCATION_LENGTH = 300
MAX_CAPACITY = 100_000
DEFAULT_EVENT_DURATION = timedelta(hours=1)
MAX_EVENT_DURATION = timedelta(days=31)
# Every time an event, an import or a range query names lies in [EARLIEST, LATEST).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
# How long a range query ([from, to)) may span.
MAX_RANGE = timedelta(days=366)
MAX_SEARCH_LENGTH = 100

# Field errors: {field: [messages]}.
FieldErrors = dict[str, list[str]]
# A range query's [from, to).
Window = tuple[datetime, datetime]


def check_times(starts_at: datetime, ends_at: datetime) -> FieldErrors:
    """Field errors of an event's times, after defaults are applied."""
    if ends_at <= starts_at:
        return {"ends_at": ["Must be after starts_at."]}
    if ends_at - starts_at > MAX_EVENT_DURATION:
        return {"ends_at": [f"An event lasts at most {MAX_EVENT_DURATION.days} days."]}
    return {}


def check_range(range_from: datetime, range_to: datetime) -> FieldErrors:
    """Field errors of a range query's [from, to)."""
    if range_to <= range_from:
        return {"to": ["Must be after from."]}
    if range_to - range_from > MAX_RANGE:
        return {"to": [f"A range spans at most {MAX_RANGE.days} days."]}
    return {}


# What decides when an event's occurrences start: changing any of them
# rewrites its rows in the occurrences table.
TIMING_FIELDS = ("starts_at", "rrule", "timezone")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# What a viewer is shown ------------------------------------------------------------

@dataclass(frozen=True)
class EventOccurrence:
    """When one occurrence of an event takes place. Occurrences of a recurring
    event share the event id; the pair (id, starts_at) names one of them."""
    starts_at: datetime
    ends_at: datetime
    occurrence_id: str | None


def occurrence_of(event: Event, starts_at: datetime | None = None) -> EventOccurrence:
    """The occurrence of `event` starting at `starts_at` (its first by default);
    every occurrence lasts as long as the first."""
    starts_at = starts_at or event.starts_at
    return EventOccurrence(
        starts_at=starts_at,
        ends_at=starts_at + (event.ends_at - event.starts_at),
        occurrence_id=f"{event.id}:{clock.iso(starts_at)}" if event.rrule else None,
    )


@dataclass(frozen=True)
class SeenEvent:
    """An event as one viewer sees it: at one occurrence, with the viewer's
    status (organizer, joined or None) and the organizer's summary from auth
    (None once the account is gone)."""
    event: Event
    occurrence: EventOccurrence
    my_status: str | None
    organizer: UserSummary | None


# Who sees what -------------------------------------------------------------------

def participates(viewer_id: str) -> ColumnElement[bool]:
    return exists().where(Participant.event_id == Event.id, Participant.user_id == viewer_id)


def visible_to(viewer_id: str) -> ColumnElement[bool]:
    """SQL condition: the viewer may see the event (else it is a 404 to them).
    An event a moderator removed is seen by nobody, its organizer included.
    No event of someone the viewer blocks, or who blocks the viewer, is
    visible to them, whatever its visibility, even one they had joined."""
    follows_organizer = exists().where(Follow.follower_id == viewer_id, Follow.followee_id == Event.organizer_id)
    return and_(
        not_removed(),
        or_(
            Event.visibility == "public",
            Event.organizer_id == viewer_id,
            and_(Event.visibility == "followers", follows_organizer),
            participates(viewer_id),
        ),
        ~either_blocks(viewer_id, Event.organizer_id),
    )


def not_removed() -> ColumnElement[bool]:
    return Event.removed_at.is_(None)


def visible_event(session: Session, auth: Auth, viewer_id: str, event_id: str, for_update: bool = False) -> Event:
    # Only a followers-only event needs the viewer's follow list: the RPC that
    # may copy it is not paid for public events, mine, or ones I joined.
    visibility = session.scalar(select(Event.visibility).where(Event.id == event_id))
    if visibility == "followers":
        ensure_follows(session, auth, viewer_id)
    query = select(Event).where(Event.id == event_id, visible_to(viewer_id))
    if for_update:
        query = query.with_for_update(of=Event)
    event = session.execute(query).scalar_one_or_none()
    if event is None:
        raise exceptions.EventNotFound()
    return event


def statuses_of(session: Session, viewer_id: str, events: Sequence[Event]) -> dict[str, str | None]:
    """my_status of each event: organizer, joined or None."""
    ids = [event.id for event in events]
    joined = set(session.execute(
        select(Participant.event_id).where(Participant.user_id == viewer_id, Participant.event_id.in_(ids))
    ).scalars()) if ids else set()
    return {
        event.id: "organizer" if event.organizer_id == viewer_id else ("joined" if event.id in joined else None)
        for event in events
    }


def seen_by(session: Session, auth: Auth, viewer_id: str, events_with_starts: Sequence[tuple[Event, datetime | None]],
            users: dict[str, UserSummary] | None = None) -> list[SeenEvent]:
    """SeenEvents of (event, occurrence start or None) pairs, with one user
    lookup for all (none if the caller passes the `users` it has)."""
    events = [event for event, _ in events_with_starts]
    if users is None:
        users = users_by_id(auth, [event.organizer_id for event in events])
    statuses = statuses_of(session, viewer_id, events)
    return [
        SeenEvent(event, occurrence_of(event, start), statuses[event.id], users.get(event.organizer_id))
        for event, start in events_with_starts
    ]


def _seen_one(session: Session, auth: Auth, viewer_id: str, event: Event) -> SeenEvent:
    return seen_by(session, auth, viewer_id, [(event, None)])[0]


def event_summary(event: Event) -> contracts.EventSummary:
    """What an event's domain events say of it."""
    return contracts.EventSummary(
        id=event.id, title=event.title, starts_at=clock.iso(event.starts_at), ends_at=clock.iso(event.ends_at),
        visibility=event.visibility, status=event.status,
    )


# Occurrences ---------------------------------------------------------------------

def series_starts(starts_at: datetime, rrule: str | None, timezone: str) -> list[datetime]:
    """Every occurrence start (UTC) of an event, in order: its own start, or
    its rule's within the recurrence cap; InvalidRule if the rule yields none."""
    if not rrule:
        return [starts_at]
    return recurrence.expand(rrule, starts_at, timezone)


def timing_changed(event: Event, values: dict[str, Any]) -> bool:
    return any(getattr(event, field) != values[field] for field in TIMING_FIELDS)


def record_occurrences(session: Session, event_id: str, starts: Sequence[datetime]) -> None:
    """Make `starts` the event's occurrences, in the caller's transaction."""
    session.execute(delete(Occurrence).where(Occurrence.event_id == event_id))
    # Two wall times can name one instant (a time the clock skips is read as
    # the hour after it): the key holds each instant once.
    rows = [{"event_id": event_id, "starts_at": start} for start in dict.fromkeys(starts)]
    session.execute(insert(Occurrence), rows)


# Creating and changing -------------------------------------------------------------

# The fields of an event that its organizer sets, and what each is when not given.
EVENT_DEFAULTS: dict[str, Any] = {
    "description": "", "location": "", "is_online": False, "timezone": "UTC",
    "capacity": None, "cover_media_id": None, "rrule": None, "ends_at": None,
}
UPDATABLE = ("title", "description", "starts_at", "ends_at", "timezone", "location", "is_online",
             "visibility", "capacity", "cover_media_id", "rrule")


def _settle(session: Session, values: dict[str, Any], organizer_id: str,
            participants_count: int = 0) -> tuple[dict[str, Any], list[datetime]]:
    """Apply defaults and cross-field rules to an event's full set of values;
    returns them with the event's occurrence starts."""
    if values.get("ends_at") is None:
        values["ends_at"] = values["starts_at"] + DEFAULT_EVENT_DURATION
    errors = check_times(values["starts_at"], values["ends_at"])
    values["rrule"] = values.get("rrule") or None
    starts: list[datetime] = []  # set below unless the rule is refused, which raises
    try:
        starts = series_starts(values["starts_at"], values["rrule"], values["timezone"])
    except recurrence.InvalidRule as exc:
        errors["rrule"] = [str(exc)]
    else:
        values["series_ends_at"] = starts[-1] + (values["ends_at"] - values["starts_at"])
    if errors:
        raise InvalidInput(details=errors)
    cover = values.get("cover_media_id")
    if cover and not _is_image_of(session, cover, organizer_id):
        raise exceptions.InvalidMediaReference(details={"cover_media_id": ["Not an image you uploaded."]})
    capacity = values.get("capacity")
    if capacity is not None and capacity < participants_count:
        raise exceptions.CapacityBelowParticipants(details={"capacity": ["Below participants_count."]})
    return values, starts


def _is_image_of(session: Session, media_id: str, owner_id: str) -> bool:
    media = session.get(Media, media_id)
    return media is not None and media.owner_id == owner_id and media.content_type.startswith("image/")


def create_event(uow: UnitOfWork, auth: Auth, organizer_id: str, fields: dict[str, Any]) -> SeenEvent:
    """Create an event organized by organizer_id. `fields` maps names of
    UPDATABLE to plain values (title, starts_at and visibility are required;
    the others default to EVENT_DEFAULTS)."""
    session = uow.session
    values, starts = _settle(session, dict(EVENT_DEFAULTS, **fields), organizer_id)
    event = Event(organizer_id=organizer_id, status="active", participants_count=0, **values)
    session.add(event)
    session.flush()
    record_occurrences(session, event.id, starts)
    uow.record(contracts.EventCreated(event=event_summary(event), organizer_id=organizer_id))
    return _seen_one(session, auth, organizer_id, event)


def get_event(uow: UnitOfWork, auth: Auth, viewer_id: str, event_id: str) -> SeenEvent:
    event = visible_event(uow.session, auth, viewer_id, event_id)
    return _seen_one(uow.session, auth, viewer_id, event)


def _organized_event(session: Session, auth: Auth, user_id: str, event_id: str) -> Event:
    """The event, locked for a change by its organizer (NotOrganizer for anyone else)."""
    event = visible_event(session, auth, user_id, event_id, for_update=True)
    if event.organizer_id != user_id:
        raise exceptions.NotOrganizer()
    return event


def update_event(uow: UnitOfWork, auth: Auth, user_id: str, event_id: str, changes: dict[str, Any]) -> SeenEvent:
    """Change an event. `changes` maps names of UPDATABLE to their new plain
    values; the fields it leaves out keep theirs."""
    session = uow.session
    event = _organized_event(session, auth, user_id, event_id)
    if event.status == "cancelled":
        raise exceptions.EventCancelled()
    current = {field: getattr(event, field) for field in UPDATABLE}
    if "starts_at" in changes and "ends_at" not in changes:
        # Moving an event keeps its length.
        changes = dict(changes, ends_at=changes["starts_at"] + (event.ends_at - event.starts_at))
    if not changes:
        return _seen_one(session, auth, user_id, event)
    values, starts = _settle(session, dict(current, **changes), user_id, event.participants_count)
    retimed = timing_changed(event, values)
    for field, value in values.items():
        setattr(event, field, value)
    event.updated_at = clock.now()
    session.flush()
    if retimed:
        record_occurrences(session, event.id, starts)
    uow.record(contracts.EventUpdated(event=event_summary(event), organizer_id=event.organizer_id,
                                      changed=sorted(changes)))
    return _seen_one(session, auth, user_id, event)


def cancel_event(uow: UnitOfWork, auth: Auth, user_id: str, event_id: str) -> None:
    event = _organized_event(uow.session, auth, user_id, event_id)
    if event.status != "cancelled":
        cancel(uow, event)


def cancel(uow: UnitOfWork, event: Event, reason: str | None = None) -> None:
    """Mark an event cancelled and tell its participants (event_cancelled)."""
    event.status = "cancelled"
    event.updated_at = clock.now()
    uow.session.flush()
    uow.record(contracts.EventCancelled(event=event_summary(event), organizer_id=event.organizer_id, reason=reason,
                                        participant_ids=participant_ids(uow.session, event)))


def participant_ids(session: Session, event: Event) -> list[str]:
    """Who joined the event, the organizer left out (oldest first)."""
    return list(session.execute(
        select(Participant.user_id)
        .where(Participant.event_id == event.id, Participant.user_id != event.organizer_id)
        .order_by(Participant.joined_at, Participant.user_id)
    ).scalars())


# Joining and leaving -----------------------------------------------------------------

def join(uow: UnitOfWork, auth: Auth, user_id: str, event_id: str) -> SeenEvent:
    """Join an event; joining again changes nothing. The event row is locked
    while the seat is taken, so concurrent joins cannot overfill it."""
    session = uow.session
    event = visible_event(session, auth, user_id, event_id, for_update=True)
    already = session.get(Participant, (event.id, user_id)) is not None
    if not already:
        if event.status == "cancelled":
            raise exceptions.EventCancelled()
        if event.capacity is not None and event.participants_count >= event.capacity:
            raise exceptions.EventFull(details={"capacity": event.capacity})
        session.execute(insert(Participant).values(event_id=event.id, user_id=user_id))
        event.participants_count += 1
        session.flush()
        uow.record(contracts.ParticipantJoined(event=event_summary(event), organizer_id=event.organizer_id,
                                               user_id=user_id))
    return _seen_one(session, auth, user_id, event)


def leave(uow: UnitOfWork, auth: Auth, user_id: str, event_id: str) -> None:
    session = uow.session
    event = visible_event(session, auth, user_id, event_id, for_update=True)
    removed = session.execute(
        table_of(Participant).delete()
        .where(Participant.event_id == event.id, Participant.user_id == user_id)
        .returning(Participant.user_id)
    ).first()
    if removed:
        event.participants_count -= 1


@dataclass(frozen=True)
class Attendee:
    """Someone who joined an event, with their summary from auth (None once the account is gone)."""
    user_id: str
    joined_at: datetime
    user: UserSummary | None


def participants_page(uow: UnitOfWork, auth: Auth, viewer_id: str, event_id: str,
                      after: tuple[datetime, str] | None, limit: int) -> list[Attendee]:
    """Up to limit + 1 Attendees, in the order they joined, after the keyset
    `after`; nobody the viewer blocks or who blocks the viewer is listed."""
    session = uow.session
    event = visible_event(session, auth, viewer_id, event_id)
    query = (
        select(Participant.user_id, Participant.joined_at)
        .where(Participant.event_id == event.id, ~either_blocks(viewer_id, Participant.user_id))
        .order_by(Participant.joined_at, Participant.user_id)
        .limit(limit + 1)
    )
    if after:
        query = query.where(tuple_(Participant.joined_at, Participant.user_id) > tuple_(*map(literal, after)))
    rows = session.execute(query).all()
    users = users_by_id(auth, [row.user_id for row in rows[:limit]])
    return [Attendee(row.user_id, row.joined_at, users.get(row.user_id)) for row in rows]


# Range queries -------------------------------------------------------------------------

def search_filters(viewer_id: str, q: str | None = None, organizer_id: str | None = None) -> list[ColumnElement[bool]]:
    filters = [visible_to(viewer_id), Event.status == "active"]
    if q:
        filters.append(Event.title.ilike("%" + _escape_like(q) + "%"))
    if organizer_id:
        filters.append(Event.organizer_id == organizer_id)
    return filters


def calendar_filters(user_id: str) -> list[ColumnElement[bool]]:
    # One set of ids, from two indexes, that the planner can join from.
    mine = union(
        select(Event.id).where(Event.organizer_id == user_id),
        select(Participant.event_id).where(Participant.user_id == user_id),
    )
    # An event I joined leaves my calendar while its organizer and I are blocked.
    return [Event.id.in_(mine), not_removed(), ~either_blocks(user_id, Event.organizer_id)]


def occurrences(session: Session, filters: Sequence[ColumnElement[bool]], window_from: datetime, window_to: datetime,
                after: tuple[datetime, str] | None, limit: int) -> list[tuple[datetime, Event]]:
    """Up to limit + 1 (start, event) pairs of the events matching `filters`
    whose start is in [from, to), in (start, event id) order, strictly after
    the `after` key: one keyset query over the occurrences table, however
    many events anyone has."""
    query = (
        select(Occurrence.starts_at, Event)
        .join(Event, Event.id == Occurrence.event_id)
        .where(*filters, Occurrence.starts_at >= window_from, Occurrence.starts_at < window_to)
        .order_by(Occurrence.starts_at, Occurrence.event_id)
        .limit(limit + 1)
    )
    if after:
        query = query.where(tuple_(Occurrence.starts_at, Occurrence.event_id) > tuple_(*map(literal, after)))
    return [(start, event) for start, event in session.execute(query)]


def _range_page(session: Session, auth: Auth, viewer_id: str, filters: Sequence[ColumnElement[bool]], window: Window,
                after: tuple[datetime, str] | None, limit: int) -> list[SeenEvent]:
    found = occurrences(session, filters, window[0], window[1], after, limit)
    # The row past the page only says there is a next one: nobody is looked up for it.
    users = users_by_id(auth, [event.organizer_id for _, event in found[:limit]])
    return seen_by(session, auth, viewer_id, [(event, start) for start, event in found], users)


def search_events(uow: UnitOfWork, auth: Auth, viewer_id: str, window: Window, after: tuple[datetime, str] | None,
                  limit: int, q: str | None = None, organizer_id: str | None = None) -> list[SeenEvent]:
    """Up to limit + 1 SeenEvents, one per occurrence starting in
    window = (from, to), of the active events the viewer may see, by start."""
    ensure_follows(uow.session, auth, viewer_id)
    return _range_page(uow.session, auth, viewer_id, search_filters(viewer_id, q, organizer_id), window, after,
                       limit)


def calendar(uow: UnitOfWork, auth: Auth, user_id: str, window: Window, after: tuple[datetime, str] | None,
             limit: int) -> list[SeenEvent]:
    """Like search_events, over the events the user organizes or joined."""
    # What I organize or joined: no follow list involved.
    return _range_page(uow.session, auth, user_id, calendar_filters(user_id), window, after, limit)


# For operators ------------------------------------------------------------------------

def counts(uow: UnitOfWork) -> dict[str, int | None]:
    def total(model: type[Any], *conditions: ColumnElement[bool]) -> int | None:
        return uow.session.scalar(select(func.count()).select_from(model).where(*conditions))

    return {
        "events": total(Event, Event.status == "active"),
        "cancelled_events": total(Event, Event.status == "cancelled"),
        "participants": total(Participant),
        "posts": total(Post),
        "media": total(Media),
        "follows_replicated": total(Follow),
    }
