"""Time zones in imported .ics files: the tz database's zones by name, a file's
own VTIMEZONE only for that file and only within a budget, nothing built or
cached by icalendar; and every parsed value range-checked (a fuzzer holds
calendars.parse to InvalidCalendar for anything it cannot use)."""
import random
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar.timezone import tzp

from services.events import calendars, ics_reading, ics_zones, recurrence, schedule
from services.events.exceptions import InvalidCalendar

BERLIN_LIKE = """BEGIN:VTIMEZONE\r
TZID:{tzid}\r
BEGIN:STANDARD\r
DTSTART:16010101T030000\r
TZOFFSETFROM:+0200\r
TZOFFSETTO:+0100\r
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10\r
END:STANDARD\r
BEGIN:DAYLIGHT\r
DTSTART:16010101T020000\r
TZOFFSETFROM:+0100\r
TZOFFSETTO:+0200\r
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3\r
END:DAYLIGHT\r
END:VTIMEZONE\r
"""


def calendar(zones, *events):
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\n" + zones + "".join(events)
            + "END:VCALENDAR\r\n").encode()


def event(uid, start, extra=""):
    return f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20270101T000000Z\r\nDTSTART;{start}\r\n{extra}END:VEVENT\r\n"


def fixed_zone(tzid, offset):
    return (f"BEGIN:VTIMEZONE\r\nTZID:{tzid}\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
            f"TZOFFSETFROM:{offset}\r\nTZOFFSETTO:{offset}\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n")


def refusal(data):
    with pytest.raises(InvalidCalendar) as error:
        calendars.parse(data)
    return error.value.details


@pytest.mark.parametrize("tzid, name", [
    ("Europe/Paris", "Europe/Paris"), ("/Europe/Paris", "Europe/Paris"),
    ("W. Europe Standard Time", "Europe/Berlin"), ("Eastern Standard Time", "America/New_York"),
    ("/mozilla.org/20050126_1/America/Argentina/Buenos_Aires", "America/Argentina/Buenos_Aires"),
    ("/freeassociation.sourceforge.net/Tzfile/Asia/Tokyo", "Asia/Tokyo"),
    ("Customized Time Zone", None), ("X", None), ("../../etc/passwd", None), ("Mars/Olympus", None),
])
def test_named_zones_are_iana_windows_or_prefixed_iana_names(tzid, name):
    assert ics_zones.named_zone(tzid) == name


def test_a_file_zone_is_neither_built_nor_cached_by_icalendar():
    bomb = ("BEGIN:VTIMEZONE\r\nTZID:Bomb\r\nBEGIN:STANDARD\r\nDTSTART:16010101T000000\r\nRRULE:FREQ=SECONDLY\r\n"
            "TZOFFSETFROM:+0000\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:16010101T000000\r\n"
            "TZOFFSETFROM:+0100\r\nTZOFFSETTO:+0000\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n")
    parsed, _ = calendars.parse(calendar(bomb + fixed_zone("Mine", "+0500"), event("a", "TZID=Mine:20270101T100000")))
    assert parsed[0]["starts_at"] == datetime(2027, 1, 1, 5, tzinfo=UTC)
    assert tzp.timezone("Bomb") is None and tzp.timezone("Mine") is None
    details = refusal(calendar(bomb, event("a", "TZID=Bomb:20270101T100000")))
    assert "FREQ must be one of" in details["events"][0]["error"] and details["stopped_at_event"] == 1


def test_two_files_defining_one_tzid_differently_keep_their_own_times():
    first = calendar(fixed_zone("X", "+0500"), event("a", "TZID=X:20270101T100000"))
    second = calendar(fixed_zone("X", "-0300"), event("b", "TZID=X:20270101T100000"))
    for _ in range(2):
        assert calendars.parse(first)[0][0]["starts_at"] == datetime(2027, 1, 1, 5, tzinfo=UTC)
        assert calendars.parse(second)[0][0]["starts_at"] == datetime(2027, 1, 1, 13, tzinfo=UTC)


