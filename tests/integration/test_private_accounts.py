"""Private accounts, follow requests, removing followers, the daily limit of
follow notifications and who may add whom to a group, against the whole
running system. Replication (auth -> events, auth -> messages) is
asynchronous: what depends on it is awaited with `eventually`."""
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from nameko.standalone.events import event_dispatcher
from sqlalchemy import text

from tests.conftest import eventually

pytestmark = pytest.mark.integration


def _soon(days=3):
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event(api, organizer, visibility="followers"):
    created = api.post("/events", user=organizer, json={"title": "Garden party", "starts_at": _soon(),
                                                         "visibility": visibility})
    assert created.status_code == 201, created.text
    return created.json()


def _private(api, user, **settings):
    answer = api.patch("/users/me", user=user, json={"is_private": True, **settings})
    assert answer.status_code == 200, answer.text
    return answer.json()


def _status(api, viewer, user):
    return api.get(f"/users/{user['id']}", user=viewer).json()["follow_status"]


def _sees(api, viewer, event):
    return api.get(f"/events/{event['id']}", user=viewer).status_code == 200


def _notifications(api, user, kind=None):
    items = api.get("/notifications", user=user).json()["items"]
    return [item for item in items if kind is None or item["type"] == kind]


def _requests(api, owner):
    answer = api.get("/users/me/follow-requests", user=owner)
    assert answer.status_code == 200, answer.text
    return [user["id"] for user in answer.json()["items"]]


def _all_handled(db_engine, event_type, handler, **payload):
    """Whether messages handled every `event_type` auth recorded with these payload values."""
    conditions = " AND ".join(f"payload->>'{key}' = :{key}" for key in payload)
    with db_engine.connect() as connection:
        recorded = set(connection.execute(text(
            f"SELECT event_id::text FROM auth.outbox WHERE event_type = :type AND {conditions}"),
            {"type": event_type, **payload}).scalars())
        handled = set(connection.execute(text(
            "SELECT event_id::text FROM messages.processed_events WHERE handler = :handler"
            " AND event_id = ANY(CAST(:ids AS uuid[]))"), {"handler": handler, "ids": list(recorded)}).scalars())
    return recorded and recorded == handled


def test_following_a_private_account_waits_for_approval(api):
    ann, bob = api.register(), api.register()
    assert _private(api, ann)["is_private"] is True
    party = _event(api, ann)
    answer = api.post(f"/users/{ann['id']}/follow", user=bob)
    assert answer.status_code == 202 and answer.json() == {"status": "requested"}
    # Asking again is the same request.
    assert api.post(f"/users/{ann['id']}/follow", user=bob).status_code == 202
    profile = api.get(f"/users/{ann['id']}", user=bob).json()
    assert profile["is_private"] is True and profile["follow_status"] == "requested"
    assert profile["is_following"] is False and profile["followers_count"] == 0
    assert _requests(api, ann) == [bob["id"]]
    assert not _sees(api, bob, party)
    asked = eventually(lambda: _notifications(api, ann, "follow_requested"))
    assert [item["data"] for item in asked] == [{"follower_id": bob["id"]}]

    assert api.post(f"/users/me/follow-requests/{bob['id']}/approve", user=ann).status_code == 204
    assert _status(api, bob, ann) == "following" and _requests(api, ann) == []
    # The events service learns of the follow from user_followed.
    eventually(lambda: _sees(api, bob, party))
    approved = eventually(lambda: _notifications(api, bob, "follow_request_approved"))
    assert [item["data"] for item in approved] == [{"user_id": ann["id"]}]
    # Ann approved: she is not also told she has a new follower.
    assert _notifications(api, ann, "new_follower") == []
    # Following an approved account again changes nothing.
    assert api.post(f"/users/{ann['id']}/follow", user=bob).status_code == 204
    assert api.post(f"/users/me/follow-requests/{bob['id']}/approve", user=ann).status_code == 404


