"""The events service in a container against the real PostgreSQL, with auth
replaced: its entrypoints, its transactions and the events it records."""
import io
import uuid

import pytest
from nameko.testing.services import entrypoint_hook
from PIL import Image
from sqlalchemy import create_engine, select

from services.events.models import Event, Follow, Media, Outbox
from services.events.service import EventsService
from services.shared import contracts

MONDAY = "2027-03-01T17:00:00Z"


class People:
    """What the mocked auth knows: summaries and follow lists."""

    def __init__(self):
        self.summaries = {}
        self.following = {}

    def new(self, running, name):
        user = running.user()
        self.summaries[user["id"]] = {"id": user["id"], "username": name, "display_name": name.title(),
                                      "avatar_url": None}
        return user

    def get_users(self, ids):
        return [self.summaries[user_id] for user_id in ids if user_id in self.summaries]

    def get_following_ids(self, user_id):
        return list(self.following.get(user_id, ()))


@pytest.fixture
def events(run_service, tmp_path):
    running = run_service(EventsService, "auth", MEDIA_LOCAL_DIR=str(tmp_path))
    people = People()
    running.peers["auth"].get_users.side_effect = people.get_users
    running.peers["auth"].get_following_ids.side_effect = people.get_following_ids
    running.people = people
    return running


@pytest.fixture(scope="module")
def database(interface_config):
    engine = create_engine(interface_config["DB_URIS"]["events:Base"])
    yield engine
    engine.dispose()


def recorded(database, event_id):
    """(event_type, payload) of the outbox rows about a calendar event, in order."""
    with database.connect() as connection:
        rows = connection.execute(
            select(Outbox.c.event_type, Outbox.c.payload)
            .where(Outbox.c.payload["event"]["id"].astext == event_id).order_by(Outbox.c.id)
        ).all()
    return [(row.event_type, row.payload) for row in rows]


