"""Attacks on calendar import, against the real running system.

Each import bomb is refused with a 422 and costs the events process under a
second of CPU, read from /proc before and after (CPU time is steady on a busy
machine, wall time is not). One user's time zone definitions never reach
another's times. Real exports, from Outlook (Windows zone names with a
VTIMEZONE) and Google (IANA names), keep importing at the right UTC times."""
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from bench import env
from tests.conftest import Api

pytestmark = pytest.mark.integration

def cpu_seconds(system):
    """CPU time (user + system) the whole system process has used so far."""
    return env.cpu_seconds(system.process.pid)


def import_costing(api, system, user, data):
    """(answer, CPU seconds the process spent while answering)."""
    before = cpu_seconds(system)
    answer = api.post("/calendars/import", user=user, files={"file": ("cal.ics", data, "text/calendar")})
    return answer, cpu_seconds(system) - before


def stored(db_engine, user):
    with db_engine.connect() as connection:
        return connection.execute(text(
            "SELECT ical_uid, starts_at, ends_at, timezone, rrule FROM events.events WHERE organizer_id = :id "
            "ORDER BY ical_uid"), {"id": user["id"]}).all()


def calendar(*parts):
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\n" + "".join(parts) + "END:VCALENDAR\r\n").encode()


def event(uid, start, extra=""):
    return f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20270101T000000Z\r\nDTSTART;{start}\r\n{extra}END:VEVENT\r\n"


def zone(tzid, *observances):
    return f"BEGIN:VTIMEZONE\r\nTZID:{tzid}\r\n" + "".join(observances) + "END:VTIMEZONE\r\n"


def observance(kind, start, offset_from, offset_to, rule=None):
    return (f"BEGIN:{kind}\r\nDTSTART:{start}\r\n" + (f"RRULE:{rule}\r\n" if rule else "")
            + f"TZOFFSETFROM:{offset_from}\r\nTZOFFSETTO:{offset_to}\r\nEND:{kind}\r\n")


# A file of 400 bytes that took minutes of CPU and gigabytes of memory:
# icalendar walked the SECONDLY rule from 1601 to the event, second by second.
SECONDLY_ZONE = zone("X", observance("STANDARD", "16010101T000000", "+0000", "+0100", "FREQ=SECONDLY"),
                     observance("DAYLIGHT", "16010101T000000", "+0100", "+0000"))


@pytest.mark.parametrize("case", ["zone an event names", "zone no event names", "zone named like an IANA zone"])
def test_a_secondly_vtimezone_costs_nothing(api, system, db_engine, case):
    ann = api.register()
    if case == "zone an event names":
        data = calendar(SECONDLY_ZONE, event("a", "TZID=X:20270101T100000"))
    elif case == "zone no event names":
        data = calendar(SECONDLY_ZONE, event("a", "TZID=Europe/Paris:20270101T100000"))
    else:
        data = calendar(SECONDLY_ZONE.replace("TZID:X", "TZID:Europe/Paris"),
                        event("a", "TZID=Europe/Paris:20270101T100000"))
    answer, cpu = import_costing(api, system, ann, data)
    assert cpu < 1, cpu
    if case == "zone an event names":
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert error["code"] == "INVALID_CALENDAR" and error["details"]["stopped_at_event"] == 1
        assert error["details"]["events"][0]["error"].startswith("DTSTART: Time zone 'X'")
        assert stored(db_engine, ann) == []
    else:
        # The tz database's Europe/Paris, whatever the file says about it.
        assert answer.status_code == 200, answer.text
        assert api.get("/calendar", user=ann, params={"from": "2027-01-01T00:00:00Z", "to": "2027-01-02T00:00:00Z"}
                       ).json()["items"][0]["starts_at"] == "2027-01-01T09:00:00Z"


# Rules whose parts never match: dateutil searched each to the year 9999.
NEVER_MATCHING = [
    ("20270210T090000Z", "FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=30"),
    ("20270210T090000Z", "FREQ=DAILY;INTERVAL=2;BYMONTH=2;BYMONTHDAY=29"),
    ("20270401T090000Z", "FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=31"),
    ("20270101T090000Z", "FREQ=YEARLY;INTERVAL=100;BYMONTH=2;BYMONTHDAY=29"),
    ("20270210T090000Z", "FREQ=DAILY;INTERVAL=97;BYMONTH=2;BYMONTHDAY=29"),
]