def test_a_declined_request_shows_nothing_and_is_gone(api):
    ann, bob = api.register(), api.register()
    _private(api, ann)
    party = _event(api, ann)
    assert api.post(f"/users/{ann['id']}/follow", user=bob).status_code == 202
    assert api.post(f"/users/me/follow-requests/{bob['id']}/decline", user=ann).status_code == 204
    assert _status(api, bob, ann) == "none" and _requests(api, ann) == []
    refused = api.post(f"/users/me/follow-requests/{bob['id']}/approve", user=ann)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "FOLLOW_REQUEST_NOT_FOUND"
    assert api.post(f"/users/me/follow-requests/{bob['id']}/decline", user=ann).status_code == 404
    assert not _sees(api, bob, party)
    assert api.get(f"/users/{ann['id']}/followers", user=ann).json()["items"] == []


def test_a_block_drops_pending_requests_both_ways(api):
    ann, bob = api.register(), api.register()
    _private(api, ann)
    _private(api, bob)
    assert api.post(f"/users/{ann['id']}/follow", user=bob).status_code == 202
    assert api.post(f"/users/{bob['id']}/follow", user=ann).status_code == 202
    assert api.post(f"/users/{bob['id']}/block", user=ann).status_code == 204
    # Neither request survives to be approved into a follow across the block.
    assert _requests(api, ann) == [] and _requests(api, bob) == []
    assert api.post(f"/users/me/follow-requests/{bob['id']}/approve", user=ann).status_code == 404
    assert api.post(f"/users/me/follow-requests/{ann['id']}/approve", user=bob).status_code == 404


def test_unfollowing_takes_the_request_back(api):
    ann, bob = api.register(), api.register()
    _private(api, ann)
    assert api.post(f"/users/{ann['id']}/follow", user=bob).status_code == 202
    assert api.delete(f"/users/{ann['id']}/follow", user=bob).status_code == 204
    assert _status(api, bob, ann) == "none" and _requests(api, ann) == []
    assert api.post(f"/users/me/follow-requests/{bob['id']}/approve", user=ann).status_code == 404


def test_approving_or_declining_what_nobody_asked_changes_nothing(api):
    ann, bob, cat = api.register(), api.register(), api.register()
    _private(api, ann)
    assert api.post(f"/users/{ann['id']}/follow", user=bob).status_code == 202
    for path in (f"/users/me/follow-requests/{uuid.uuid4()}/approve", f"/users/me/follow-requests/{cat['id']}/approve",
                 "/users/me/follow-requests/not-an-id/decline"):
        answer = api.post(path, user=ann)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["error"]["code"] == "FOLLOW_REQUEST_NOT_FOUND"
    # Bob's request is Ann's to answer, not Cat's.
    assert api.post(f"/users/me/follow-requests/{bob['id']}/approve", user=cat).status_code == 404
    assert _requests(api, ann) == [bob["id"]] and _status(api, bob, ann) == "requested"


