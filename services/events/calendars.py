"""iCalendar: my calendar as an .ics file, and importing one.

An import is read whole and checked before anything is written: any VEVENT
that cannot be used makes the whole import a 422 naming it, and a good file is
written in one transaction. Events are matched to earlier imports by UID, so
importing the same file again updates instead of duplicating.

Guards against hostile files: a byte limit, a limit on components counted
before the parser runs, and the same RRULE rules and caps as the API. The file
is read in slices (ics_reading), with a pause between any two, so that an
import on the event loop never holds it for long. Every value is range-checked
before any arithmetic, the database or dateutil sees it. Time zones are the tz
database's, by name; a file's own VTIMEZONE counts only for a TZID that names
no known zone, for that file alone (ics_zones). All expansion work, recurrence
rules and time zone rules alike, is paid from one budget per import, and
checking stops at the first rule refused.
"""
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar, Component
from icalendar import Event as VEvent
from icalendar.prop import vRecur
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.events import exceptions, ics_reading, ics_zones, people, recurrence, schedule
from services.events.models import Event, Participant
from services.events.schedule import event_summary, record_occurrences, timing_changed
from services.shared import clock, contracts
from services.shared.errors import Conflict
from services.shared.ids import parse_uuid
from services.shared.unit_of_work import UnitOfWork

MAX_ICS_BYTES = 1024 * 1024
MAX_COMPONENTS = 2000
MAX_EVENTS = 500
MAX_EXPORTED_EVENTS = 2000
MAX_ERRORS_LISTED = 20
EXPORT_UID_DOMAIN = "lifytp"
PRODID = "-//LifyTP//Events//EN"
_BEGIN = re.compile(rb"^BEGIN:", re.MULTILINE | re.IGNORECASE)
# Properties an event is read from: one icalendar could not read refuses the
# event (icalendar drops it and carries on, so a broken RRULE would import a
# single event, a broken DTEND a one-hour one).
READ_PROPERTIES = ("DTSTART", "DTEND", "DURATION", "RRULE")
OCCURRENCE_STARTS = "occurrence_starts"
# An imported event: Event columns by name, and its OCCURRENCE_STARTS.
EventValues = dict[str, Any]
IMPORTED_FIELDS = ("title", "description", "location", "starts_at", "ends_at", "timezone", "rrule", "status")


# Export --------------------------------------------------------------------------

def export_uid(event: Event) -> str:
    return event.ical_uid or f"{event.id}@{EXPORT_UID_DOMAIN}"


def my_events(session: Session, user_id: str) -> Sequence[Event]:
    joined = select(Participant.event_id).where(Participant.user_id == user_id)
    return session.execute(
        select(Event)
        .where(or_(Event.organizer_id == user_id, Event.id.in_(joined)), Event.removed_at.is_(None),
               ~people.either_blocks(user_id, Event.organizer_id))
        .order_by(Event.starts_at.desc())
        .limit(MAX_EXPORTED_EVENTS)
    ).scalars().all()


def export(uow: UnitOfWork, user_id: str) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", "LifyTP")
    for event in my_events(uow.session, user_id):
        calendar.add_component(_vevent(event))
    calendar.add_missing_timezones()
    return calendar.to_ical()


def _vevent(event: Event) -> VEvent:
    zone = ZoneInfo(event.timezone)
    vevent = VEvent()
    vevent.add("uid", export_uid(event))
    vevent.add("dtstamp", event.updated_at.astimezone(UTC))
    vevent.add("summary", event.title)
    # Local times with their zone: a weekly rule stays at the same wall time.
    vevent.add("dtstart", event.starts_at.astimezone(zone))
    vevent.add("dtend", event.ends_at.astimezone(zone))
    if event.description:
        vevent.add("description", event.description)
    if event.location:
        vevent.add("location", event.location)
    if event.rrule:
        vevent.add("rrule", vRecur.from_ical(event.rrule))
    vevent.add("status", "CANCELLED" if event.status == "cancelled" else "CONFIRMED")
    return vevent


# Import --------------------------------------------------------------------------

def _carry_on() -> None:
    pass