def test_five_hundred_rules_that_never_match_are_refused_at_the_first(api, system, db_engine):
    ann = api.register()
    events = [event(f"never-{number}", "VALUE=DATE-TIME:" + NEVER_MATCHING[number % 5][0],
                    f"RRULE:{NEVER_MATCHING[number % 5][1]}\r\n") for number in range(500)]
    answer, cpu = import_costing(api, system, ann, calendar(*events))
    assert cpu < 1, cpu
    assert answer.status_code == 422, answer.text
    details = answer.json()["error"]["details"]
    assert details["stopped_at_event"] == 1 and details["events"] == [{
        "event": 1, "uid": "never-0",
        "error": "RRULE: The rule yields no occurrence within 5 years of the first one."}]
    assert stored(db_engine, ann) == []


def test_an_import_shares_one_budget_and_the_rule_that_exhausts_it_is_refused(api, system, db_engine):
    """500 daily series without an end: each is fine, all of them are more
    expansion work than one import may do."""
    ann = api.register()
    events = [event(f"daily-{number}", "TZID=Europe/Paris:20270104T093000", "RRULE:FREQ=DAILY\r\n")
              for number in range(500)]
    answer, cpu = import_costing(api, system, ann, calendar(*events))
    assert cpu < 1, cpu
    assert answer.status_code == 422, answer.text
    details = answer.json()["error"]["details"]
    assert 150 < details["stopped_at_event"] < 200
    assert "100,000 steps" in details["events"][0]["error"]
    assert stored(db_engine, ann) == []
    fewer = calendar(*events[:100])
    assert api.post("/calendars/import", user=ann, files={"file": ("cal.ics", fewer)}).status_code == 200
    assert len(stored(db_engine, ann)) == 100


def test_imports_at_once_take_turns_and_never_fail(api, system):
    """Files are read one at a time per process; six at once all answer,
    each a 200 or a 429 with Retry-After, never a 5xx."""
    users = [api.register() for _ in range(6)]
    heavy = calendar(event("padded", "VALUE=DATE:20270101", "X-PAD:abcdefgh\r\n" * 40_000))
    with ThreadPoolExecutor(len(users)) as pool:
        # A client each: one requests.Session is not meant to be shared by threads.
        answers = list(pool.map(lambda user: Api(system.base_url).post(
            "/calendars/import", user=user, files={"file": ("cal.ics", heavy)}), users))
    assert {answer.status_code for answer in answers} <= {200, 429}, [answer.text for answer in answers]
    assert all("Retry-After" in answer.headers for answer in answers if answer.status_code == 429)
    assert any(answer.status_code == 200 for answer in answers)


def test_two_users_defining_one_tzid_differently_keep_their_own_times(api, db_engine):
    ann, bob = api.register(), api.register()
    plus_five = calendar(zone("X", observance("STANDARD", "19700101T000000", "+0500", "+0500")),
                         event("ann-1", "TZID=X:20270101T100000"))
    minus_three = calendar(zone("X", observance("STANDARD", "19700101T000000", "-0300", "-0300")),
                           event("bob-1", "TZID=X:20270101T100000"))
    for user, data in ((ann, plus_five), (bob, minus_three), (ann, plus_five.replace(b"ann-1", b"ann-2"))):
        answer = api.post("/calendars/import", user=user, files={"file": ("cal.ics", data)})
        assert answer.status_code == 200, answer.text
    assert [(uid, starts_at.isoformat()) for uid, starts_at, *_ in stored(db_engine, ann)] == [
        ("ann-1", "2027-01-01T05:00:00+00:00"), ("ann-2", "2027-01-01T05:00:00+00:00")]
    assert [(uid, starts_at.isoformat()) for uid, starts_at, *_ in stored(db_engine, bob)] == [
        ("bob-1", "2027-01-01T13:00:00+00:00")]


BERLIN_RULES = (observance("STANDARD", "16011028T030000", "+0200", "+0100", "FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10"),
                observance("DAYLIGHT", "16010325T020000", "+0100", "+0200", "FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3"))
