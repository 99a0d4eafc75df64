"""Events over real HTTP: create, read, change, cancel, visibility, ranges,
recurrence and participation, against the whole running system."""
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.integration


def new_event(api, user, **fields):
    body = {"title": "Board games", "starts_at": "2027-03-01T18:00:00Z", "visibility": "public", **fields}
    response = api.post("/events", user=user, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def follow(api, follower, followee):
    assert api.post("/users/{}/follow".format(followee["id"]), user=follower).status_code == 204


def test_create_read_update_cancel(api):
    ann, bob = api.register(), api.register()
    event = new_event(api, ann, ends_at="2027-03-01T21:00:00Z", timezone="Europe/Paris", capacity=5,
                      description="Bring snacks", location="Le Bar")
    assert event["organizer"]["id"] == ann["id"]
    assert event["organizer"]["username"] == ann["user"]["username"]
    assert event["my_status"] == "organizer" and event["participants_count"] == 0
    assert (event["starts_at"], event["ends_at"], event["timezone"]) == (
        "2027-03-01T18:00:00Z", "2027-03-01T21:00:00Z", "Europe/Paris")

    seen = api.get("/events/" + event["id"], user=bob).json()
    assert seen["title"] == "Board games" and seen["my_status"] is None

    assert api.patch("/events/" + event["id"], user=bob, json={"title": "Mine"}).status_code == 403
    moved = api.patch("/events/" + event["id"], user=ann, json={"starts_at": "2027-03-02T18:00:00+01:00"})
    assert moved.status_code == 200, moved.text
    # Moving keeps the length.
    assert (moved.json()["starts_at"], moved.json()["ends_at"]) == ("2027-03-02T17:00:00Z", "2027-03-02T20:00:00Z")

    assert api.delete("/events/" + event["id"], user=bob).status_code == 403
    assert api.delete("/events/" + event["id"], user=ann).status_code == 204
    assert api.delete("/events/" + event["id"], user=ann).status_code == 204
    assert api.get("/events/" + event["id"], user=bob).json()["status"] == "cancelled"
    joined = api.post("/events/{}/participants".format(event["id"]), user=bob)
    assert joined.status_code == 409 and joined.json()["error"]["code"] == "EVENT_CANCELLED"


def test_visibility_private_and_followers(api):
    ann, fan, stranger = api.register(), api.register(), api.register()
    follow(api, fan, ann)
    private = new_event(api, ann, visibility="private", title="Secret")
    followers = new_event(api, ann, visibility="followers", title="Friends")

    for user, expected in ((fan, {followers["id"]}), (stranger, set())):
        assert api.get("/events/" + private["id"], user=user).status_code == 404
        status = api.get("/events/" + followers["id"], user=user).status_code
        assert status == (200 if expected else 404)
        listed = api.get("/events", user=user, params={
            "from": "2027-01-01T00:00:00Z", "to": "2027-12-31T00:00:00Z", "organizer_id": ann["id"]}).json()
        assert {item["id"] for item in listed["items"]} == expected
    assert api.post("/events/{}/participants".format(private["id"]), user=stranger).status_code == 404
    # Unfollowing hides followers-only events again (the replica follows auth's events).
    assert api.delete("/users/{}/follow".format(ann["id"]), user=fan).status_code == 204
    deadline = time.monotonic() + 5
    while api.get("/events/" + followers["id"], user=fan).status_code != 404:
        assert time.monotonic() < deadline, "unfollow never reached the events service"
        time.sleep(0.1)


def test_range_pages_and_recurrence(api):
    ann = api.register()
    title = "weekly-" + ann["id"][:8]
    new_event(api, ann, title=title, starts_at="2027-05-03T16:00:00Z", timezone="Europe/Paris",
              rrule="FREQ=WEEKLY;COUNT=10")
    single = new_event(api, ann, title=title + " single", starts_at="2027-05-05T10:00:00Z")
    params = {"from": "2027-05-01T00:00:00Z", "to": "2027-06-01T00:00:00Z", "q": title, "limit": 2}
    starts, cursor = [], None
    while True:
        answer = api.get("/events", user=ann, params=dict(params, cursor=cursor) if cursor else params).json()
        starts += [(item["starts_at"], item["occurrence_id"]) for item in answer["items"]]
        cursor = answer["next_cursor"]
        if not cursor:
            break
    assert [start for start, _ in starts] == [
        "2027-05-03T16:00:00Z", "2027-05-05T10:00:00Z", "2027-05-10T16:00:00Z", "2027-05-17T16:00:00Z",
        "2027-05-24T16:00:00Z", "2027-05-31T16:00:00Z",
    ]
    assert starts[1][1] is None and starts[0][1].endswith(":2027-05-03T16:00:00Z")
    # Local wall time is kept across the end of daylight saving time.
    autumn = api.get("/events", user=ann, params={"from": "2027-10-25T00:00:00Z", "to": "2027-11-01T00:00:00Z",
                                                  "q": title}).json()["items"]
    assert autumn == []  # COUNT=10 ended in July
    new_event(api, ann, title=title + " dst", starts_at="2027-10-18T16:00:00Z", timezone="Europe/Paris",
              rrule="FREQ=WEEKLY;COUNT=3")
    autumn = api.get("/events", user=ann, params={"from": "2027-10-01T00:00:00Z", "to": "2027-11-30T00:00:00Z",
                                                  "q": title + " dst"}).json()["items"]
    assert [item["starts_at"] for item in autumn] == [
        "2027-10-18T16:00:00Z", "2027-10-25T16:00:00Z", "2027-11-01T17:00:00Z"]
    assert single["occurrence_id"] is None


def test_join_leave_participants_and_calendar(api):
    ann, bob = api.register(), api.register()
    event = new_event(api, ann, capacity=1)
    url = "/events/{}/participants".format(event["id"])
    first = api.post(url, user=bob)
    assert first.status_code == 201 and first.json()["my_status"] == "joined"
    assert api.post(url, user=bob).status_code == 201  # idempotent
    assert api.get("/events/" + event["id"], user=bob).json()["participants_count"] == 1
    full = api.post(url, user=api.register())
    assert full.status_code == 409 and full.json()["error"]["code"] == "EVENT_FULL"
    people = api.get(url, user=ann).json()
    assert [person["id"] for person in people["items"]] == [bob["id"]]
    calendar = api.get("/calendar", user=bob, params={"from": "2027-02-01T00:00:00Z",
                                                      "to": "2027-04-01T00:00:00Z"}).json()
    assert [item["id"] for item in calendar["items"]] == [event["id"]]
    assert api.delete(url + "/me", user=bob).status_code == 204
    assert api.delete(url + "/me", user=bob).status_code == 204
    assert api.get("/events/" + event["id"], user=bob).json()["participants_count"] == 0


def test_capacity_holds_under_concurrent_joins(api, db_engine):
    from sqlalchemy import text

    ann = api.register()
    event = new_event(api, ann, capacity=10)
    with ThreadPoolExecutor(20) as pool:
        users = list(pool.map(lambda _: api.register(), range(200)))
    url = "/events/{}/participants".format(event["id"])
    with ThreadPoolExecutor(200) as pool:
        statuses = list(pool.map(lambda user: api.post(url, user=user).status_code, users))
    assert statuses.count(201) == 10 and statuses.count(409) == 190, sorted(set(statuses))
    with db_engine.connect() as connection:
        joined = connection.scalar(text("SELECT count(*) FROM events.participants WHERE event_id = :id"),
                                   {"id": event["id"]})
    assert joined == 10
    assert api.get("/events/" + event["id"], user=ann).json()["participants_count"] == 10


def test_organizer_is_notified_of_a_join(api):
    """participant_joined goes out through the outbox and the messages service
    turns it into a notification for the organizer."""
    ann, bob = api.register(), api.register()
    event = new_event(api, ann, title="Open mic")
    assert api.post(f"/events/{event['id']}/participants", user=bob).status_code == 201
    deadline = time.monotonic() + 10
    while True:
        notes = api.get("/notifications", user=ann).json()["items"]
        joined = [note for note in notes if note["type"] == "event_participant_joined"]
        if joined:
            break
        assert time.monotonic() < deadline, "no notification for the organizer"
        time.sleep(0.2)
    assert joined[0]["data"]["event_id"] == event["id"] and joined[0]["data"]["user_id"] == bob["id"]
