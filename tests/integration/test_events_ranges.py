"""Range queries (GET /events, GET /calendar) over recurring events, against
the whole running system: pages are complete and in order whatever anyone
else creates, and follow every change of an event's timing.

Each test works in a year of its own, far from the other tests' events, so
that "every occurrence in the window" is known exactly."""
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from tests.conftest import eventually

pytestmark = pytest.mark.integration

# More than the 200 recurring events a range query used to expand per page.
FLOOD = 250


def iso(moment):
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def create(api, user, **fields):
    body = {"title": "Ranges", "visibility": "public", **fields}
    response = api.post("/events", user=user, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def walk(api, user, path, **params):
    """Every item of every page, following next_cursor to the end."""
    items, cursor, pages = [], None, 0
    while True:
        answer = api.get(path, user=user, params=dict(params, cursor=cursor) if cursor else params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert len(page["items"]) <= int(params.get("limit", 20))
        items += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            return items, pages


def keys(items):
    return [(item["starts_at"], item["id"]) for item in items]


def daily(start, count, every=1):
    return [start + timedelta(days=every * day) for day in range(count)]


def test_one_users_many_recurring_events_push_nobody_elses_out_of_the_pages(api):
    flooder, ann, bob, viewer = api.register(), api.register(), api.register(), api.register()
    start = datetime(2163, 3, 1, tzinfo=UTC)
    window = {"from": iso(start), "to": iso(start + timedelta(days=31))}
    expected = []

    def flood(number):
        first = start + timedelta(minutes=number)
        event = create(api, flooder, title=f"Flood {number}", starts_at=iso(first), rrule="FREQ=DAILY;COUNT=4")
        return [(iso(moment), event["id"]) for moment in daily(first, 4)]

    with ThreadPoolExecutor(8) as pool:
        for occurrences in pool.map(flood, range(FLOOD)):
            expected += occurrences
    # Ann's and Bob's series start after every one of the flood's.
    anns = create(api, ann, title="Ann weekly", starts_at="2163-03-02T18:00:00Z", rrule="FREQ=WEEKLY;COUNT=5")
    expected += [(iso(moment), anns["id"]) for moment in daily(datetime(2163, 3, 2, 18, tzinfo=UTC), 5, every=7)]
    bobs = create(api, bob, title="Bob every third day", starts_at="2163-03-03T09:00:00Z",
                  rrule="FREQ=DAILY;INTERVAL=3;COUNT=6")
    expected += [(iso(moment), bobs["id"]) for moment in daily(datetime(2163, 3, 3, 9, tzinfo=UTC), 6, every=3)]
    single = create(api, ann, title="Ann once", starts_at="2163-03-31T20:00:00Z")
    expected.append(("2163-03-31T20:00:00Z", single["id"]))
    # Others' events the viewer may not see take no place in its pages.
    create(api, bob, title="Bob private", starts_at="2163-03-04T09:00:00Z", visibility="private",
           rrule="FREQ=DAILY;COUNT=10")
    expected.sort()

    items, pages = walk(api, viewer, "/events", limit=100, **window)
    assert keys(items) == expected  # in order, none missing, none twice
    assert pages == -(-len(expected) // 100)
    assert {item["occurrence_id"] for item in items if item["id"] == anns["id"]} == {
        f"{anns['id']}:{key[0]}" for key in expected if key[1] == anns["id"]}

    # Small pages meet the same occurrences, cut anywhere.
    ann_only, _ = walk(api, viewer, "/events", limit=3, organizer_id=ann["id"], **window)
    assert keys(ann_only) == [key for key in expected if key[1] in (anns["id"], single["id"])]
    mine, _ = walk(api, bob, "/calendar", limit=7, **window)
    assert len(mine) == 16 and all(item["organizer"]["id"] == bob["id"] for item in mine)
    # An occurrence lasts as long as its series' first one.
    assert {(item["starts_at"], item["ends_at"]) for item in ann_only if item["id"] == anns["id"]} == {
        (key[0], iso(datetime.fromisoformat(key[0]) + timedelta(hours=1))) for key in expected
        if key[1] == anns["id"]}


def test_changes_of_rule_start_and_timezone_and_cancellation_show_in_ranges(api):
    ann, viewer = api.register(), api.register()
    window = {"from": "2164-03-01T00:00:00Z", "to": "2164-05-01T00:00:00Z", "limit": 100}

    def starts(user=viewer, path="/events"):
        items, _ = walk(api, user, path, organizer_id=ann["id"], **window) if path == "/events" else \
            walk(api, user, path, **window)
        return [item["starts_at"] for item in items]

    event = create(api, ann, starts_at="2164-03-06T17:00:00Z", ends_at="2164-03-06T19:00:00Z",
                   rrule="FREQ=WEEKLY;COUNT=4")
    assert starts() == ["2164-03-06T17:00:00Z", "2164-03-13T17:00:00Z", "2164-03-20T17:00:00Z",
                        "2164-03-27T17:00:00Z"]
    url = "/events/" + event["id"]

    def patch(**changes):
        response = api.patch(url, user=ann, json=changes)
        assert response.status_code == 200, response.text

    patch(rrule="FREQ=DAILY;COUNT=3")
    assert starts() == ["2164-03-06T17:00:00Z", "2164-03-07T17:00:00Z", "2164-03-08T17:00:00Z"]
    patch(starts_at="2164-04-10T08:00:00Z")
    assert starts() == ["2164-04-10T08:00:00Z", "2164-04-11T08:00:00Z", "2164-04-12T08:00:00Z"]

    # 18:00 in Paris each week, across the change to summer time.
    patch(starts_at="2164-03-18T17:00:00Z", rrule="FREQ=WEEKLY;COUNT=4", timezone="Europe/Paris")
    paris = ZoneInfo("Europe/Paris")
    local = [datetime(2164, 3, 18, 18, tzinfo=paris) + timedelta(weeks=week) for week in range(4)]
    expected = [iso(moment) for moment in local]
    assert len({moment.utcoffset() for moment in local}) == 2  # the window does cross it
    assert starts() == expected
    patch(timezone="UTC")
    assert starts() == ["2164-03-18T17:00:00Z", "2164-03-25T17:00:00Z", "2164-04-01T17:00:00Z",
                        "2164-04-08T17:00:00Z"]
    patch(title="Renamed", ends_at="2164-03-18T20:00:00Z")  # timing of the starts unchanged
    items, _ = walk(api, viewer, "/events", organizer_id=ann["id"], **window)
    assert [(item["title"], item["ends_at"]) for item in items][-1] == ("Renamed", "2164-04-08T20:00:00Z")
    assert len(items) == 4

    patch(rrule=None)
    assert starts() == ["2164-03-18T17:00:00Z"]
    patch(rrule="FREQ=MONTHLY;COUNT=2")
    assert starts() == ["2164-03-18T17:00:00Z", "2164-04-18T17:00:00Z"]
    assert api.delete(url, user=ann).status_code == 204
    assert starts() == [] and starts(user=ann) == []
    # The organizer's calendar keeps a cancelled event, as cancelled.
    calendar, _ = walk(api, ann, "/calendar", **window)
    assert [(item["starts_at"], item["status"]) for item in calendar] == [
        ("2164-03-18T17:00:00Z", "cancelled"), ("2164-04-18T17:00:00Z", "cancelled")]


CALENDAR = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Test//EN\r
BEGIN:VEVENT\r
UID:{uid}\r
DTSTAMP:21650101T000000Z\r
SUMMARY:Imported series\r
DTSTART;TZID=Europe/Paris:{start}\r
DURATION:PT1H\r
RRULE:{rule}\r
STATUS:{status}\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_imports_that_change_a_series_show_in_ranges(api):
    ann = api.register()
    uid = f"series-{uuid.uuid4()}@example.com"
    window = {"from": "2165-01-01T00:00:00Z", "to": "2165-03-01T00:00:00Z", "limit": 100}

    def import_series(start, rule, status="CONFIRMED"):
        content = CALENDAR.format(uid=uid, start=start, rule=rule, status=status).encode()
        response = api.post("/calendars/import", user=ann, files={"file": ("cal.ics", content, "text/calendar")})
        assert response.status_code == 200, response.text
        return response.json()

    def listed(path):
        items, _ = walk(api, ann, path, **window)
        return [(item["starts_at"], item["status"]) for item in items]

    assert import_series("21650105T093000", "FREQ=WEEKLY;COUNT=3")["imported"] == 1
    assert listed("/calendar") == [("2165-01-05T08:30:00Z", "active"), ("2165-01-12T08:30:00Z", "active"),
                                   ("2165-01-19T08:30:00Z", "active")]
    assert import_series("21650201T190000", "FREQ=DAILY;COUNT=2")["updated"] == 1
    assert listed("/calendar") == [("2165-02-01T18:00:00Z", "active"), ("2165-02-02T18:00:00Z", "active")]
    assert listed("/events") == listed("/calendar")
    assert import_series("21650201T190000", "FREQ=DAILY;COUNT=2", status="CANCELLED")["updated"] == 1
    assert listed("/events") == []
    assert listed("/calendar") == [("2165-02-01T18:00:00Z", "cancelled"), ("2165-02-02T18:00:00Z", "cancelled")]


def test_a_deleted_users_recurring_events_leave_the_ranges(api):
    ann, viewer = api.register(), api.register()
    window = {"from": "2166-06-01T00:00:00Z", "to": "2166-07-01T00:00:00Z", "organizer_id": ann["id"]}
    create(api, ann, starts_at="2166-06-01T10:00:00Z", rrule="FREQ=WEEKLY;COUNT=3")
    assert len(walk(api, viewer, "/events", **window)[0]) == 3
    with ClusterRpcProxy({"AMQP_URI": os.environ["AMQP_URI"]}, timeout=10) as rpc:
        assert rpc.auth.deactivate_user(ann["id"]) is True
    assert eventually(lambda: walk(api, viewer, "/events", **window)[0] == []), \
        "the deleted user's series is still listed"


def test_concurrent_imports_of_one_series_leave_it_whole(api):
    """Both imports insert the same new UID: the second meets the first's row
    when it flushes (a 409, never a 500) and the series is stored once, with
    its occurrences once."""
    ann = api.register()
    content = CALENDAR.format(uid=f"race-{uuid.uuid4()}@example.com", start="21670105T093000",
                              rule="FREQ=DAILY;COUNT=50", status="CONFIRMED").encode()

    def send(_):
        return api.post("/calendars/import", user=ann, files={"file": ("cal.ics", content, "text/calendar")})

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(send, range(6)))
    statuses = sorted(answer.status_code for answer in answers)
    assert set(statuses) <= {200, 409} and 200 in statuses, [answer.text for answer in answers]
    assert all(answer.json()["error"]["code"] == "IMPORT_CONFLICT" for answer in answers if answer.status_code == 409)
    items, _ = walk(api, ann, "/calendar", **{"from": "2167-01-01T00:00:00Z", "to": "2167-03-01T00:00:00Z",
                                               "limit": 100})
    assert len(items) == 50 and len({item["id"] for item in items}) == 1
