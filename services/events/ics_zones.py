"""Time zones of an imported .ics file, without trusting its definitions.

Left to itself, icalendar turns every VTIMEZONE it reads into a tzinfo by
walking the zone's RRULE from its DTSTART up to the event (FREQ=SECONDLY from
1601: minutes of CPU and gigabytes of memory), and keeps that tzinfo in a
process-wide cache, where one user's TZID:X then changes the times of the next
file that names X. Here instead:

- an IANA name (Google, Apple) or a Windows name (Outlook, Exchange, through
  icalendar's own map) is the tz database's zone, whatever the file's VTIMEZONE
  says; so is a name ending in an IANA name (/mozilla.org/20050126_1/Europe/Berlin);
- any other TZID is read from the file's own VTIMEZONE, for that file alone and
  only in the years its events name: the onsets of each observance over the
  two years before the end of such a year (yearly rules only), paid from the
  import's budget (recurrence.Budget), kept for the rest of that file;
- icalendar builds no zone from a file, and caches none (NamedZonesOnly).
"""
from bisect import bisect_right
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import timezone as fixed_offset
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

from icalendar.cal import Component, Timezone
from icalendar.timezone import tzp
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON
from icalendar.timezone.zoneinfo import ZONEINFO

from services.events import ics_reading, recurrence

# (onset as a wall time, UTC offset from then on)
Transition = tuple[datetime, timedelta]

MAX_OBSERVANCES = 100
MAX_ONSET_DATES = 500
PAUSE_EVERY_OBSERVANCES = 10


class UnusableZone(ValueError):
    pass


class NamedZonesOnly(ZONEINFO):
    """icalendar's zoneinfo provider, minus zones built from files.

    icalendar asks its provider for a zone by name (DTSTART;TZID=...) and, on
    reading a VTIMEZONE, builds and caches a tzinfo for it unless the provider
    says it knows that TZID already. Claiming to know every TZID keeps every
    definition unbuilt; names are looked up only among the tz database's."""

    def timezone(self, name: str) -> tzinfo | None:
        return ZoneInfo(name) if recurrence.valid_timezone(name) else None

    def knows_timezone_id(self, id: str) -> bool:
        return True

    # As ZONEINFO's own: icalendar calls it so, while its abstract TZProvider
    # declares another signature.
    def create_timezone(self, tz: Timezone) -> NoReturn:  # type: ignore[override]
        raise ValueError("Time zones are not built from calendar files.")


# icalendar has one provider per process; this module is its only user.
tzp.use(NamedZonesOnly())


def named_zone(tzid: str) -> str | None:
    """The IANA name a TZID stands for, or None."""
    name = tzid.strip().strip("/")
    if recurrence.valid_timezone(name):
        return name
    if recurrence.valid_timezone(WINDOWS_TO_OLSON.get(name, "")):
        return WINDOWS_TO_OLSON[name]
    # libical and older Thunderbird put a prefix before the IANA name.
    segments = name.split("/")
    for first in range(1, len(segments) - 1):
        tail = "/".join(segments[first:])
        if recurrence.valid_timezone(tail):
            return tail
    return None


class FileZones:
    """The VTIMEZONEs of one file, by TZID, read only where an event names
    one (their content lines, from ics_reading.components)."""

    def __init__(self, zones: Iterable[list[str]], pause: ics_reading.Pause = lambda: None) -> None:
        self._lines: dict[str, list[str]] = {}
        self._read: dict[str, Component] = {}
        self._years: dict[tuple[str, int], tuple[list[Transition], timedelta]] = {}
        self._pause = pause
        for lines in zones:
            tzid = ics_reading.property_value(lines, "TZID")
            if tzid:
                self._lines.setdefault(_clean(tzid), lines)

    def moment(self, value: datetime, tzid: object, budget: recurrence.Budget) -> tuple[datetime, str]:
        """(UTC datetime, IANA zone name) of a DTSTART-like datetime, which
        icalendar made aware when it knew the zone by name, and left as a wall
        time otherwise. A floating time (no TZID) is taken as UTC; a zone the
        file defines has its series repeat in UTC."""
        if value.tzinfo is not None:
            return value.astimezone(UTC), getattr(value.tzinfo, "key", "UTC")
        if not tzid:
            return value.replace(tzinfo=UTC), "UTC"
        name = named_zone(str(tzid))
        if name:
            return value.replace(tzinfo=ZoneInfo(name)).astimezone(UTC), name
        return (value - self._offset(_clean(tzid), value, budget)).replace(tzinfo=UTC), "UTC"

    def _offset(self, tzid: str, wall: datetime, budget: recurrence.Budget) -> timedelta:
        """The UTC offset at a wall time in the file's definition of tzid:
        that of the observance with the latest onset at or before it (before
        the first onset, the offset the first one starts from)."""
        if (tzid, wall.year) not in self._years:
            self._years[tzid, wall.year] = self._transitions(tzid, wall.year, budget)
        transitions, before_any = self._years[tzid, wall.year]
        position = bisect_right(transitions, wall, key=lambda transition: transition[0])
        return transitions[position - 1][1] if position else before_any

    def _transitions(self, tzid: str, year: int, budget: recurrence.Budget) -> tuple[list[Transition], timedelta]:
        """([(onset, offset from then on)] by onset, enough for any wall time
        of the year; the offset before the first onset)."""
        observances = [part for part in self._definition(tzid).subcomponents if part.name in ("STANDARD", "DAYLIGHT")]
        if not 1 <= len(observances) <= MAX_OBSERVANCES:
            raise UnusableZone(f"Time zone {tzid[:64]!r} needs 1 to {MAX_OBSERVANCES} STANDARD or DAYLIGHT parts.")
        through = datetime(year, 12, 31, 23, 59, 59)
        transitions: list[Transition] = []
        earliest: tuple[datetime, timedelta] | None = None
        for number, observance in enumerate(observances, start=1):
            if number % PAUSE_EVERY_OBSERVANCES == 0:
                self._pause()
            first, before, after = _observance(observance, tzid)
            if earliest is None or first < earliest[0]:
                earliest = (first, before)
            transitions += [(onset, after) for onset in _onsets(observance, tzid, first, before, through, budget)]
        transitions.sort(key=lambda transition: transition[0])
        assert earliest is not None, "there is at least one observance"
        return transitions, earliest[1]

    def _definition(self, tzid: str) -> Component:
        if tzid not in self._read:
            if tzid not in self._lines:
                raise UnusableZone(f"Unknown time zone {tzid[:64]!r}, and the file does not define it.")
            try:
                self._read[tzid] = ics_reading.read_component(self._lines[tzid])
            except ics_reading.Unreadable as exc:
                raise UnusableZone(f"Time zone {tzid[:64]!r}: {exc}") from None
        return self._read[tzid]


