"""One text policy on every text field of every service, against the running
system: each spoofing string is a 422 naming the field and changes nothing;
emoji and every script are stored as sent (NFC); an imported calendar's
control characters, bidi overrides and Zalgo marks are never stored."""
import unicodedata
import uuid

import pytest
from sqlalchemy import text as sql

from services.shared import text
from tests.fixtures.text_samples import ONE_LINE_ONLY, REAL_TEXT, SPOOFS

pytestmark = pytest.mark.integration

RANGE = {"from": "2027-01-01T00:00:00Z", "to": "2027-12-31T00:00:00Z"}
EVENT = {"title": "Picnic", "starts_at": "2027-06-01T12:00:00Z", "visibility": "public"}


@pytest.fixture(scope="module")
def scene(api):
    ann, bob, cat = api.register(), api.register(), api.register()
    event = api.post("/events", user=ann, json=EVENT).json()
    chat = api.post("/messages/conversations", user=ann, json={"member_ids": [bob["id"]]}).json()
    return {"api": api, "ann": ann, "ids": [bob["id"], cat["id"]], "event": event["id"], "chat": chat["id"]}


def register(scene, value):
    name = "u" + uuid.uuid4().hex[:12]
    return scene["api"].post("/auth/register", json={"email": name + "@example.com", "username": name,
                                                     "password": "correct horse battery", "display_name": value})


def as_ann(method, path, body=None, query=None):
    """A call by ann whose `...` is the value tried; a callable is read from the scene."""
    def fill(template, scene, value):
        return {key: value if item is ... else item(scene) if callable(item) else item
                for key, item in template.items()}

    def send(scene, value):
        return scene["api"].request(method, path.format(**scene), user=scene["ann"],
                                    json=fill(body, scene, value) if body is not None else None,
                                    params=fill(query, scene, value) if query is not None else None)
    return send


def members(scene):
    return scene["ids"]


def chat(scene):
    return scene["chat"]


def read(key):
    return lambda answer: answer[key]


# where, field, several lines?, how a value is sent, how the stored value is read back (None: not stored)
FIELDS = [
    ("register", "display_name", False, register, lambda answer: answer["user"]["display_name"]),
    ("profile", "display_name", False, as_ann("PATCH", "/users/me", {"display_name": ...}), read("display_name")),
    ("profile", "bio", True, as_ann("PATCH", "/users/me", {"bio": ...}), read("bio")),
    ("users search", "q", False, as_ann("GET", "/users", query={"q": ...}), None),
    ("event", "title", False, as_ann("POST", "/events", dict(EVENT, title=...)), read("title")),
    ("event", "description", True, as_ann("POST", "/events", dict(EVENT, description=...)), read("description")),
    ("event", "location", False, as_ann("POST", "/events", dict(EVENT, location=...)), read("location")),
    ("event update", "title", False, as_ann("PATCH", "/events/{event}", {"title": ...}), read("title")),
    ("event update", "description", True, as_ann("PATCH", "/events/{event}", {"description": ...}),
     read("description")),
    ("event update", "location", False, as_ann("PATCH", "/events/{event}", {"location": ...}), read("location")),
    ("events search", "q", False, as_ann("GET", "/events", query=dict(RANGE, q=...)), None),
    ("post", "body", True, as_ann("POST", "/posts", {"body": ...}), read("body")),
    ("conversation", "title", False, as_ann("POST", "/messages/conversations", {"member_ids": members, "title": ...}),
     read("title")),
    ("message", "body", True, as_ann("POST", "/messages", {"conversation_id": chat, "body": ...}), read("body")),
    ("message", "client_id", False,
     as_ann("POST", "/messages", {"conversation_id": chat, "body": "hi", "client_id": ...}), read("client_id")),
]


TABLES = ("auth.users", "events.events", "events.posts", "messages.conversations", "messages.messages")


def state(db_engine, scene):
    """Row counts, and the rows the PATCH calls would change."""
    with db_engine.connect() as connection:
        counts = {table: connection.scalar(sql(f"SELECT count(*) FROM {table}")) for table in TABLES}
        profile = connection.execute(sql("SELECT display_name, bio FROM auth.users WHERE id = :id"),
                                     {"id": scene["ann"]["id"]}).one()
        event = connection.execute(sql("SELECT title, description, location, updated_at FROM events.events "
                                       "WHERE id = :id"), {"id": scene["event"]}).one()
    return counts, tuple(profile), tuple(event)


def applies(field, spoof):
    """Line breaks are spoofs in one-line fields only; a URL cannot carry an
    unpaired surrogate (a query string is UTF-8)."""
    if spoof in ONE_LINE_ONLY:
        return not field[2]
    return not (field[0].endswith("search") and spoof[0] == "unpaired surrogate")


SPOOF_CASES = [(field, spoof) for field in FIELDS for spoof in SPOOFS + ONE_LINE_ONLY if applies(field, spoof)]