def create(events, user, **fields):
    body = dict({"title": "Climbing", "starts_at": MONDAY, "visibility": "public"}, **fields)
    answer = events.api.post("/events", user=user, json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


# Events ------------------------------------------------------------------------------

def test_an_event_is_created_read_changed_and_cancelled(events, database):
    ann = events.people.new(events, "ann")
    created = create(events, ann, ends_at="2027-03-01T19:00:00Z")
    assert created["organizer"]["username"] == "ann" and created["my_status"] == "organizer"
    assert created["starts_at"] == MONDAY and created["occurrence_id"] is None

    assert events.api.get(f"/events/{created['id']}", user=ann).json() == created
    changed = events.api.patch(f"/events/{created['id']}", user=ann, json={"starts_at": "2027-03-02T17:00:00Z"})
    assert changed.status_code == 200
    assert (changed.json()["starts_at"], changed.json()["ends_at"]) == ("2027-03-02T17:00:00Z", "2027-03-02T19:00:00Z")
    assert events.api.delete(f"/events/{created['id']}", user=ann).status_code == 204
    assert events.api.get(f"/events/{created['id']}", user=ann).json()["status"] == "cancelled"

    kinds = recorded(database, created["id"])
    assert [kind for kind, _ in kinds] == ["event_created", "event_updated", "event_cancelled"]
    for kind, payload in kinds:
        contract = {"event_created": contracts.EventCreated, "event_updated": contracts.EventUpdated,
                    "event_cancelled": contracts.EventCancelled}[kind]
        typed = contract.from_payload(payload)
        assert payload[contracts.ENVELOPE_ID] == typed.envelope_id and typed.organizer_id == ann["id"]
    assert kinds[1][1]["changed"] == ["ends_at", "starts_at"]
    assert kinds[1][1]["event"]["starts_at"] == "2027-03-02T17:00:00Z"


def test_only_the_organizer_changes_an_event_and_a_refused_change_changes_nothing(events, database):
    ann, bob = events.people.new(events, "ann"), events.people.new(events, "bob")
    created = create(events, ann)
    refused = events.api.patch(f"/events/{created['id']}", user=bob, json={"title": "Mine"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "NOT_ORGANIZER")
    invalid = events.api.patch(f"/events/{created['id']}", user=ann, json={"ends_at": "2027-03-01T16:00:00Z"})
    assert invalid.status_code == 422 and "ends_at" in invalid.json()["error"]["details"]
    # The row lock is gone with the rollback: the next change goes through at once.
    assert events.api.patch(f"/events/{created['id']}", user=ann, json={"title": "Bouldering"}).status_code == 200
    assert [kind for kind, _ in recorded(database, created["id"])] == ["event_created", "event_updated"]


@pytest.mark.parametrize("path, code", [
    ("/events/not-an-id", "EVENT_NOT_FOUND"), ("/events/../../etc/passwd", None),
    ("/posts/1234", "POST_NOT_FOUND"), (f"/events/{uuid.uuid4()}", "EVENT_NOT_FOUND"),
    ("/media/zzz", "MEDIA_NOT_FOUND"),
])
def test_an_id_that_names_nothing_is_the_404_of_its_kind(events, path, code):
    answer = events.api.get(path, user=events.user())
    assert answer.status_code == 404
    if code:
        assert answer.json()["error"]["code"] == code


# Joining --------------------------------------------------------------------------------

def test_joining_a_full_event_is_refused(events, database):
    ann, bob, cat = (events.people.new(events, name) for name in ("ann", "bob", "cat"))
    created = create(events, ann, capacity=1)
    joined = events.api.post(f"/events/{created['id']}/participants", user=bob)
    assert joined.status_code == 201 and joined.json()["my_status"] == "joined"
    assert joined.json()["participants_count"] == 1
    again = events.api.post(f"/events/{created['id']}/participants", user=bob)
    assert again.status_code == 201 and again.json()["participants_count"] == 1
    full = events.api.post(f"/events/{created['id']}/participants", user=cat)
    assert (full.status_code, full.json()["error"]["code"]) == (409, "EVENT_FULL")

    page = events.api.get(f"/events/{created['id']}/participants", user=cat).json()
    assert [(item["id"], item["username"]) for item in page["items"]] == [(bob["id"], "bob")]
    assert page["items"][0]["joined_at"].endswith("Z")
    joins = [payload for kind, payload in recorded(database, created["id"]) if kind == "participant_joined"]
    assert len(joins) == 1 and contracts.ParticipantJoined.from_payload(joins[0]).user_id == bob["id"]


def test_a_participant_who_left_the_service_is_shown_as_deleted(events):
    ann = events.people.new(events, "ann")
    gone = events.user()  # auth no longer knows them
    created = create(events, ann)
    events.api.post(f"/events/{created['id']}/participants", user=gone)
    item = events.api.get(f"/events/{created['id']}/participants", user=ann).json()["items"][0]
    assert item["username"] is None and item["display_name"] == "Deleted user" and item["id"] == gone["id"]


# Visibility -------------------------------------------------------------------------------

def test_a_followers_only_event_is_seen_by_followers_alone(events):
    ann, fan, stranger = (events.people.new(events, name) for name in ("ann", "fan", "stranger"))
    events.people.following[fan["id"]] = [ann["id"]]
    created = create(events, ann, visibility="followers")
    assert events.api.get(f"/events/{created['id']}", user=fan).status_code == 200
    hidden = events.api.get(f"/events/{created['id']}", user=stranger)
    assert (hidden.status_code, hidden.json()["error"]["code"]) == (404, "EVENT_NOT_FOUND")
    refused = events.api.post(f"/events/{created['id']}/participants", user=stranger)
    assert refused.status_code == 404


# Posts and the feed ----------------------------------------------------------------------------

def _picture():
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, "PNG")
    return out.getvalue()


def test_a_post_with_a_picture_reaches_the_feed_of_a_follower(events):
    ann, fan = events.people.new(events, "ann"), events.people.new(events, "fan")
    events.people.following[fan["id"]] = [ann["id"]]
    uploaded = events.api.post("/media", user=ann, files={"file": ("red.png", _picture(), "image/png")})
    assert uploaded.status_code == 201, uploaded.text
    media = uploaded.json()
    assert media["url"] == f"/media/{media['id']}" and media["content_type"] == "image/png"
    assert events.api.get(media["url"]).content.startswith(b"\x89PNG")

    event = create(events, ann)
    posted = events.api.post("/posts", user=ann, json={"body": "See you there", "event_id": event["id"],
                                                      "media_ids": [media["id"], media["id"]]})
    assert posted.status_code == 201, posted.text
    post = posted.json()
    assert post["media"] == [{"id": media["id"], "url": media["url"]}] and post["author"]["username"] == "ann"
    assert events.api.get(f"/posts/{post['id']}", user=fan).json() == post

    feed = events.api.get("/feed", user=fan, params={"limit": 1}).json()
    assert feed["items"] == [dict(post, type="post")] and feed["next_cursor"]
    rest = events.api.get("/feed", user=fan, params={"limit": 5, "cursor": feed["next_cursor"]}).json()
    assert [(item["type"], item["id"]) for item in rest["items"]] == [("event", event["id"])]
    assert rest["items"][0]["organizer"]["username"] == "ann" and rest["next_cursor"] is None

    by_event = events.api.get("/posts", user=fan, params={"event_id": event["id"]}).json()
    assert [item["id"] for item in by_event["items"]] == [post["id"]]
    refused = events.api.delete(f"/posts/{post['id']}", user=fan)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "NOT_AUTHOR")
    assert events.api.delete(f"/posts/{post['id']}", user=ann).status_code == 204
    assert events.api.get(f"/posts/{post['id']}", user=ann).status_code == 404


def test_a_post_may_not_show_someone_elses_upload(events):
    ann, bob = events.people.new(events, "ann"), events.people.new(events, "bob")
    media = events.api.post("/media", user=ann, files={"file": ("red.png", _picture(), "image/png")}).json()
    refused = events.api.post("/posts", user=bob, json={"body": "Mine now", "media_ids": [media["id"]]})
    assert refused.status_code == 422 and "media_ids" in refused.json()["error"]["details"]