def parse(data: bytes, pause: ics_reading.Pause = _carry_on) -> tuple[list[EventValues], int]:
    """The usable VEVENTs of an .ics file as event values, and how many were
    skipped (overrides of single occurrences, repeated UIDs); InvalidCalendar
    naming every problem otherwise, up to the first refused rule or zone.

    pause() is called between slices of the work, each well under 100 ms of
    CPU: a caller on an event loop passes what lets the loop serve others."""
    if len(data) > MAX_ICS_BYTES:
        raise exceptions.InvalidCalendar(details={"file": [f"Larger than {MAX_ICS_BYTES} bytes."]})
    if len(_BEGIN.findall(data)) > MAX_COMPONENTS:
        raise exceptions.InvalidCalendar(details={"file": [f"More than {MAX_COMPONENTS} components."]})
    try:
        found = ics_reading.components(ics_reading.content_lines(data, pause), pause)
    except ics_reading.Unreadable as exc:
        raise exceptions.InvalidCalendar(details={"file": [str(exc)]}) from None
    events = [lines for name, lines in found if name == "VEVENT"]
    if len(events) > MAX_EVENTS:
        raise exceptions.InvalidCalendar(details={"file": [f"More than {MAX_EVENTS} events."]})
    zones = ics_zones.FileZones([lines for name, lines in found if name == "VTIMEZONE"], pause)
    return _checked(events, zones, pause)


def _checked(events: list[list[str]], zones: ics_zones.FileZones,
             pause: ics_reading.Pause) -> tuple[list[EventValues], int]:
    """(event values, how many skipped) of the events' content lines, read one
    at a time with one expansion budget; InvalidCalendar listing the problems."""
    budget = recurrence.Budget()
    parsed: list[EventValues] = []
    errors: list[dict[str, Any]] = []
    skipped = 0
    seen: set[str] = set()
    stopped_at: int | None = None
    for position, lines in enumerate(events, start=1):
        pause()
        vevent: Component | None = None
        try:
            vevent = _read_event(lines)
            if "RECURRENCE-ID" in vevent:
                skipped += 1
                continue
            values = _event_values(vevent, zones, budget)
        except _Unusable as exc:
            uid = str(vevent.get("UID", ""))[:255] if vevent is not None else ""
            errors.append({"event": position, "uid": uid or None, "error": str(exc)})
            if exc.ends_checking:
                stopped_at = position
                break
            continue
        if values["ical_uid"] in seen:
            skipped += 1
            continue
        seen.add(values["ical_uid"])
        parsed.append(values)
    if errors:
        raise _refusal(errors, stopped_at)
    return parsed, skipped


def _read_event(lines: list[str]) -> Component:
    try:
        return ics_reading.read_component(lines)
    except ics_reading.Unreadable as exc:
        raise _Unusable(str(exc)) from None


def _refusal(errors: list[dict[str, Any]], stopped_at: int | None) -> exceptions.InvalidCalendar:
    details: dict[str, Any] = {"events": errors[:MAX_ERRORS_LISTED], "invalid_count": len(errors)}
    if stopped_at is None:
        return exceptions.InvalidCalendar(
            f"{len(errors)} of the calendar's events could not be imported; nothing was.", details=details)
    details["stopped_at_event"] = stopped_at
    return exceptions.InvalidCalendar(
        f"{len(errors)} of the calendar's events could not be imported, and checking stopped at event "
        f"{stopped_at}, whose recurrence or time zone could not be used; nothing was imported.", details=details)


class _Unusable(ValueError):
    """An event that cannot be imported. ends_checking: its problem cost
    expansion work (a rule or time zone refused), so no later event is read."""

    def __init__(self, message: str, ends_checking: bool = False) -> None:
        super().__init__(message)
        self.ends_checking = ends_checking


def _text(vevent: Component, name: str, limit: int) -> str:
    """A property's text under the policy every stored string follows: what
    the API would refuse (controls, bidi overrides, Zalgo marks, invisible-only
    values) is removed from foreign data rather than refusing the import."""
    from services.shared import text

    value = vevent.get(name)
    if value is None:
        return ""
    multiline = name == "DESCRIPTION"
    cleaned = text.clean(str(value), multiline=multiline)
    # Cut to the column's length, then cleaned again: a cut can leave
    # trailing spaces, or only invisible characters.
    return text.clean(cleaned[:limit], multiline=multiline)