# As Outlook 2016 exports a calendar: Windows zone names, each with its
# VTIMEZONE from 1601; a zone set up by hand comes as "Customized Time Zone".
OUTLOOK = ("""BEGIN:VCALENDAR\r
PRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN\r
VERSION:2.0\r
METHOD:PUBLISH\r
X-CALSTART:20270104T083000Z\r
X-WR-CALNAME:Calendar\r
""" + zone("W. Europe Standard Time", *BERLIN_RULES) + zone("Customized Time Zone", *BERLIN_RULES) + """\
BEGIN:VEVENT\r
CLASS:PUBLIC\r
CREATED:20261201T101500Z\r
DESCRIPTION:Weekly sync\\n\r
DTEND;TZID="W. Europe Standard Time":20270104T100000\r
DTSTAMP:20261201T101500Z\r
DTSTART;TZID="W. Europe Standard Time":20270104T093000\r
LAST-MODIFIED:20261201T101500Z\r
LOCATION:Room 4\r
PRIORITY:5\r
RRULE:FREQ=WEEKLY;UNTIL=20270329T073000Z;INTERVAL=1;BYDAY=MO;WKST=MO\r
SEQUENCE:0\r
SUMMARY;LANGUAGE=en-us:Team sync\r
TRANSP:OPAQUE\r
UID:040000008200E00074C5B7101A82E00800000000A0B1C2D3E4F5A6B7C8D9E0F1A2B3C4D5\r
X-MICROSOFT-CDO-BUSYSTATUS:BUSY\r
X-MICROSOFT-CDO-IMPORTANCE:1\r
X-MS-OLK-CONFTYPE:0\r
BEGIN:VALARM\r
TRIGGER:-PT15M\r
ACTION:DISPLAY\r
DESCRIPTION:Reminder\r
END:VALARM\r
END:VEVENT\r
BEGIN:VEVENT\r
CLASS:PUBLIC\r
DTEND;TZID=Customized Time Zone:20270712T153000\r
DTSTAMP:20261201T101500Z\r
DTSTART;TZID=Customized Time Zone:20270712T140000\r
SUMMARY;LANGUAGE=en-us:Supplier visit\r
UID:040000008200E00074C5B7101A82E00800000000F1E2D3C4B5A6978877665544332211\r
END:VEVENT\r
BEGIN:VEVENT\r
CLASS:PUBLIC\r
DTEND;VALUE=DATE:20270302\r
DTSTAMP:20261201T101500Z\r
DTSTART;VALUE=DATE:20270301\r
RRULE:FREQ=YEARLY;UNTIL=20290301;BYMONTHDAY=1;BYMONTH=3\r
SUMMARY;LANGUAGE=en-us:Company anniversary\r
TRANSP:TRANSPARENT\r
UID:040000008200E00074C5B7101A82E0080000000011223344556677889900AABBCCDDEEFF\r
X-MICROSOFT-CDO-ALLDAYEVENT:TRUE\r
END:VEVENT\r
END:VCALENDAR\r
""").encode()
# As Google Calendar exports one: IANA names, with VTIMEZONEs from 1970.
GOOGLE = b"""BEGIN:VCALENDAR\r
PRODID:-//Google Inc//Google Calendar 70.9054//EN\r
VERSION:2.0\r
CALSCALE:GREGORIAN\r
METHOD:PUBLISH\r
X-WR-CALNAME:Family\r
X-WR-TIMEZONE:America/New_York\r
BEGIN:VTIMEZONE\r
TZID:America/New_York\r
X-LIC-LOCATION:America/New_York\r
BEGIN:DAYLIGHT\r
TZOFFSETFROM:-0500\r
TZOFFSETTO:-0400\r
TZNAME:EDT\r
DTSTART:19700308T020000\r
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r
END:DAYLIGHT\r
BEGIN:STANDARD\r
TZOFFSETFROM:-0400\r
TZOFFSETTO:-0500\r
TZNAME:EST\r
DTSTART:19701101T020000\r
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r
END:STANDARD\r
END:VTIMEZONE\r
BEGIN:VEVENT\r
DTSTART;TZID=America/New_York:20270305T183000\r
DTEND;TZID=America/New_York:20270305T200000\r
RRULE:FREQ=WEEKLY;BYDAY=FR\r
DTSTAMP:20261215T120000Z\r
UID:5r9k2m1c0q8v7e3b4n6p0s2t1u@google.com\r
CREATED:20261201T000000Z\r
DESCRIPTION:\r
LAST-MODIFIED:20261201T000000Z\r
LOCATION:Riverside field\r
SEQUENCE:0\r
STATUS:CONFIRMED\r
SUMMARY:Soccer practice\r
TRANSP:OPAQUE\r
END:VEVENT\r
BEGIN:VEVENT\r
DTSTART;VALUE=DATE:20270704\r
DTEND;VALUE=DATE:20270705\r
RRULE:FREQ=YEARLY;UNTIL=20290704\r
DTSTAMP:20261215T120000Z\r
UID:1a2b3c4d5e6f7g8h9i0j@google.com\r
SEQUENCE:0\r
STATUS:CONFIRMED\r
SUMMARY:Fourth of July BBQ\r
TRANSP:TRANSPARENT\r
END:VEVENT\r
BEGIN:VEVENT\r
DTSTART:20270410T150000Z\r
DTEND:20270410T160000Z\r
DTSTAMP:20261215T120000Z\r
UID:0z9y8x7w6v5u4t3s2r1q@google.com\r
SEQUENCE:0\r
STATUS:CONFIRMED\r
SUMMARY:Dentist\r
TRANSP:OPAQUE\r
END:VEVENT\r
END:VCALENDAR\r
"""