def test_a_named_zone_wins_over_the_file_definition():
    lying = fixed_zone("Europe/Paris", "+0900")
    parsed, _ = calendars.parse(calendar(lying, event("a", "TZID=Europe/Paris:20270701T100000")))
    assert parsed[0]["starts_at"] == datetime(2027, 7, 1, 8, tzinfo=UTC) and parsed[0]["timezone"] == "Europe/Paris"


def test_a_custom_zone_is_read_as_the_tz_database_reads_the_same_rules():
    zones = ics_zones.FileZones([BERLIN_LIKE.format(tzid="Customized Time Zone").splitlines()])
    berlin = ZoneInfo("Europe/Berlin")
    wall = datetime(2020, 1, 1, 12)
    budget = recurrence.Budget()
    while wall < datetime(2031, 1, 1):
        moment, zone = zones.moment(wall, "Customized Time Zone", budget)
        assert moment == wall.replace(tzinfo=berlin).astimezone(UTC), wall
        assert zone == "UTC"  # the series repeats in UTC: the file's zone is not kept
        wall += timedelta(days=5, hours=7)
    # About 800 wall times, each two yearly rules searched over three years.
    assert recurrence.REQUEST_BUDGET - budget.steps < 800 * 25


def test_a_zone_without_a_definition_is_refused_naming_the_event():
    details = refusal(calendar("", event("a", "TZID=Nowhere:20270101T100000")))
    assert details["events"][0] == {"event": 1, "uid": "a", "error": (
        "DTSTART: Unknown time zone 'Nowhere', and the file does not define it.")}


@pytest.mark.parametrize("observance", [
    "DTSTART:16010101T000000\r\nRRULE:FREQ=DAILY\r\nTZOFFSETFROM:+0000\r\nTZOFFSETTO:+0100\r\n",
    "DTSTART:16010101T000000\r\nRRULE:FREQ=YEARLY;COUNT=400\r\nTZOFFSETFROM:+0000\r\nTZOFFSETTO:+0100\r\n",
    "DTSTART:16010101T000000\r\nRRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30\r\nTZOFFSETFROM:+0000\r\nTZOFFSETTO:+0100\r\n",
    "DTSTART:16010101T000000\r\nRRULE:FREQ=YEARLY;BYMONTH=2;BYDAY=5SU\r\nTZOFFSETFROM:+0000\r\nTZOFFSETTO:+0100\r\n",
    "DTSTART:16010101T000000Z\r\nTZOFFSETFROM:+0000\r\nTZOFFSETTO:+0100\r\n",
    "DTSTART:16010101T000000\r\nTZOFFSETTO:+0100\r\n",
    "DTSTART:16010101T000000\r\nTZOFFSETFROM:+0000\r\nTZOFFSETTO:+0100\r\nRDATE:20200101T000000Z\r\n",
])
def test_unusable_zone_definitions_are_refused_cheaply(observance):
    zone = f"BEGIN:VTIMEZONE\r\nTZID:X\r\nBEGIN:STANDARD\r\n{observance}END:STANDARD\r\nEND:VTIMEZONE\r\n"
    details = refusal(calendar(zone, event("a", "TZID=X:20270101T100000"), event("b", "TZID=X:20270101T100000")))
    assert details["events"][0]["error"].startswith("DTSTART: Time zone 'X'")
    assert details["stopped_at_event"] == 1 and len(details["events"]) == 1


def test_many_onset_dates_are_paid_from_the_import_budget():
    """Each year an event names costs the zone's onsets again: 500 dates in
    230 years is more than one import's budget."""
    dates = ",".join(f"{year}0101T000000" for year in range(1970, 2070))
    zone = ("BEGIN:VTIMEZONE\r\nTZID:X\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0000\r\n"
            "TZOFFSETTO:+0100\r\n" + "".join(f"RDATE:{dates}\r\n" for _ in range(5))
            + "END:STANDARD\r\nEND:VTIMEZONE\r\n")
    events = [event(f"e{number}", f"TZID=X:{1970 + number % 229}0101T100000")
              for number in range(calendars.MAX_EVENTS)]
    details = refusal(calendar(zone, *events))
    assert "steps" in details["events"][0]["error"] and details["stopped_at_event"] < calendars.MAX_EVENTS