# Ranges ---------------------------------------------------------------------------------------

def test_the_calendar_shows_each_occurrence_in_the_range(events):
    ann, bob = events.people.new(events, "ann"), events.people.new(events, "bob")
    weekly = create(events, ann, rrule="FREQ=WEEKLY;COUNT=4", ends_at="2027-03-01T18:00:00Z")
    single = create(events, bob, starts_at="2027-03-09T10:00:00Z")
    events.api.post(f"/events/{single['id']}/participants", user=ann)
    window = {"from": "2027-03-05T00:00:00Z", "to": "2027-03-20T00:00:00Z", "limit": 2}

    first = events.api.get("/calendar", user=ann, params=window).json()
    rest = events.api.get("/calendar", user=ann, params=dict(window, cursor=first["next_cursor"])).json()
    shown = [(item["id"], item["starts_at"], item["ends_at"], item["occurrence_id"])
             for item in first["items"] + rest["items"]]
    assert shown == [
        (weekly["id"], "2027-03-08T17:00:00Z", "2027-03-08T18:00:00Z", f"{weekly['id']}:2027-03-08T17:00:00Z"),
        (single["id"], "2027-03-09T10:00:00Z", "2027-03-09T11:00:00Z", None),
        (weekly["id"], "2027-03-15T17:00:00Z", "2027-03-15T18:00:00Z", f"{weekly['id']}:2027-03-15T17:00:00Z"),
    ]
    assert rest["next_cursor"] is None
    assert {item["my_status"] for item in first["items"] + rest["items"]} == {"organizer", "joined"}

    found = events.api.get("/events", user=bob, params=dict(window, q="climb", organizer_id=ann["id"])).json()
    assert [item["starts_at"] for item in found["items"]] == ["2027-03-08T17:00:00Z", "2027-03-15T17:00:00Z"]
    too_wide = events.api.get("/calendar", user=ann, params={"from": MONDAY, "to": "2029-01-01T00:00:00Z"})
    assert too_wide.status_code == 422 and "to" in too_wide.json()["error"]["details"]


# Events from auth ----------------------------------------------------------------------------

def test_a_follow_is_replicated_once(events, database):
    follower, followee = str(uuid.uuid4()), str(uuid.uuid4())
    followed = contracts.UserFollowed(follower_id=follower, followee_id=followee, envelope_id=str(uuid.uuid4()))
    with entrypoint_hook(events.container, "on_user_followed") as handle:
        handle(followed)
    with database.connect() as connection:
        assert connection.execute(select(Follow).where(Follow.follower_id == follower)).all()
    unfollowed = contracts.UserUnfollowed(follower_id=follower, followee_id=followee, envelope_id=str(uuid.uuid4()))
    with entrypoint_hook(events.container, "on_user_unfollowed") as handle:
        handle(unfollowed)
    with entrypoint_hook(events.container, "on_user_followed") as handle:
        handle(followed)  # redelivered: already handled, nothing happens
    with database.connect() as connection:
        assert not connection.execute(select(Follow).where(Follow.follower_id == follower)).all()


def test_a_deleted_user_is_forgotten_once_and_their_uploads_after(events, database, tmp_path):
    ann, bob = events.people.new(events, "ann"), events.people.new(events, "bob")
    upcoming = create(events, ann, capacity=5)
    bobs = create(events, bob)
    events.api.post(f"/events/{bobs['id']}/participants", user=ann)
    media = events.api.post("/media", user=ann, files={"file": ("red.png", _picture(), "image/png")}).json()
    assert (tmp_path / media["id"]).exists()

    deleted = contracts.UserDeleted(user_id=ann["id"], envelope_id=str(uuid.uuid4()))
    with entrypoint_hook(events.container, "on_user_deleted") as handle:
        handle(deleted)
        handle(deleted)  # redelivered: nothing twice

    cancelled = [payload for kind, payload in recorded(database, upcoming["id"]) if kind == "event_cancelled"]
    assert len(cancelled) == 1
    typed = contracts.EventCancelled.from_payload(cancelled[0])
    assert typed.reason == "organizer_deleted" and typed.event.status == "cancelled"
    assert cancelled[0][contracts.ENVELOPE_ID] == typed.envelope_id
    with database.connect() as connection:
        assert connection.scalar(select(Event.participants_count).where(Event.id == bobs["id"])) == 0
        assert connection.scalar(select(Media.id).where(Media.owner_id == ann["id"])) is None
    assert not (tmp_path / media["id"]).exists()
    shown = events.api.get(f"/events/{upcoming['id']}", user=bob)
    assert shown.json()["status"] == "cancelled"


# RPC ------------------------------------------------------------------------------------------

def test_get_media_answers_an_upload_or_none(events):
    ann = events.people.new(events, "ann")
    media = events.api.post("/media", user=ann, files={"file": ("red.png", _picture(), "image/png")}).json()
    with entrypoint_hook(events.container, "get_media") as get_media:
        assert get_media(media["id"]) == media
        assert get_media("../etc/passwd") is None and get_media(None) is None
        assert get_media(str(uuid.uuid4())) is None
