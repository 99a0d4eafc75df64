"""Calendar files over real HTTP: export, import by file, import by URL."""
import icalendar
import pytest
from sqlalchemy import text

pytestmark = pytest.mark.integration

CALENDAR = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Test//EN\r
BEGIN:VEVENT\r
UID:standup-{tag}@example.com\r
DTSTAMP:20270101T000000Z\r
SUMMARY:Stand-up\r
DTSTART;TZID=Europe/Paris:20270104T093000\r
DTEND;TZID=Europe/Paris:20270104T094500\r
RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=6\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:party-{tag}@example.com\r
DTSTAMP:20270101T000000Z\r
SUMMARY:{party}\r
LOCATION:Rooftop\r
DTSTART:20270110T200000Z\r
DURATION:PT3H\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:holiday-{tag}@example.com\r
DTSTAMP:20270101T000000Z\r
SUMMARY:Holiday\r
DTSTART;VALUE=DATE:20270115\r
END:VEVENT\r
END:VCALENDAR\r
"""


def import_file(api, user, content, name="cal.ics"):
    data = content.encode() if isinstance(content, str) else content
    return api.post("/calendars/import", user=user, files={"file": (name, data, "text/calendar")})


def imported_count(db_engine, user):
    with db_engine.connect() as connection:
        return connection.scalar(text("SELECT count(*) FROM events.events WHERE organizer_id = :id"),
                                 {"id": user["id"]})


def test_import_twice_updates_instead_of_duplicating(api, db_engine):
    ann = api.register()
    tag = ann["id"][:8]
    first = import_file(api, ann, CALENDAR.format(tag=tag, party="Party"))
    assert first.status_code == 200, first.text
    assert first.json() == {"imported": 3, "updated": 0, "skipped": 0, "errors": []}
    again = import_file(api, ann, CALENDAR.format(tag=tag, party="Party"))
    assert again.json() == {"imported": 0, "updated": 0, "skipped": 3, "errors": []}
    changed = import_file(api, ann, CALENDAR.format(tag=tag, party="Bigger party"))
    assert changed.json() == {"imported": 0, "updated": 1, "skipped": 2, "errors": []}
    assert imported_count(db_engine, ann) == 3

    calendar = api.get("/calendar", user=ann, params={"from": "2027-01-01T00:00:00Z",
                                                      "to": "2027-02-01T00:00:00Z", "limit": 100}).json()
    titles = [(item["title"], item["starts_at"]) for item in calendar["items"]]
    assert titles[:2] == [("Stand-up", "2027-01-04T08:30:00Z"), ("Stand-up", "2027-01-06T08:30:00Z")]
    assert ("Bigger party", "2027-01-10T20:00:00Z") in titles and ("Holiday", "2027-01-15T00:00:00Z") in titles
    assert len(titles) == 8


def test_calendar_ics_parses_back(api):
    ann, bob = api.register(), api.register()
    event = api.post("/events", user=ann, json={
        "title": "Weekly run", "starts_at": "2027-03-01T07:00:00Z", "timezone": "Europe/Berlin",
        "visibility": "public", "rrule": "FREQ=WEEKLY;COUNT=4", "location": "Park"}).json()
    api.post("/events/{}/participants".format(event["id"]), user=bob)
    response = api.get("/calendar.ics", user=bob)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/calendar")
    calendar = icalendar.Calendar.from_ical(response.content)
    vevents = calendar.walk("VEVENT")
    assert [str(vevent["UID"]) for vevent in vevents] == [event["id"] + "@lifytp"]
    vevent = vevents[0]
    assert str(vevent["SUMMARY"]) == "Weekly run" and str(vevent["LOCATION"]) == "Park"
    assert vevent["DTSTART"].dt.isoformat() == "2027-03-01T08:00:00+01:00"
    assert vevent["RRULE"]["COUNT"] == [4]
    assert calendar.walk("VTIMEZONE")
    # Bringing one's own export back in creates nothing.
    assert import_file(api, bob, response.content).json()["skipped"] == 1


BROKEN = {
    "not a calendar": b"hello world",
    "no DTSTART": b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nSUMMARY:y\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    "minutely rule": (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:20270101T000000Z\r\n"
                      b"RRULE:FREQ=MINUTELY\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"),
    "ends before start": (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:20270101T100000Z\r\n"
                          b"DTEND:20270101T090000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"),
    "component bomb": b"BEGIN:VCALENDAR\r\n" + b"BEGIN:VEVENT\r\nEND:VEVENT\r\n" * 3000 + b"END:VCALENDAR\r\n",
    "not utf-8": b"BEGIN:VCALENDAR\r\nX:\xff\xfe\r\nEND:VCALENDAR\r\n",
    # Found by a penetration test (a 500): a 53rd Monday of February.
    "impossible weekday": (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:20270101T000000Z\r\n"
                           b"RRULE:FREQ=YEARLY;BYMONTH=2;BYDAY=53MO\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"),
    "two frequencies": (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:20270101T000000Z\r\n"
                        b"RRULE:FREQ=DAILY;FREQ=MINUTELY\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"),
    # Found by a penetration test, each a 500: out of range once in UTC, or overflowing.
    "year 1 in Tokyo": (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART;TZID=Asia/Tokyo:00010101T000000\r\n"
                        b"END:VEVENT\r\nEND:VCALENDAR\r\n"),
    "huge duration": (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:20270101T000000Z\r\n"
                      b"DURATION:P99999999W\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"),
    "year 9999 in Los Angeles": (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:20270101T000000Z\r\n"
                                 b"DTEND;TZID=America/Los_Angeles:99991231T230000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"),
    # A rule icalendar cannot read was dropped, importing a single event.
    "unreadable rule": (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:20270101T000000Z\r\n"
                        b"RRULE:FREQ=DAILY;COUNT=abc\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"),
    "rule that never matches": (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:20270210T000000Z\r\n"
                                b"RRULE:FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=30\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"),
    "undefined time zone": (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART;TZID=Nowhere:20270101T100000\r\n"
                            b"END:VEVENT\r\nEND:VCALENDAR\r\n"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_calendars_import_nothing(api, db_engine, case):
    ann = api.register()
    good = CALENDAR.format(tag="ok", party="Party").encode()
    # A good calendar with one bad event appended: all or nothing.
    mixed = good.replace(b"END:VCALENDAR", BROKEN["no DTSTART"].split(b"\r\n", 1)[1].rsplit(b"END:VCALENDAR", 1)[0]
                         + b"END:VCALENDAR")
    for body in (BROKEN[case], mixed):
        response = import_file(api, ann, body)
        assert response.status_code == 422, (case, response.text)
        assert response.json()["error"]["code"] == "INVALID_CALENDAR"
        assert response.json()["error"]["details"]
    assert imported_count(db_engine, ann) == 0


def test_a_calendar_near_its_size_limit_imports(api, db_engine):
    """843 KB, under the 1 MiB limit, with a line break every 75 bytes (folded
    lines), as exported calendars are: it used to fail with 413."""
    ann = api.register()
    padding = "X-PAD:" + "\r\n ".join(["a" * 72] * 11_000) + "\r\n"
    calendar = CALENDAR.format(tag=ann["id"][:8], party="Party").replace("END:VCALENDAR", padding + "END:VCALENDAR")
    assert 820_000 < len(calendar) < 1024 * 1024
    response = import_file(api, ann, calendar)
    assert response.status_code == 200, response.text
    assert imported_count(db_engine, ann) == 3


def test_oversized_calendar_is_refused(api, db_engine):
    ann = api.register()
    response = import_file(api, ann, b"BEGIN:VCALENDAR\r\nX-PAD:" + b"a" * (1024 * 1024 + 10) + b"\r\n")
    assert response.status_code == 413
    assert imported_count(db_engine, ann) == 0


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:4291/calendar.ics",
    "http://localhost/calendar.ics",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/cal.ics",
    "http://[::1]/cal.ics",
    "http://[::ffff:127.0.0.1]/cal.ics",
    "file:///etc/passwd",
    "ftp://example.com/cal.ics",
    "gopher://127.0.0.1:6379/_FLUSHALL",
    "http://user:pass@example.com/cal.ics",
    "http://0.0.0.0:4291/",
    "not a url",
    # Found by a penetration test: Python counts these IPv6 ranges as global.
    "http://[::127.0.0.1]/cal.ics",
    "http://[::ffff:0:7f00:1]/cal.ics",
    "http://[fec0::1]/cal.ics",
    # Only web ports, refused before the host is even looked up.
    "http://calendar.example:22/cal.ics",
    "https://calendar.example:6379/cal.ics",
])
def test_url_import_refuses_private_and_odd_urls(api, db_engine, url):
    ann = api.register()
    response = api.post("/calendars/import", user=ann, json={"url": url})
    assert response.status_code == 422, response.text
    # A URL that is not http(s) at all fails the document's pattern for `url`.
    expected = "URL_NOT_ALLOWED" if url.lower().startswith("http") else "VALIDATION_FAILED"
    assert response.json()["error"]["code"] == expected
    assert imported_count(db_engine, ann) == 0