def test_requests_are_listed_newest_first_in_pages(api):
    ann = api.register()
    _private(api, ann)
    askers = [api.register() for _ in range(3)]
    for asker in askers:
        assert api.post(f"/users/{ann['id']}/follow", user=asker).status_code == 202
    first = api.get("/users/me/follow-requests", user=ann, params={"limit": 2}).json()
    second = api.get("/users/me/follow-requests", user=ann, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    listed = [user["id"] for user in first["items"] + second["items"]]
    assert listed == [asker["id"] for asker in reversed(askers)] and second["next_cursor"] is None
    assert all(user["follow_status"] == "none" for user in first["items"])


def test_turning_public_approves_every_pending_request(api):
    ann, bob, cat = api.register(), api.register(), api.register()
    _private(api, ann)
    party = _event(api, ann)
    for asker in (bob, cat):
        assert api.post(f"/users/{ann['id']}/follow", user=asker).status_code == 202
    answer = api.patch("/users/me", user=ann, json={"is_private": False})
    assert answer.status_code == 200 and answer.json()["is_private"] is False
    assert answer.json()["followers_count"] == 2 and _requests(api, ann) == []
    assert _status(api, bob, ann) == _status(api, cat, ann) == "following"
    eventually(lambda: _sees(api, bob, party) and _sees(api, cat, party))
    # Public again: following is immediate.
    dan = api.register()
    assert api.post(f"/users/{ann['id']}/follow", user=dan).status_code == 204


def test_requests_made_while_turning_public_are_never_left_pending(api):
    ann = api.register()
    _private(api, ann)
    askers = [api.register() for _ in range(8)]

    def act(index):
        if index == len(askers) // 2:
            return api.patch("/users/me", user=ann, json={"is_private": False}).status_code
        return api.post(f"/users/{ann['id']}/follow", user=askers[index]).status_code

    with ThreadPoolExecutor(len(askers)) as pool:
        answers = list(pool.map(act, range(len(askers))))
    assert set(answers) <= {200, 202, 204}, answers
    # Whoever asked before or during the switch was approved; after it, followed at once.
    assert _requests(api, ann) == []
    followers = {user["id"] for user in api.get(f"/users/{ann['id']}/followers", user=ann).json()["items"]}
    assert followers == {asker["id"] for index, asker in enumerate(askers) if index != len(askers) // 2}


def test_removing_a_follower_hides_followers_only_events_and_withdraws_their_seat(api):
    ann, bob = api.register(), api.register()
    party, picnic = _event(api, ann), _event(api, ann, visibility="public")
    assert api.post(f"/users/{ann['id']}/follow", user=bob).status_code == 204
    eventually(lambda: _sees(api, bob, party))
    for event in (party, picnic):
        assert api.post(f"/events/{event['id']}/participants", user=bob).status_code == 201

    assert api.delete(f"/users/me/followers/{bob['id']}", user=ann).status_code == 204
    assert _status(api, bob, ann) == "none"
    assert api.get(f"/users/{ann['id']}/followers", user=ann).json()["items"] == []
    # Once events hears user_unfollowed, the seat taken as a follower is gone,
    # and with it the event: joining it no longer keeps it visible.
    eventually(lambda: not _sees(api, bob, party))
    seen_by_ann = api.get(f"/events/{party['id']}", user=ann).json()
    assert seen_by_ann["participants_count"] == 0
    assert api.get(f"/events/{party['id']}/participants", user=ann).json()["items"] == []
    assert api.post(f"/events/{party['id']}/participants", user=bob).status_code == 404
    # The public event keeps Bob.
    public = api.get(f"/events/{picnic['id']}", user=bob).json()
    assert public["my_status"] == "joined" and public["participants_count"] == 1
    # Idempotent, and removing yourself is refused without changing anything.
    assert api.delete(f"/users/me/followers/{bob['id']}", user=ann).status_code == 204
    assert api.delete(f"/users/me/followers/{uuid.uuid4()}", user=ann).status_code == 204
    yourself = api.delete(f"/users/me/followers/{ann['id']}", user=ann)
    assert yourself.status_code == 422 and yourself.json()["error"]["code"] == "CANNOT_REMOVE_YOURSELF"


def test_unfollowing_withdraws_the_seat_at_followers_only_events(api):
    ann, bob = api.register(), api.register()
    party = _event(api, ann)
    assert api.post(f"/users/{ann['id']}/follow", user=bob).status_code == 204
    eventually(lambda: _sees(api, bob, party))
    assert api.post(f"/events/{party['id']}/participants", user=bob).status_code == 201
    assert api.delete(f"/users/{ann['id']}/follow", user=bob).status_code == 204
    eventually(lambda: not _sees(api, bob, party))
    calendar = api.get("/calendar", user=bob, params={"from": _soon(0), "to": _soon(10)}).json()
    assert calendar["items"] == []


def test_five_follow_rounds_make_one_new_follower_notification(api, db_engine):
    ann, bob = api.register(), api.register()
    for _ in range(5):
        assert api.post(f"/users/{ann['id']}/follow", user=bob).status_code == 204
        assert api.delete(f"/users/{ann['id']}/follow", user=bob).status_code == 204
    eventually(lambda: _all_handled(db_engine, "user_followed", "notify_user_followed", follower_id=bob["id"]))
    assert [item["data"] for item in _notifications(api, ann)] == [{"follower_id": bob["id"]}]
    # A day later, following again is news again.
    with db_engine.begin() as connection:
        connection.execute(text(
            "UPDATE messages.follow_notices SET notified_at = now() - interval '25 hours'"
            " WHERE follower_id = :bob AND followee_id = :ann"), {"bob": bob["id"], "ann": ann["id"]})
    assert api.post(f"/users/{ann['id']}/follow", user=bob).status_code == 204
    eventually(lambda: len(_notifications(api, ann, "new_follower")) == 2)


def test_follow_notifications_are_claimed_once_under_concurrent_delivery(api, config, db_engine):
    """Ten distinct user_followed events of one pair, delivered at once: each
    is handled, and only the first of the day notifies."""
    ann = api.register()
    follower = str(uuid.uuid4())
    dispatch = event_dispatcher(config)
    envelopes = [str(uuid.uuid4()) for _ in range(10)]

    def deliver(envelope):
        dispatch("auth", "user_followed", {"event_id": envelope, "follower_id": follower, "followee_id": ann["id"]})

    with ThreadPoolExecutor(5) as pool:
        list(pool.map(deliver, envelopes))

    def handled():
        with db_engine.connect() as connection:
            return connection.scalar(text(
                "SELECT count(*) FROM messages.processed_events WHERE handler = 'notify_user_followed'"
                " AND event_id = ANY(CAST(:ids AS uuid[]))"), {"ids": envelopes}) == len(envelopes)

    eventually(handled, timeout=15)
    assert [item["data"] for item in _notifications(api, ann)] == [{"follower_id": follower}]


# Group invites -----------------------------------------------------------------------

def _group(api, creator, *members, title=None):
    return api.post("/messages/conversations", user=creator,
                    json={"member_ids": [member["id"] for member in members], "title": title})


def _settings(api, user, value):
    answer = api.patch("/users/me", user=user, json={"group_invites": value})
    assert answer.status_code == 200 and answer.json()["group_invites"] == value, answer.text


def test_group_invites_nobody_refuses_every_group_but_not_a_one_to_one(api, db_engine):
    ann, bob, cat = api.register(), api.register(), api.register()
    assert api.get("/auth/me", user=cat).json()["group_invites"] == "everyone"
    _settings(api, cat, "nobody")
    refused = _group(api, ann, bob, cat)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "GROUP_INVITES_REFUSED"
    assert refused.json()["error"]["details"] == {"member_ids": [cat["id"]]}
    # A titled conversation with one person is a group too.
    assert _group(api, ann, cat, title="Plans").status_code == 403
    with db_engine.connect() as connection:
        assert not connection.scalar(text("SELECT count(*) FROM messages.members WHERE user_id = :id"),
                                     {"id": ann["id"]})
    assert _group(api, ann, bob).status_code == 201
    assert _group(api, ann, cat).status_code == 201  # a 1:1


def test_group_invites_following_lets_in_only_people_i_follow(api):
    ann, bob, cat = api.register(), api.register(), api.register()
    _settings(api, cat, "following")
    assert _group(api, ann, bob, cat).status_code == 403
    assert api.post(f"/users/{ann['id']}/follow", user=cat).status_code == 204
    created = _group(api, ann, bob, cat)
    assert created.status_code == 201, created.text
    assert {member["id"] for member in created.json()["members"]} == {ann["id"], bob["id"], cat["id"]}
    # Ann following Cat is not Cat following Ann.
    assert api.post(f"/users/{cat['id']}/follow", user=bob).status_code == 204
    assert _group(api, bob, ann, cat).status_code == 403
    _settings(api, cat, "everyone")
    assert _group(api, bob, ann, cat).status_code == 201


def test_bad_privacy_settings_change_nothing(api):
    ann = api.register()
    for body in ({"group_invites": "friends"}, {"group_invites": None}, {"is_private": "yes"},
                 {"is_private": 1}, {"is_private": True, "group_invites": "all"}):
        answer = api.patch("/users/me", user=ann, json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert set(answer.json()["error"]["details"]) <= {"group_invites", "is_private"}
    me = api.get("/auth/me", user=ann).json()
    assert me["is_private"] is False and me["group_invites"] == "everyone"
