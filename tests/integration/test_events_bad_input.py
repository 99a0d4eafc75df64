"""Every events endpoint against bad input: each gets its documented 4xx JSON
error, and nothing in the events schema changes."""
import base64
import json
import uuid

import pytest
from sqlalchemy import text

from tests.conftest import Api
from tests.fixtures.events.media_samples import mp4_lasting

pytestmark = pytest.mark.integration

RANDOM_ID = str(uuid.uuid4())
GOOD_EVENT = {"title": "Quiz", "starts_at": "2027-04-01T19:00:00Z", "visibility": "public"}
GOOD_RANGE = {"from": "2027-01-01T00:00:00Z", "to": "2027-02-01T00:00:00Z"}
TABLES = ("events", "participants", "posts", "media", "outbox", "follows")


def cursor_of(value):
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def event_with(**changes):
    body = dict(GOOD_EVENT, **changes)
    return {key: value for key, value in body.items() if value is not ...}


def multipart(body, boundary="XyZ"):
    return {"data": body, "headers": {"Content-Type": "multipart/form-data; boundary=" + boundary}}


def oversized_chunks(total, chunk=1024 * 1024):
    head = b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n\x89PNG\r\n\x1a\n'
    yield head
    for _ in range(total // chunk):
        yield b"\x00" * chunk
    yield b"\r\n--XyZ--\r\n"


CASES = [
    # (name, method, path, request kwargs, status, error code)
    ("create: not json", "POST", "/events", {"data": "title=x", "headers": {"Content-Type": "text/plain"}},
     415, "UNSUPPORTED_MEDIA_TYPE"),
    ("create: malformed json", "POST", "/events", {"data": "{", "headers": {"Content-Type": "application/json"}},
     400, "MALFORMED_JSON"),
    ("create: json array", "POST", "/events", {"json": [GOOD_EVENT]}, 400, "MALFORMED_JSON"),
    ("create: huge body", "POST", "/events", {"json": event_with(description="x" * 70_000)}, 413,
     "PAYLOAD_TOO_LARGE"),
    ("create: no title", "POST", "/events", {"json": event_with(title=...)}, 422, "VALIDATION_FAILED"),
    ("create: blank title", "POST", "/events", {"json": event_with(title="   ")}, 422, "VALIDATION_FAILED"),
    ("create: long title", "POST", "/events", {"json": event_with(title="x" * 201)}, 422, "VALIDATION_FAILED"),
    ("create: control chars", "POST", "/events", {"json": event_with(title="a\x00b")}, 422, "VALIDATION_FAILED"),
    ("create: unparseable date", "POST", "/events", {"json": event_with(starts_at="next tuesday")}, 422,
     "VALIDATION_FAILED"),
    ("create: naive date", "POST", "/events", {"json": event_with(starts_at="2027-04-01T19:00:00")}, 422,
     "VALIDATION_FAILED"),
    ("create: date as number", "POST", "/events", {"json": event_with(starts_at=1799000000)}, 422,
     "VALIDATION_FAILED"),
    ("create: year 9999", "POST", "/events", {"json": event_with(starts_at="9999-12-31T23:59:59Z")}, 422,
     "VALIDATION_FAILED"),
    ("create: ends before starts", "POST", "/events", {"json": event_with(ends_at="2027-04-01T18:00:00Z")}, 422,
     "VALIDATION_FAILED"),
    ("create: ends at start", "POST", "/events", {"json": event_with(ends_at="2027-04-01T19:00:00Z")}, 422,
     "VALIDATION_FAILED"),
    ("create: lasts a year", "POST", "/events", {"json": event_with(ends_at="2028-04-01T19:00:00Z")}, 422,
     "VALIDATION_FAILED"),
    ("create: negative capacity", "POST", "/events", {"json": event_with(capacity=-1)}, 422, "VALIDATION_FAILED"),
    ("create: zero capacity", "POST", "/events", {"json": event_with(capacity=0)}, 422, "VALIDATION_FAILED"),
    ("create: huge capacity", "POST", "/events", {"json": event_with(capacity=100_001)}, 422, "VALIDATION_FAILED"),
    ("create: capacity as text", "POST", "/events", {"json": event_with(capacity="10")}, 422, "VALIDATION_FAILED"),
    ("create: capacity as bool", "POST", "/events", {"json": event_with(capacity=True)}, 422, "VALIDATION_FAILED"),
    ("create: unknown timezone", "POST", "/events", {"json": event_with(timezone="Mars/Olympus")}, 422,
     "VALIDATION_FAILED"),
    ("create: bad visibility", "POST", "/events", {"json": event_with(visibility="everyone")}, 422,
     "VALIDATION_FAILED"),
    ("create: secondly rrule", "POST", "/events", {"json": event_with(rrule="FREQ=SECONDLY")}, 422,
     "VALIDATION_FAILED"),
    ("create: garbage rrule", "POST", "/events", {"json": event_with(rrule="every day please")}, 422,
     "VALIDATION_FAILED"),
    ("create: impossible rrule", "POST", "/events", {"json": event_with(rrule="FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30")},
     422, "VALIDATION_FAILED"),
    ("create: bad rrule count", "POST", "/events", {"json": event_with(rrule="FREQ=DAILY;COUNT=abc")}, 422,
     "VALIDATION_FAILED"),
    # Found by a penetration test: each was a 500, or a minutely rule stored.
    ("create: 99th monday", "POST", "/events", {"json": event_with(rrule="FREQ=MONTHLY;BYDAY=99MO")}, 422,
     "VALIDATION_FAILED"),
    ("create: huge ordinal", "POST", "/events",
     {"json": event_with(rrule="FREQ=MONTHLY;BYDAY=+99999999999999999999MO")}, 422, "VALIDATION_FAILED"),
    ("create: 53rd monday of february", "POST", "/events",
     {"json": event_with(rrule="FREQ=YEARLY;BYMONTH=2;BYDAY=53MO")}, 422, "VALIDATION_FAILED"),
    ("create: first monday on the 8th", "POST", "/events",
     {"json": event_with(rrule="FREQ=MONTHLY;BYDAY=1MO;BYMONTHDAY=8")}, 422, "VALIDATION_FAILED"),
    ("create: two frequencies", "POST", "/events", {"json": event_with(rrule="FREQ=DAILY;FREQ=MINUTELY")}, 422,
     "VALIDATION_FAILED"),
    # Searched by dateutil to the year 9999 (every April, never a 31st), or out of range.
    ("create: rrule that never matches", "POST", "/events",
     {"json": event_with(rrule="FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=31")}, 422, "VALIDATION_FAILED"),
    ("create: 32nd of the month", "POST", "/events", {"json": event_with(rrule="FREQ=MONTHLY;BYMONTHDAY=32")}, 422,
     "VALIDATION_FAILED"),
    ("update: rrule that never matches", "PATCH", "/events/{event}",
     {"json": {"rrule": "FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=31"}}, 422, "VALIDATION_FAILED"),
    ("update: 99th monday", "PATCH", "/events/{event}", {"json": {"rrule": "FREQ=MONTHLY;BYDAY=99MO"}}, 422,
     "VALIDATION_FAILED"),
    ("update: huge ordinal", "PATCH", "/events/{event}",
     {"json": {"rrule": "FREQ=MONTHLY;BYDAY=+99999999999999999999MO"}}, 422, "VALIDATION_FAILED"),
    ("create: unknown field", "POST", "/events", {"json": event_with(owner="me")}, 422, "VALIDATION_FAILED"),
    ("create: cover not uuid", "POST", "/events", {"json": event_with(cover_media_id="abc")}, 422,
     "VALIDATION_FAILED"),
    ("create: cover unknown", "POST", "/events", {"json": event_with(cover_media_id=RANDOM_ID)}, 422,
     "INVALID_MEDIA"),
    ("create: is_online as text", "POST", "/events", {"json": event_with(is_online="yes")}, 422,
     "VALIDATION_FAILED"),
    ("read: non-uuid id", "GET", "/events/12345", {}, 404, "EVENT_NOT_FOUND"),
    ("read: unknown id", "GET", "/events/" + RANDOM_ID, {}, 404, "EVENT_NOT_FOUND"),
    ("update: ends before starts", "PATCH", "/events/{event}", {"json": {"ends_at": "2027-04-01T18:00:00Z"}}, 422,
     "VALIDATION_FAILED"),
    ("update: bad date", "PATCH", "/events/{event}", {"json": {"starts_at": "2027-02-30T10:00:00Z"}}, 422,
     "VALIDATION_FAILED"),
    ("update: capacity below participants", "PATCH", "/events/{event}", {"json": {"capacity": 1}}, 409,
     "CAPACITY_BELOW_PARTICIPANTS"),
    ("update: non-uuid id", "PATCH", "/events/nope", {"json": {"title": "x"}}, 404, "EVENT_NOT_FOUND"),
    ("update: not json", "PATCH", "/events/{event}", {"data": "x", "headers": {"Content-Type": "text/plain"}}, 415,
     "UNSUPPORTED_MEDIA_TYPE"),
    ("cancel: unknown id", "DELETE", "/events/" + RANDOM_ID, {}, 404, "EVENT_NOT_FOUND"),
    ("join: non-uuid id", "POST", "/events/x/participants", {}, 404, "EVENT_NOT_FOUND"),
    ("leave: unknown id", "DELETE", f"/events/{RANDOM_ID}/participants/me", {}, 404, "EVENT_NOT_FOUND"),
    ("participants: bad cursor", "GET", "/events/{event}/participants", {"params": {"cursor": "%%%"}}, 422,
     "INVALID_CURSOR"),
    ("list: no range", "GET", "/events", {}, 422, "VALIDATION_FAILED"),
    ("list: unparseable from", "GET", "/events", {"params": dict(GOOD_RANGE, **{"from": "yesterday"})}, 422,
     "VALIDATION_FAILED"),
    ("list: to before from", "GET", "/events", {"params": {"from": GOOD_RANGE["to"], "to": GOOD_RANGE["from"]}},
     422, "VALIDATION_FAILED"),
    ("list: absurd range", "GET", "/events", {"params": {"from": "1970-01-01T00:00:00Z",
                                                         "to": "2199-01-01T00:00:00Z"}}, 422, "VALIDATION_FAILED"),
    ("list: limit 0", "GET", "/events", {"params": dict(GOOD_RANGE, limit=0)}, 422, "VALIDATION_FAILED"),
    ("list: limit 1000", "GET", "/events", {"params": dict(GOOD_RANGE, limit=1000)}, 422, "VALIDATION_FAILED"),
    ("list: organizer not uuid", "GET", "/events", {"params": dict(GOOD_RANGE, organizer_id="bob")}, 422,
     "VALIDATION_FAILED"),
    ("list: cursor garbage", "GET", "/events", {"params": dict(GOOD_RANGE, cursor="!!!")}, 422, "INVALID_CURSOR"),
    ("list: cursor wrong shape", "GET", "/events", {"params": dict(GOOD_RANGE, cursor=cursor_of({"a": 1}))}, 422,
     "INVALID_CURSOR"),
    ("list: cursor wrong types", "GET", "/events",
     {"params": dict(GOOD_RANGE, cursor=cursor_of(["2027-01-01T00:00:00", "x"]))}, 422, "INVALID_CURSOR"),
    ("list: cursor with a NUL", "GET", "/events",
     {"params": dict(GOOD_RANGE, cursor=cursor_of(["2027-01-01T00:00:00Z", RANDOM_ID + "\u0000"]))}, 422,
     "INVALID_CURSOR"),
    ("list: q with a NUL", "GET", "/events", {"params": dict(GOOD_RANGE, q="quiz\u0000")}, 422, "VALIDATION_FAILED"),
    ("feed: cursor with a NUL", "GET", "/feed", {"params": {"cursor": cursor_of(["\u0000", RANDOM_ID])}}, 422,
     "INVALID_CURSOR"),
    ("posts: cursor with a control character", "GET", "/posts",
     {"params": {"cursor": cursor_of(["2027-01-01T00:00:00Z\x1b", RANDOM_ID])}}, 422, "INVALID_CURSOR"),
    ("participants: cursor with a huge number", "GET", "/events/{event}/participants",
     {"params": {"cursor": cursor_of([2**80, RANDOM_ID])}}, 422, "INVALID_CURSOR"),
    ("calendar: absurd range", "GET", "/calendar", {"params": {"from": "2027-01-01T00:00:00Z",
                                                               "to": "2029-01-01T00:00:00Z"}}, 422,
     "VALIDATION_FAILED"),
    ("media: json body", "POST", "/media", {"json": {"file": "abc"}}, 415, "UNSUPPORTED_MEDIA_TYPE"),
    ("media: text file", "POST", "/media", {"files": {"file": ("a.png", b"just text, not a picture")}}, 415,
     "UNSUPPORTED_MEDIA_TYPE"),
    ("media: html as image", "POST", "/media", {"files": {"file": ("a.jpg", b"<html><script>x</script></html>")}},
     415, "UNSUPPORTED_MEDIA_TYPE"),
    ("media: no file field", "POST", "/media", {"files": {"other": ("a.png", b"\x89PNG\r\n\x1a\n")}}, 400,
     "MALFORMED_MULTIPART"),
    ("media: empty file", "POST", "/media", {"files": {"file": ("a.png", b"")}}, 422, "EMPTY_FILE"),
    ("media: truncated multipart", "POST", "/media",
     multipart(b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n\x89PNG\r\n'), 400,
     "MALFORMED_MULTIPART"),
    ("media: too large", "POST", "/media", {"files": {"file": ("a.png", b"\x89PNG\r\n\x1a\n" + b"0" * 10_500_000)}},
     413, "PAYLOAD_TOO_LARGE"),
    ("media: chunked, no length", "POST", "/media", {"data": oversized_chunks(11 * 1024 * 1024),
                                                     "headers": {"Content-Type": "multipart/form-data; boundary=XyZ"}},
     400, "LENGTH_REQUIRED"),
    ("media: long video", "POST", "/media", {"files": {"file": ("a.mp4", mp4_lasting(600))}}, 422,
     "VIDEO_TOO_LONG"),
    ("media: video without duration", "POST", "/media", {"files": {"file": ("a.mp4", mp4_lasting(5)[:30])}}, 422,
     "INVALID_VIDEO"),
    ("media: non-uuid id", "GET", "/media/../../etc/passwd", {}, 404, "NOT_FOUND"),
    ("media: unknown id", "GET", "/media/" + RANDOM_ID, {}, 404, "MEDIA_NOT_FOUND"),
    ("post: empty body", "POST", "/posts", {"json": {"body": ""}}, 422, "VALIDATION_FAILED"),
    ("post: long body", "POST", "/posts", {"json": {"body": "x" * 5001}}, 422, "VALIDATION_FAILED"),
    ("post: body not text", "POST", "/posts", {"json": {"body": ["x"]}}, 422, "VALIDATION_FAILED"),
    ("post: too many media", "POST", "/posts", {"json": {"body": "x", "media_ids": [RANDOM_ID] * 11}}, 422,
     "VALIDATION_FAILED"),
    ("post: media not a list", "POST", "/posts", {"json": {"body": "x", "media_ids": RANDOM_ID}}, 422,
     "VALIDATION_FAILED"),
    ("post: foreign media", "POST", "/posts", {"json": {"body": "x", "media_ids": [RANDOM_ID]}}, 422,
     "INVALID_MEDIA"),
    ("post: event not uuid", "POST", "/posts", {"json": {"body": "x", "event_id": "1"}}, 422, "VALIDATION_FAILED"),
    ("post: unknown event", "POST", "/posts", {"json": {"body": "x", "event_id": RANDOM_ID}}, 422, "INVALID_EVENT"),
    ("post: non-uuid id", "GET", "/posts/1", {}, 404, "POST_NOT_FOUND"),
    ("post delete: unknown", "DELETE", "/posts/" + RANDOM_ID, {}, 404, "POST_NOT_FOUND"),
    ("posts: author not uuid", "GET", "/posts", {"params": {"author_id": "x"}}, 422, "VALIDATION_FAILED"),
    ("posts: bad cursor", "GET", "/posts", {"params": {"cursor": cursor_of([1, 2])}}, 422, "INVALID_CURSOR"),
    ("feed: bad cursor", "GET", "/feed", {"params": {"cursor": cursor_of(["2027-01-01T00:00:00Z", "not-a-uuid"])}},
     422, "INVALID_CURSOR"),
    ("feed: huge cursor", "GET", "/feed", {"params": {"cursor": "A" * 600}}, 422, "INVALID_CURSOR"),
    ("import: form body", "POST", "/calendars/import", {"data": {"url": "x"}}, 415, "UNSUPPORTED_MEDIA_TYPE"),
    ("import: no url", "POST", "/calendars/import", {"json": {}}, 422, "VALIDATION_FAILED"),
    ("import: url too long", "POST", "/calendars/import", {"json": {"url": "https://e.com/" + "a" * 2000}}, 422,
     "VALIDATION_FAILED"),
    ("import: no file", "POST", "/calendars/import", {"files": {"other": ("a.ics", b"BEGIN:VCALENDAR")}}, 400,
     "MALFORMED_MULTIPART"),
]


@pytest.fixture(scope="module")
def scene(system):
    api = Api(system.base_url)
    organizer, joiner, other = api.register(), api.register(), api.register()
    event = api.post("/events", user=organizer, json=GOOD_EVENT).json()
    for user in (joiner, other):
        assert api.post("/events/{}/participants".format(event["id"]), user=user).status_code == 201
    return {"api": api, "organizer": organizer, "event": event}


def snapshot(db_engine):
    with db_engine.connect() as connection:
        counts = {table: connection.scalar(text("SELECT count(*) FROM events." + table)) for table in TABLES}
        counts["last_change"] = connection.scalar(text("SELECT max(updated_at) FROM events.events"))
    return counts


@pytest.mark.parametrize("name, method, path, kwargs, status, code", CASES, ids=[case[0] for case in CASES])
def test_bad_input_is_refused_and_changes_nothing(scene, db_engine, name, method, path, kwargs, status, code):
    before = snapshot(db_engine)
    response = scene["api"].request(method, path.format(event=scene["event"]["id"]), user=scene["organizer"],
                                    **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == code
    assert snapshot(db_engine) == before


@pytest.mark.parametrize("method, path", [
    ("POST", "/events"), ("GET", "/events"), ("GET", "/calendar"), ("GET", "/calendar.ics"), ("GET", "/feed"),
    ("POST", "/media"), ("POST", "/posts"), ("POST", "/calendars/import"),
])
def test_calls_without_a_token_are_refused(scene, method, path):
    response = scene["api"].request(method, path)
    assert response.status_code == 401 and response.json()["error"]["code"] == "TOKEN_MISSING"