def occurrences(api, user, title, start, end):
    items = api.get("/calendar", user=user, params={"from": start, "to": end, "limit": 100}).json()["items"]
    return [item["starts_at"] for item in items if item["title"] == title]


def test_an_outlook_export_imports_at_the_right_utc_times(api, db_engine):
    ann = api.register()
    answer = api.post("/calendars/import", user=ann, files={"file": ("outlook.ics", OUTLOOK, "text/calendar")})
    assert answer.status_code == 200, answer.text
    assert answer.json()["imported"] == 3
    sync = occurrences(api, ann, "Team sync", "2027-01-01T00:00:00Z", "2027-06-01T00:00:00Z")
    # 09:30 in Berlin: 08:30 UTC in winter, 07:30 from the last Sunday of March.
    assert sync[0] == "2027-01-04T08:30:00Z" and sync[-2] == "2027-03-22T08:30:00Z"
    assert sync[-1] == "2027-03-29T07:30:00Z" and len(sync) == 13
    assert occurrences(api, ann, "Supplier visit", "2027-07-01T00:00:00Z", "2027-08-01T00:00:00Z") == [
        "2027-07-12T12:00:00Z"]
    assert occurrences(api, ann, "Company anniversary", "2029-01-01T00:00:00Z", "2029-12-01T00:00:00Z") == [
        "2029-03-01T00:00:00Z"]
    zones = {uid[-8:]: zone for uid, _, _, zone, _ in stored(db_engine, ann)}
    assert sorted(zones.values()) == ["Europe/Berlin", "UTC", "UTC"]


def test_a_google_export_imports_at_the_right_utc_times(api):
    ann = api.register()
    answer = api.post("/calendars/import", user=ann, files={"file": ("basic.ics", GOOGLE, "text/calendar")})
    assert answer.status_code == 200, answer.text
    assert answer.json()["imported"] == 3
    # 18:30 in New York: 23:30 UTC until the second Sunday of March, then 22:30.
    assert occurrences(api, ann, "Soccer practice", "2027-03-01T00:00:00Z", "2027-03-27T00:00:00Z") == [
        "2027-03-05T23:30:00Z", "2027-03-12T23:30:00Z", "2027-03-19T22:30:00Z", "2027-03-26T22:30:00Z"]
    # An all-day series ending on a date (UNTIL=20290704) includes that day.
    assert occurrences(api, ann, "Fourth of July BBQ", "2029-01-01T00:00:00Z", "2029-12-01T00:00:00Z") == [
        "2029-07-04T00:00:00Z"]
    assert occurrences(api, ann, "Dentist", "2027-04-01T00:00:00Z", "2027-05-01T00:00:00Z") == [
        "2027-04-10T15:00:00Z"]