def rule_text(prop: Any) -> str:
    """An RRULE property's text as icalendar writes it back; InvalidRule when
    it cannot (some values it reads, it cannot write)."""
    try:
        text: str = prop.to_ical().decode()
        return text
    except (TypeError, ValueError, AttributeError) as exc:
        raise recurrence.InvalidRule(f"Not a valid RRULE: {exc}"[:200]) from None


def _clean(tzid: object) -> str:
    return str(tzid).strip().strip("/")


def _observance(observance: Component, tzid: str) -> tuple[datetime, timedelta, timedelta]:
    """(first onset as a wall time, offset before it, offset after it)."""
    fields = [observance.get(name) for name in ("DTSTART", "TZOFFSETFROM", "TZOFFSETTO")]
    if any(field is None or isinstance(field, list) for field in fields):
        raise UnusableZone(f"Time zone {tzid[:64]!r} has a {observance.name} without exactly one DTSTART, "
                           "TZOFFSETFROM and TZOFFSETTO.")
    start, before, after = getattr(fields[0], "dt", None), fields[1].td, fields[2].td
    if isinstance(start, datetime) and start.tzinfo is None:
        return start, before, after
    if isinstance(start, date) and not isinstance(start, datetime):
        return datetime(start.year, start.month, start.day), before, after
    raise UnusableZone(f"Time zone {tzid[:64]!r}: a {observance.name}'s DTSTART must be a local time.")


def _onsets(observance: Component, tzid: str, first: datetime, before: timedelta, through: datetime,
            budget: recurrence.Budget) -> list[datetime]:
    """The observance's onsets up to `through` that can be the latest before
    a wall time of through's year, as wall times."""
    zone = fixed_offset(before)
    onsets = [first]
    rule = observance.get("RRULE")
    if isinstance(rule, list):
        raise UnusableZone(f"Time zone {tzid[:64]!r}: a {observance.name} has more than one RRULE.")
    if rule is not None:
        try:
            onsets = [onset.replace(tzinfo=None) for onset in recurrence.recent_onsets(
                rule_text(rule), first.replace(tzinfo=zone), through.replace(tzinfo=zone), budget)]
        except recurrence.InvalidRule as exc:
            raise UnusableZone(f"Time zone {tzid[:64]!r}: {exc}") from None
    onsets += _onset_dates(observance, tzid, budget)
    return [onset for onset in onsets if onset <= through]


def _onset_dates(observance: Component, tzid: str, budget: recurrence.Budget) -> list[datetime]:
    """The observance's RDATEs, as wall times."""
    found = observance.get("RDATE")
    if found is None:
        return []
    values = [item.dt for entry in (found if isinstance(found, list) else [found]) for item in entry.dts]
    if len(values) > MAX_ONSET_DATES:
        raise UnusableZone(f"Time zone {tzid[:64]!r} lists more than {MAX_ONSET_DATES} RDATEs.")
    budget.spend(len(values))
    onsets: list[datetime] = []
    for value in values:
        if isinstance(value, datetime) and value.tzinfo is None:
            onsets.append(value)
        elif isinstance(value, date) and not isinstance(value, datetime):
            onsets.append(datetime(value.year, value.month, value.day))
        else:
            raise UnusableZone(f"Time zone {tzid[:64]!r}: RDATEs must be local times.")
    return onsets