@pytest.mark.parametrize("name, lines", [
    ("year 1 in Tokyo", "DTSTART;TZID=Asia/Tokyo:00010101T000000\r\n"),
    ("a huge duration", "DTSTART:20270101T000000Z\r\nDURATION:P99999999W\r\n"),
    ("an enormous duration", "DTSTART:20270101T000000Z\r\nDURATION:P9999999999W\r\n"),
    ("year 9999 in Los Angeles", "DTSTART:20270101T000000Z\r\nDTEND;TZID=America/Los_Angeles:99991231T230000\r\n"),
    ("a 53rd Monday of February", "DTSTART:20270101T000000Z\r\nRRULE:FREQ=YEARLY;BYMONTH=2;BYDAY=53MO\r\n"),
    ("a rule icalendar cannot read", "DTSTART:20270101T000000Z\r\nRRULE:FREQ=DAILY;COUNT=abc\r\n"),
    ("an end icalendar cannot read", "DTSTART:20270101T000000Z\r\nDTEND:2027\r\n"),
    ("two starts", "DTSTART:20270101T000000Z\r\nDTSTART:20270102T000000Z\r\n"),
])
def test_out_of_range_values_are_refused_not_500s(name, lines):
    data = calendar("", f"BEGIN:VEVENT\r\nUID:x\r\n{lines}END:VEVENT\r\n")
    assert refusal(data), name


def test_a_file_with_too_many_lines_is_refused_before_parsing():
    padding = "X-A:b\r\n" * ics_reading.MAX_CONTENT_LINES
    assert "lines" in refusal(calendar("", event("a", "VALUE=DATE:20270101", padding)))["file"][0]


FUZZ_BASE = calendar(BERLIN_LIKE.format(tzid="Custom"), event(
    "a@x", "TZID=Custom:20270104T093000",
    "DTEND;TZID=Europe/Paris:20270104T094500\r\nRRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=6;UNTIL=20280101T000000Z\r\n",
), event("b@x", "VALUE=DATE:20270115", "DURATION:P1DT2H\r\nRRULE:FREQ=MONTHLY;BYMONTHDAY=-1;INTERVAL=2\r\n")).decode()
FUZZ_VALUES = ["0", "-1", "99999999999999999999", "00010101T000000", "99991231T235959", "13", "32", "P99999999W",
               "-P1D", "+2400", "-2359", "1601", "0000", "T", "Z", "", ",", ";", "=", "SECONDLY", "53", "+99MO", "29",
               "0230", "18991231"]
_TOKEN = re.compile(r"[0-9]+|[A-Z]+|[;:=,+\-]")


def test_mutated_calendars_either_import_in_range_or_are_refused():
    chance = random.Random(12)
    outcomes = {"imported": 0, "refused": 0}
    for _ in range(1500):
        text = FUZZ_BASE
        for _ in range(chance.randint(1, 4)):
            start, end = chance.choice([found.span() for found in _TOKEN.finditer(text)])
            text = text[:start] + chance.choice(FUZZ_VALUES + [text[start:end] * 2]) + text[end:]
        try:
            parsed, _ = calendars.parse(text.encode())
        except InvalidCalendar:
            outcomes["refused"] += 1
            continue
        outcomes["imported"] += 1
        for values in parsed:
            assert schedule.EARLIEST <= values["starts_at"] < values["ends_at"] < schedule.LATEST + timedelta(days=31)
            assert values["ends_at"] - values["starts_at"] <= schedule.MAX_EVENT_DURATION
            assert values["series_ends_at"] >= values["ends_at"] and recurrence.valid_timezone(values["timezone"])
    assert outcomes["imported"] > 100 and outcomes["refused"] > 100