def _event_values(vevent: Component, zones: ics_zones.FileZones, budget: recurrence.Budget) -> EventValues:
    # (property name or None, message) pairs, though icalendar's stubs declare strings.
    problems: list[tuple[str | None, str]] = vevent.errors  # type: ignore[assignment]
    unreadable = [(name, problem) for name, problem in problems if name in READ_PROPERTIES]
    if unreadable:
        name, problem = unreadable[0]
        raise _Unusable(f"{name} could not be read: {problem}"[:300], ends_checking=name == "RRULE")
    uid = _text(vevent, "UID", 10_000)
    if not uid:
        raise _Unusable("UID is missing.")
    if len(uid) > 255:
        raise _Unusable("UID is longer than 255 characters.")
    title = _text(vevent, "SUMMARY", schedule.MAX_TITLE_LENGTH) or "(untitled)"
    starts_at, timezone, all_day = _moment(vevent, "DTSTART", zones, budget)
    ends_at = _end(vevent, starts_at, all_day, zones, budget)
    errors = schedule.check_times(starts_at, ends_at)
    if errors:
        raise _Unusable(("DTEND: " if "DTEND" in vevent else "DURATION: ") + errors["ends_at"][0])
    values: EventValues = {
        "ical_uid": uid, "title": title, "description": _text(vevent, "DESCRIPTION", schedule.MAX_DESCRIPTION_LENGTH),
        "location": _text(vevent, "LOCATION", schedule.MAX_LOCATION_LENGTH), "starts_at": starts_at, "ends_at": ends_at,
        "timezone": timezone, "rrule": None, "series_ends_at": ends_at,
        "status": "cancelled" if _text(vevent, "STATUS", 20).upper() == "CANCELLED" else "active",
        # Not a column: kept so that writing the import expands nothing again.
        OCCURRENCE_STARTS: [starts_at],
    }
    rules = vevent.get("RRULE")
    if rules is not None:
        if isinstance(rules, list):
            raise _Unusable("More than one RRULE.", ends_checking=True)
        try:
            rule = recurrence.normalise_rule(ics_zones.rule_text(rules))
            starts = recurrence.expand(rule, starts_at, timezone, budget)
        except (recurrence.InvalidRule, ValueError) as exc:
            raise _Unusable(f"RRULE: {exc}", ends_checking=True) from None
        values["rrule"] = rule
        values["series_ends_at"] = starts[-1] + (ends_at - starts_at)
        values[OCCURRENCE_STARTS] = starts
    return values


def _moment(vevent: Component, name: str, zones: ics_zones.FileZones,
            budget: recurrence.Budget) -> tuple[datetime, str, bool]:
    """(UTC datetime, IANA zone name, all-day?) of a DTSTART-like property."""
    prop = vevent.get(name)
    if prop is None:
        raise _Unusable(f"{name} is missing.")
    if isinstance(prop, list):
        raise _Unusable(f"More than one {name}.")
    try:
        value = prop.dt
    except AttributeError:
        raise _Unusable(f"{name} is not a date or time.") from None
    zone: str | None
    if isinstance(value, datetime):
        # Checked before any conversion: year 1 in Tokyo or 9999 in Los
        # Angeles is out of datetime's range once in UTC.
        if not schedule.EARLIEST.year - 1 <= value.year <= schedule.LATEST.year:
            raise _Unusable(f"{name} is out of range.")
        try:
            moment, zone = zones.moment(value, prop.params.get("TZID"), budget)
        except (ics_zones.UnusableZone, recurrence.InvalidRule) as exc:
            raise _Unusable(f"{name}: {exc}", ends_checking=True) from None
        all_day = False
    elif isinstance(value, date):
        zone, moment, all_day = None, datetime(value.year, value.month, value.day, tzinfo=UTC), True
    else:
        raise _Unusable(f"{name} is not a date or time.")
    if not schedule.EARLIEST <= moment < schedule.LATEST:
        raise _Unusable(f"{name} is out of range.")
    return moment, zone if zone and recurrence.valid_timezone(zone) else "UTC", all_day


