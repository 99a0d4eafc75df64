"""Events: creating and changing them, who may see them, joining and leaving,
and range queries over their occurrences.

Functions take a SQLAlchemy session and the collaborators they need; they know
nothing of HTTP or AMQP. Each commits its own unit of work, with the domain
events it records in the outbox.
"""

from sqlalchemy import and_, delete, exists, func, or_, select, tuple_, union
from sqlalchemy.dialects.postgresql import insert

from services.events import exceptions, recurrence, schemas
from services.events.models import Event, Follow, Media, Occurrence, Participant, Post
from services.events.people import ensure_follows, users_by_id
from services.shared import clock
from services.shared.errors import DomainError, InvalidInput

# What decides when an event's occurrences start: changing any of them
# rewrites its rows in the occurrences table.
TIMING_FIELDS = ("starts_at", "rrule", "timezone")


def _escape_like(text):
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# Who sees what -------------------------------------------------------------------

def participates(viewer_id):
    return exists().where(Participant.event_id == Event.id, Participant.user_id == viewer_id)


def visible_to(viewer_id):
    """SQL condition: the viewer may see the event (else it is a 404 to them)."""
    follows_organizer = exists().where(Follow.follower_id == viewer_id, Follow.followee_id == Event.organizer_id)
    return or_(
        Event.visibility == "public",
        Event.organizer_id == viewer_id,
        and_(Event.visibility == "followers", follows_organizer),
        participates(viewer_id),
    )


def visible_event(session, auth, viewer_id, event_id, for_update=False):
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
        session.rollback()
        raise exceptions.EventNotFound()
    return event


def statuses_of(session, viewer_id, events):
    """my_status of each event: organizer, joined or None."""
    ids = [event.id for event in events]
    joined = set(session.execute(
        select(Participant.event_id).where(Participant.user_id == viewer_id, Participant.event_id.in_(ids))
    ).scalars()) if ids else set()
    return {
        event.id: "organizer" if event.organizer_id == viewer_id else ("joined" if event.id in joined else None)
        for event in events
    }


def views(session, auth, viewer_id, events_with_starts):
    """Views of (event, occurrence start) pairs, with one user lookup for all."""
    events = [event for event, _ in events_with_starts]
    users = users_by_id(auth, [event.organizer_id for event in events])
    statuses = statuses_of(session, viewer_id, events)
    return [schemas.event_view(event, users, statuses[event.id], start) for event, start in events_with_starts]


def event_message(event):
    """What an event's domain events carry (`event_id` is the message's own id)."""
    return {
        "event": {
            "id": event.id,
            "title": event.title,
            "starts_at": schemas.iso(event.starts_at),
            "ends_at": schemas.iso(event.ends_at),
            "visibility": event.visibility,
            "status": event.status,
        },
        "organizer_id": event.organizer_id,
    }


# Occurrences ---------------------------------------------------------------------

def series_starts(starts_at, rrule, timezone):
    """Every occurrence start (UTC) of an event, in order: its own start, or
    its rule's within the recurrence cap; InvalidRule if the rule yields none."""
    if not rrule:
        return [starts_at]
    return recurrence.expand(rrule, starts_at, timezone)


def timing_changed(event, values):
    return any(getattr(event, field) != values[field] for field in TIMING_FIELDS)


def record_occurrences(session, event_id, starts):
    """Make `starts` the event's occurrences, in the caller's transaction."""
    session.execute(delete(Occurrence).where(Occurrence.event_id == event_id))
    # Two wall times can name one instant (a time the clock skips is read as
    # the hour after it): the key holds each instant once.
    rows = [{"event_id": event_id, "starts_at": start} for start in dict.fromkeys(starts)]
    session.execute(insert(Occurrence), rows)


# Creating and changing -------------------------------------------------------------

def _settle(session, values, organizer_id, participants_count=0):
    """Apply defaults and cross-field rules to an event's full set of values;
    returns them with the event's occurrence starts."""
    if values.get("ends_at") is None:
        values["ends_at"] = values["starts_at"] + schemas.DEFAULT_EVENT_DURATION
    errors = schemas.check_times(values["starts_at"], values["ends_at"])
    values["rrule"] = values.get("rrule") or None
    starts = None
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


def _is_image_of(session, media_id, owner_id):
    media = session.get(Media, media_id)
    return media is not None and media.owner_id == owner_id and media.content_type.startswith("image/")


EVENT_DEFAULTS = {
    "description": "", "location": "", "is_online": False, "timezone": "UTC",
    "capacity": None, "cover_media_id": None, "rrule": None, "ends_at": None,
}


def create_event(session, outbox, auth, organizer_id, data):
    values, starts = _settle(session, dict(EVENT_DEFAULTS, **data), organizer_id)
    event = Event(organizer_id=organizer_id, status="active", participants_count=0, **values)
    session.add(event)
    session.flush()
    record_occurrences(session, event.id, starts)
    outbox.add(session, "event_created", event_message(event))
    session.commit()
    return views(session, auth, organizer_id, [(event, None)])[0]


def get_event(session, auth, viewer_id, event_id):
    event = visible_event(session, auth, viewer_id, event_id)
    return views(session, auth, viewer_id, [(event, None)])[0]


def _organized_event(session, auth, user_id, event_id):
    event = visible_event(session, auth, user_id, event_id, for_update=True)
    if event.organizer_id != user_id:
        session.rollback()
        raise exceptions.NotOrganizer()
    return event