@pytest.mark.parametrize("field, spoof", SPOOF_CASES,
                         ids=[f"{field[0]}.{field[1]}: {spoof[0]}" for field, spoof in SPOOF_CASES])
def test_every_text_field_refuses_every_spoof_and_changes_nothing(scene, db_engine, field, spoof):
    (_, name, _, send, _), (_, value, reason) = field, spoof
    before = state(db_engine, scene)
    answer = send(scene, value)
    assert answer.status_code == 422, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    error = answer.json()["error"]
    assert error["code"] == "VALIDATION_FAILED"
    assert any(reason in message for message in error["details"][name]), error
    assert state(db_engine, scene) == before


REAL_CASES = [(field, sample) for field in FIELDS for sample in REAL_TEXT]


@pytest.mark.parametrize("field, sample", REAL_CASES,
                         ids=[f"{field[0]}.{field[1]}: {sample[0]}" for field, sample in REAL_CASES])
def test_every_text_field_takes_emoji_and_every_script_as_sent(scene, field, sample):
    (_, _, _, send, read_back), (_, value) = field, sample
    answer = send(scene, value)
    assert answer.status_code in (200, 201), answer.text
    if read_back is not None:
        assert read_back(answer.json()) == unicodedata.normalize("NFC", value)


MULTI_LINE = [field for field in FIELDS if field[2]]


@pytest.mark.parametrize("field", MULTI_LINE, ids=[f"{field[0]}.{field[1]}" for field in MULTI_LINE])
def test_multi_line_fields_keep_tabs_and_store_line_breaks_as_lf(scene, field):
    _, _, _, send, read_back = field
    answer = send(scene, "Bring:\r\n\t- bread\r\t- cheese")
    assert answer.status_code in (200, 201), answer.text
    assert read_back(answer.json()) == "Bring:\n\t- bread\n\t- cheese"


@pytest.mark.parametrize("emoji, reason", [
    ("👍" + "\u0336" * 12, "Must be an emoji"),
    ("\u202e👍", "Must be an emoji"),
    ("\u0301👍", "Must be an emoji"),
], ids=["Zalgo thumbs-up", "bidi override", "a mark first"])
def test_reactions_refuse_spoofed_emoji(scene, emoji, reason):
    api = scene["api"]
    message = api.post("/messages", user=scene["ann"], json={"conversation_id": scene["chat"], "body": "hi"}).json()
    answer = api.post(f"/messages/{message['id']}/reactions", user=scene["ann"], json={"emoji": emoji})
    assert answer.status_code == 422, answer.text
    assert any(reason in message for message in answer.json()["error"]["details"]["emoji"])


SPOOFED_CALENDAR = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Test//EN\r
BEGIN:VEVENT\r
UID:spoof-{tag}@example.com\r
DTSTAMP:20270101T000000Z\r
SUMMARY:Meet\x1b[31mup\x07 \u202egnp.exe\r
DESCRIPTION:Line one\\nLine\x00 two\x0b\u2066hidden\u2069\r
LOCATION:Z{zalgo}oo\r
DTSTART:20270110T200000Z\r
DURATION:PT1H\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:blank-{tag}@example.com\r
DTSTAMP:20270101T000000Z\r
SUMMARY:\u200b\u3164\u2800\r
DTSTART:20270111T200000Z\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:scripts-{tag}@example.com\r
DTSTAMP:20270101T000000Z\r
SUMMARY:東京 🎉 لنلتقِ हिन्दी\r
DTSTART:20270112T200000Z\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_an_imported_calendar_never_stores_what_the_api_would_refuse(api, db_engine):
    ann = api.register()
    tag = uuid.uuid4().hex
    ics = SPOOFED_CALENDAR.format(tag=tag, zalgo="\u0336" * 40).encode()
    answer = api.post("/calendars/import", user=ann, files={"file": ("cal.ics", ics, "text/calendar")})
    assert answer.status_code == 200, answer.text
    assert answer.json()["imported"] == 3
    with db_engine.connect() as connection:
        rows = {uid.split("-")[0]: (title, description, location) for uid, title, description, location in
                connection.execute(sql("SELECT ical_uid, title, description, location FROM events.events "
                                       "WHERE organizer_id = :id"), {"id": ann["id"]})}
    title, description, location = rows["spoof"]
    assert title == "Meet[31mup gnp.exe"
    assert description == "Line one\nLine two\nhidden"
    assert location == "Z" + "\u0336" * text.MAX_COMBINING_MARKS + "oo"
    assert rows["blank"][0] == "(untitled)"
    assert rows["scripts"][0] == "東京 🎉 لنلتقِ हिन्दी"
    for title, description, location in rows.values():
        assert text.check(title) == title
        assert text.check(description, multiline=True) == description
        assert text.check(location) == location