def _end(vevent: Component, starts_at: datetime, all_day: bool, zones: ics_zones.FileZones,
         budget: recurrence.Budget) -> datetime:
    if vevent.get("DTEND") is not None:
        return _moment(vevent, "DTEND", zones, budget)[0]
    duration = vevent.get("DURATION")
    if duration is not None:
        delta = getattr(duration, "dt", None)
        if not isinstance(delta, timedelta):
            raise _Unusable("DURATION is not a duration.")
        if abs(delta) > schedule.MAX_EVENT_DURATION:
            # Checked before the addition, which DURATION:P99999999W overflows.
            raise _Unusable(f"DURATION: An event lasts at most {schedule.MAX_EVENT_DURATION.days} days.")
        return starts_at + delta
    return starts_at + (timedelta(days=1) if all_day else schedule.DEFAULT_EVENT_DURATION)


def _own_export_ids(parsed: list[EventValues]) -> dict[str, str]:
    """Events of this system named by exported UIDs (<event id>@lifytp)."""
    ids = {}
    for values in parsed:
        local, _, domain = values["ical_uid"].rpartition("@")
        event_id = parse_uuid(local) if domain == EXPORT_UID_DOMAIN else None
        if event_id:
            ids[values["ical_uid"]] = event_id
    return ids


def import_events(uow: UnitOfWork, owner_id: str, parsed: list[EventValues], skipped: int) -> dict[str, Any]:
    """Create or update the owner's imported events, all in the caller's transaction."""
    session = uow.session
    counts: dict[str, Any] = {"imported": 0, "updated": 0, "skipped": skipped, "errors": []}
    own_exports = _own_export_ids(parsed)
    known_exports = set(session.execute(select(Event.id).where(Event.id.in_(own_exports.values()))).scalars()) \
        if own_exports else set()
    uids = [values["ical_uid"] for values in parsed]
    existing = {
        event.ical_uid: event for event in session.execute(
            select(Event).where(Event.organizer_id == owner_id, Event.ical_uid.in_(uids)).with_for_update()
        ).scalars()
    } if uids else {}
    try:
        for values in parsed:
            if own_exports.get(values["ical_uid"]) in known_exports:
                counts["skipped"] += 1  # an event of ours, exported and brought back
            elif values["ical_uid"] in existing:
                counts[_update(uow, existing[values["ical_uid"]], values)] += 1
            else:
                _create(uow, owner_id, values)
                counts["imported"] += 1
        # Written now rather than at the commit, so that a clash is met here.
        session.flush()
    except IntegrityError:
        # A concurrent import inserted one of these UIDs first: the insert
        # meets its row. The caller's rollback undoes the rest of this import.
        raise Conflict("Another import of the same events ran at once; try again.", code="IMPORT_CONFLICT") from None
    return counts


def _create(uow: UnitOfWork, owner_id: str, values: EventValues) -> None:
    values = dict(values)
    starts = values.pop(OCCURRENCE_STARTS)
    event = Event(organizer_id=owner_id, visibility="private", participants_count=0, is_online=False, **values)
    uow.session.add(event)
    uow.session.flush()
    record_occurrences(uow.session, event.id, starts)
    uow.record(contracts.EventCreated(event=event_summary(event), organizer_id=owner_id))


def _update(uow: UnitOfWork, event: Event, values: EventValues) -> str:
    changed = sorted(field for field in IMPORTED_FIELDS if getattr(event, field) != values[field])
    if not changed:
        return "skipped"
    values = dict(values)
    starts = values.pop(OCCURRENCE_STARTS)
    retimed = timing_changed(event, values)
    was_cancelled = event.status == "cancelled"
    for field, value in values.items():
        setattr(event, field, value)
    event.updated_at = clock.now()
    uow.session.flush()
    if retimed:
        record_occurrences(uow.session, event.id, starts)
    summary = event_summary(event)
    if event.status == "cancelled" and not was_cancelled:
        uow.record(contracts.EventCancelled(event=summary, organizer_id=event.organizer_id,
                                            participant_ids=schedule.participant_ids(uow.session, event)))
    else:
        uow.record(contracts.EventUpdated(event=summary, organizer_id=event.organizer_id, changed=changed))
    return "updated"