UPDATABLE = ("title", "description", "starts_at", "ends_at", "timezone", "location", "is_online",
             "visibility", "capacity", "cover_media_id", "rrule")


def update_event(session, outbox, auth, user_id, event_id, changes):
    event = _organized_event(session, auth, user_id, event_id)
    if event.status == "cancelled":
        session.rollback()
        raise exceptions.EventCancelled()
    current = {field: getattr(event, field) for field in UPDATABLE}
    if "starts_at" in changes and "ends_at" not in changes:
        # Moving an event keeps its length.
        changes = dict(changes, ends_at=changes["starts_at"] + (event.ends_at - event.starts_at))
    if not changes:
        session.commit()
        return views(session, auth, user_id, [(event, None)])[0]
    try:
        values, starts = _settle(session, dict(current, **changes), user_id, event.participants_count)
    except DomainError:
        session.rollback()  # releases the row lock now rather than at teardown
        raise
    retimed = timing_changed(event, values)
    for field, value in values.items():
        setattr(event, field, value)
    event.updated_at = clock.now()
    session.flush()
    if retimed:
        record_occurrences(session, event.id, starts)
    outbox.add(session, "event_updated", dict(event_message(event), changed=sorted(changes)))
    session.commit()
    return views(session, auth, user_id, [(event, None)])[0]


def cancel_event(session, outbox, auth, user_id, event_id):
    event = _organized_event(session, auth, user_id, event_id)
    if event.status != "cancelled":
        _cancel(session, outbox, event)
    session.commit()


def _cancel(session, outbox, event):
    event.status = "cancelled"
    event.updated_at = clock.now()
    session.flush()
    outbox.add(session, "event_cancelled", event_message(event))


# Joining and leaving -----------------------------------------------------------------

def join(session, outbox, auth, user_id, event_id):
    """Join an event; joining again changes nothing. The event row is locked
    while the seat is taken, so concurrent joins cannot overfill it."""
    event = visible_event(session, auth, user_id, event_id, for_update=True)
    already = session.get(Participant, (event.id, user_id)) is not None
    if not already:
        if event.status == "cancelled":
            session.rollback()
            raise exceptions.EventCancelled()
        if event.capacity is not None and event.participants_count >= event.capacity:
            session.rollback()
            raise exceptions.EventFull(details={"capacity": event.capacity})
        session.execute(insert(Participant).values(event_id=event.id, user_id=user_id))
        event.participants_count += 1
        session.flush()
        outbox.add(session, "participant_joined", dict(event_message(event), user_id=user_id))
    session.commit()
    return views(session, auth, user_id, [(event, None)])[0]


def leave(session, auth, user_id, event_id):
    event = visible_event(session, auth, user_id, event_id, for_update=True)
    removed = session.execute(
        Participant.__table__.delete()
        .where(Participant.event_id == event.id, Participant.user_id == user_id)
        .returning(Participant.user_id)
    ).first()
    if removed:
        event.participants_count -= 1
    session.commit()


def participants_page(session, auth, viewer_id, event_id, limit, after):
    event = visible_event(session, auth, viewer_id, event_id)
    query = (
        select(Participant.user_id, Participant.joined_at)
        .where(Participant.event_id == event.id)
        .order_by(Participant.joined_at, Participant.user_id)
        .limit(limit + 1)
    )
    if after:
        query = query.where(tuple_(Participant.joined_at, Participant.user_id) > tuple_(*after))
    rows = session.execute(query).all()
    session.commit()
    users = users_by_id(auth, [row.user_id for row in rows[:limit]])
    return rows, users


# Range queries -------------------------------------------------------------------------

def search_filters(viewer_id, q=None, organizer_id=None):
    filters = [visible_to(viewer_id), Event.status == "active"]
    if q:
        filters.append(Event.title.ilike("%" + _escape_like(q) + "%"))
    if organizer_id:
        filters.append(Event.organizer_id == organizer_id)
    return filters


def calendar_filters(user_id):
    # One set of ids, from two indexes, that the planner can join from.
    mine = union(
        select(Event.id).where(Event.organizer_id == user_id),
        select(Participant.event_id).where(Participant.user_id == user_id),
    )
    return [Event.id.in_(mine)]


def occurrences(session, filters, window_from, window_to, after, limit):
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
        query = query.where(tuple_(Occurrence.starts_at, Occurrence.event_id) > tuple_(*after))
    return [(start, event) for start, event in session.execute(query)]


def range_page(session, auth, viewer_id, filters, args, after, needs_follows=True):
    if needs_follows:
        ensure_follows(session, auth, viewer_id)
    found = occurrences(session, filters, args["range_from"], args["range_to"], after, args["limit"])
    shown = found[: args["limit"]]
    items = views(session, auth, viewer_id, [(event, start) for start, event in shown])
    session.commit()
    return found, items


# For operators ------------------------------------------------------------------------

def counts(session):
    def total(model, *conditions):
        return session.scalar(select(func.count()).select_from(model).where(*conditions))

    answer = {
        "events": total(Event, Event.status == "active"),
        "cancelled_events": total(Event, Event.status == "cancelled"),
        "participants": total(Participant),
        "posts": total(Post),
        "media": total(Media),
        "follows_replicated": total(Follow),
    }
    session.commit()
    return answer
