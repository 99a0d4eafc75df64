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
  only at the times its events name: the UTC offset at one wall time, from
  yearly rules searched over the two years before it, paid from the import's
  budget (recurrence.Budget);
- icalendar builds no zone from a file, and caches none (NamedZonesOnly).
"""
from datetime import UTC, date, datetime
from datetime import timezone as fixed_offset
from zoneinfo import ZoneInfo

from icalendar.timezone import tzp
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON
from icalendar.timezone.zoneinfo import ZONEINFO

from services.events import recurrence

MAX_OBSERVANCES = 100
MAX_ONSET_DATES = 1000


class UnusableZone(ValueError):
    pass


class NamedZonesOnly(ZONEINFO):
    """icalendar's zoneinfo provider, minus zones built from files.

    icalendar asks its provider for a zone by name (DTSTART;TZID=...) and, on
    reading a VTIMEZONE, builds and caches a tzinfo for it unless the provider
    says it knows that TZID already. Claiming to know every TZID keeps every
    definition unbuilt; names are looked up only among the tz database's."""

    def timezone(self, name):
        return ZoneInfo(name) if recurrence.valid_timezone(name) else None

    def knows_timezone_id(self, id):
        return True

    def create_timezone(self, tz):
        raise ValueError("Time zones are not built from calendar files.")


# icalendar has one provider per process; this module is its only user.
tzp.use(NamedZonesOnly())


def named_zone(tzid):
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
    """The VTIMEZONEs of one file, by TZID, read only where an event names one."""

    def __init__(self, calendar):
        self._definitions = {}
        for component in calendar.subcomponents:
            if component.name == "VTIMEZONE" and "TZID" in component:
                self._definitions.setdefault(_clean(component["TZID"]), component)

    def moment(self, value, tzid, budget):
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

    def _offset(self, tzid, wall, budget):
        """The UTC offset at a wall time in the file's definition of tzid:
        that of the observance with the latest onset at or before it (before
        the first onset, the offset the first one starts from)."""
        definition = self._definitions.get(tzid)
        if definition is None:
            raise UnusableZone(f"Unknown time zone {tzid[:64]!r}, and the file does not define it.")
        observances = [part for part in definition.subcomponents if part.name in ("STANDARD", "DAYLIGHT")]
        if not 1 <= len(observances) <= MAX_OBSERVANCES:
            raise UnusableZone(f"Time zone {tzid[:64]!r} needs 1 to {MAX_OBSERVANCES} STANDARD or DAYLIGHT parts.")
        latest, earliest = None, None
        for observance in observances:
            first, before, after = _observance(observance, tzid)
            if earliest is None or first < earliest[0]:
                earliest = (first, before)
            onset = _latest_onset(observance, tzid, first, before, wall, budget)
            if onset is not None and (latest is None or onset > latest[0]):
                latest = (onset, after)
        return (latest or earliest)[1]


def rule_text(prop):
    """An RRULE property's text as icalendar writes it back; InvalidRule when
    it cannot (some values it reads, it cannot write)."""
    try:
        return prop.to_ical().decode()
    except (TypeError, ValueError, AttributeError) as exc:
        raise recurrence.InvalidRule(f"Not a valid RRULE: {exc}"[:200]) from None


def _clean(tzid):
    return str(tzid).strip().strip("/")


def _observance(observance, tzid):
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


def _latest_onset(observance, tzid, first, before, wall, budget):
    """The observance's latest onset at or before wall, as a wall time; None if none."""
    zone = fixed_offset(before)
    onsets = []
    rule = observance.get("RRULE")
    if rule is None:
        onsets.append(first)
    elif isinstance(rule, list):
        raise UnusableZone(f"Time zone {tzid[:64]!r}: a {observance.name} has more than one RRULE.")
    else:
        try:
            onset = recurrence.latest_onset(rule_text(rule), first.replace(tzinfo=zone),
                                            wall.replace(tzinfo=zone), budget)
        except recurrence.InvalidRule as exc:
            raise UnusableZone(f"Time zone {tzid[:64]!r}: {exc}") from None
        if onset is not None:
            onsets.append(onset.replace(tzinfo=None))
    onsets += _onset_dates(observance, tzid, budget)
    return max((onset for onset in onsets if onset <= wall), default=None)


def _onset_dates(observance, tzid, budget):
    """The observance's RDATEs, as wall times."""
    found = observance.get("RDATE")
    if found is None:
        return []
    values = [item.dt for entry in (found if isinstance(found, list) else [found]) for item in entry.dts]
    if len(values) > MAX_ONSET_DATES:
        raise UnusableZone(f"Time zone {tzid[:64]!r} lists more than {MAX_ONSET_DATES} RDATEs.")
    budget.spend(len(values))
    onsets = []
    for value in values:
        if isinstance(value, datetime) and value.tzinfo is None:
            onsets.append(value)
        elif isinstance(value, date) and not isinstance(value, datetime):
            onsets.append(datetime(value.year, value.month, value.day))
        else:
            raise UnusableZone(f"Time zone {tzid[:64]!r}: RDATEs must be local times.")
    return onsets
