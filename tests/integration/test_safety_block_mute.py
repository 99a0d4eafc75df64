"""Blocks and mutes, against the whole running system.

Auth owns them; events and messages enforce them from replicas kept by auth's
events, so what those services hide appears once the event has arrived: the
tests wait for it (eventually), as for the follow replica.
"""
import uuid

import pytest
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import text

from tests.conftest import eventually

pytestmark = pytest.mark.integration

WINDOW = {"from": "2027-05-01T00:00:00Z", "to": "2027-07-01T00:00:00Z"}


def new_event(api, user, **fields):
    body = {"title": "Picnic", "starts_at": "2027-06-01T12:00:00Z", "visibility": "public", **fields}
    response = api.post("/events", user=user, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def new_post(api, user, **fields):
    response = api.post("/posts", user=user, json={"body": "hello", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def ids(api, path, user, **params):
    response = api.get(path, user=user, params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def participant_ids(api, event_id, user):
    response = api.get(f"/events/{event_id}/participants", user=user)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def follow(api, user, other):
    return api.post(f"/users/{other['id']}/follow", user=user)


def replica_row(db_engine, schema, table, user, target):
    """(active, version) of the replica's row for the pair, or None."""
    with db_engine.connect() as connection:
        row = connection.execute(text(
            f"SELECT active, version FROM {schema}.{table} WHERE user_id = :user AND target_id = :target"
        ), {"user": user["id"], "target": target["id"]}).first()
    return tuple(row) if row else None


def replicated(db_engine, table, user, target, active):
    """Wait until both replicas (events and messages) say whether user blocks/mutes target."""
    for schema in ("events", "messages"):
        eventually(lambda schema=schema: (replica_row(db_engine, schema, table, user, target) or (None,))[0] is active)


def message_notifications(api, user):
    response = api.get("/notifications", user=user)
    assert response.status_code == 200, response.text
    return [item for item in response.json()["items"] if item["type"] == "message"]


def error_code(response):
    return response.json()["error"]["code"]


@pytest.mark.parametrize("blocker_role", ["organizer", "follower"])
def test_a_block_hides_a_followers_only_event_both_ways(api, blocker_role):
    organizer, follower, carl = api.register(), api.register(), api.register()
    assert follow(api, follower, organizer).status_code == 204
    assert follow(api, organizer, follower).status_code == 204
    event = new_event(api, organizer, visibility="followers")
    post = new_post(api, organizer, event_id=event["id"])
    loose_post = new_post(api, organizer, body="no event")
    followers_own = new_event(api, follower, title="Barbecue", visibility="followers")
    assert api.post(f"/events/{event['id']}/participants", user=follower).status_code == 201
    assert api.get(f"/events/{event['id']}", user=follower).status_code == 200
    assert event["id"] in ids(api, "/feed", follower)
    assert follower["id"] in participant_ids(api, event["id"], organizer)

    blocker, blocked = (organizer, follower) if blocker_role == "organizer" else (follower, organizer)
    assert api.post(f"/users/{blocked['id']}/block", user=blocker).status_code == 204

    # The follows both ways are gone, in auth at once.
    for user, other in ((organizer, follower), (follower, organizer)):
        seen = api.get(f"/users/{other['id']}", user=carl).json()
        assert seen["followers_count"] == 0 and seen["following_count"] == 0
        assert ids(api, f"/users/{user['id']}/following", carl) == []
    # Neither can follow the other again.
    for user, other in ((blocker, blocked), (blocked, blocker)):
        refused = follow(api, user, other)
        assert refused.status_code == 403 and error_code(refused) == "BLOCKED"

    # The follower no longer sees the organizer's event, its posts, or the organizer's posts.
    eventually(lambda: api.get(f"/events/{event['id']}", user=follower).status_code == 404)
    assert api.get(f"/posts/{post['id']}", user=follower).status_code == 404
    assert api.get(f"/posts/{loose_post['id']}", user=follower).status_code == 404
    assert ids(api, "/posts", follower, author_id=organizer["id"]) == []
    assert api.get("/posts", user=follower, params={"event_id": event["id"]}).status_code == 404
    feed = ids(api, "/feed", follower)
    assert event["id"] not in feed and post["id"] not in feed and loose_post["id"] not in feed
    assert event["id"] not in ids(api, "/events", follower, **WINDOW)
    assert event["id"] not in ids(api, "/events", follower, organizer_id=organizer["id"], **WINDOW)
    assert event["id"] not in ids(api, "/calendar", follower, **WINDOW)
    assert event["id"] not in api.get("/calendar.ics", user=follower).text
    assert api.post(f"/events/{event['id']}/participants", user=follower).status_code == 404
    # ... and the organizer no longer finds the follower among the participants, nor their event.
    assert follower["id"] not in participant_ids(api, event["id"], organizer)
    assert api.get(f"/events/{followers_own['id']}", user=organizer).status_code == 404
    assert followers_own["id"] not in ids(api, "/feed", organizer)

    # Profiles, search and follow lists: neither exists to the other.
    for user, other in ((blocker, blocked), (blocked, blocker)):
        assert api.get(f"/users/{other['id']}", user=user).status_code == 404
        assert ids(api, "/users", user, q=other["user"]["username"]) == []
        assert api.get(f"/users/{other['id']}/followers", user=user).status_code == 404
        assert other["id"] in ids(api, "/users", carl, q=other["user"]["username"])
    # A third user's follower list shows each of them, except to the other.
    assert follow(api, organizer, carl).status_code == 204 and follow(api, follower, carl).status_code == 204
    assert sorted(ids(api, f"/users/{carl['id']}/followers", carl)) == sorted([organizer["id"], follower["id"]])
    assert ids(api, f"/users/{carl['id']}/followers", organizer) == [organizer["id"]]
    assert ids(api, f"/users/{carl['id']}/followers", follower) == [follower["id"]]


def test_unblocking_restores_what_is_public_but_not_the_follows(api):
    ann, bob = api.register(), api.register()
    assert follow(api, bob, ann).status_code == 204
    public = new_event(api, ann)
    followers_only = new_event(api, ann, visibility="followers")
    assert api.post(f"/users/{bob['id']}/block", user=ann).status_code == 204
    eventually(lambda: api.get(f"/events/{public['id']}", user=bob).status_code == 404)

    assert api.delete(f"/users/{bob['id']}/block", user=ann).status_code == 204
    assert api.delete(f"/users/{bob['id']}/block", user=ann).status_code == 204  # idempotent
    eventually(lambda: api.get(f"/events/{public['id']}", user=bob).status_code == 200)
    profile = api.get(f"/users/{ann['id']}", user=bob)
    assert profile.status_code == 200 and profile.json()["is_following"] is False
    assert profile.json()["followers_count"] == 0
    # Not following any more, Bob does not see what is for followers only (once
    # the user_unfollowed the block recorded has reached the follow replica)...
    eventually(lambda: api.get(f"/events/{followers_only['id']}", user=bob).status_code == 404)
    # ...until he follows again, which is allowed again.
    assert follow(api, bob, ann).status_code == 204
    eventually(lambda: api.get(f"/events/{followers_only['id']}", user=bob).status_code == 200)
    assert ids(api, "/users/me/blocks", ann) == []


def test_block_and_mute_refuse_yourself_unknown_users_and_are_idempotent(api):
    ann, bob, carl = api.register(), api.register(), api.register()
    for kind, code in (("block", "CANNOT_BLOCK_YOURSELF"), ("mute", "CANNOT_MUTE_YOURSELF")):
        yourself = api.post(f"/users/{ann['id']}/{kind}", user=ann)
        assert yourself.status_code == 422 and error_code(yourself) == code
        unknown = api.post(f"/users/{uuid.uuid4()}/{kind}", user=ann)
        assert unknown.status_code == 404 and error_code(unknown) == "USER_NOT_FOUND"
        assert api.post(f"/users/not-an-id/{kind}", user=ann).status_code == 404
        assert api.post(f"/users/{bob['id']}/{kind}").status_code == 401
        assert api.delete(f"/users/{uuid.uuid4()}/{kind}", user=ann).status_code == 204
        for _ in range(2):
            assert api.post(f"/users/{bob['id']}/{kind}", user=ann).status_code == 204
        assert api.post(f"/users/{carl['id']}/{kind}", user=ann).status_code == 204
    assert ids(api, "/users/me/blocks", ann) == [carl["id"], bob["id"]]
    first = api.get("/users/me/mutes", user=ann, params={"limit": 1}).json()
    second = api.get("/users/me/mutes", user=ann, params={"limit": 1, "cursor": first["next_cursor"]}).json()
    assert [item["id"] for item in first["items"] + second["items"]] == [carl["id"], bob["id"]]
    assert second["next_cursor"] is None
    # Nobody else's lists change, and the blocked are not told.
    assert ids(api, "/users/me/blocks", bob) == [] and ids(api, "/users/me/mutes", bob) == []
    for kind in ("block", "mute"):
        for _ in range(2):
            assert api.delete(f"/users/{bob['id']}/{kind}", user=ann).status_code == 204
    assert ids(api, "/users/me/blocks", ann) == [carl["id"]]
    assert ids(api, "/users/me/mutes", ann) == [carl["id"]]
    assert api.get("/users/me/blocks", user=ann, params={"limit": 0}).status_code == 422


def test_a_block_refuses_a_one_to_one_but_not_a_group(api, config, db_engine):
    ann, bob, carl = api.register(), api.register(), api.register()
    direct = api.post("/messages/conversations", user=ann, json={"member_ids": [bob["id"]]})
    assert direct.status_code == 201, direct.text
    assert api.post(f"/users/{bob['id']}/block", user=ann).status_code == 204
    replicated(db_engine, "blocks", ann, bob, True)

    for user, other in ((ann, bob), (bob, ann)):
        opened = api.post("/messages/conversations", user=user, json={"member_ids": [other["id"]]})
        assert opened.status_code == 403 and error_code(opened) == "BLOCKED"
        sent = api.post("/messages", user=user, json={"conversation_id": direct.json()["id"], "body": "hi"})
        assert sent.status_code == 403 and error_code(sent) == "BLOCKED"
    # A group with both goes on: both are members, and Bob can write into it...
    group = api.post("/messages/conversations", user=carl,
                     json={"member_ids": [ann["id"], bob["id"]], "title": "Picnic"})
    assert group.status_code == 201, group.text
    sent = api.post("/messages", user=bob, json={"conversation_id": group.json()["id"], "body": "hello all"})
    assert sent.status_code == 201, sent.text
    # ...but Ann, who blocks him, is not notified of it; Carl is.
    eventually(lambda: message_notifications(api, carl))
    assert message_notifications(api, ann) == []
    # Ann's own messages still notify Bob: he blocked nobody.
    assert api.post("/messages", user=ann, json={"conversation_id": group.json()["id"], "body": "hi"}).status_code \
        == 201
    eventually(lambda: message_notifications(api, bob))

    # Nothing else Bob does notifies Ann either: a follow that slipped past auth
    # (handled after the block reached messages) makes no new_follower.
    envelope_id = str(uuid.uuid4())
    event_dispatcher(config)("auth", "user_followed", {
        "domain_event_id": envelope_id, "follower_id": bob["id"], "followee_id": ann["id"]})

    def followed_handled():
        with db_engine.connect() as connection:
            return connection.scalar(text(
                "SELECT count(*) FROM messages.processed_events WHERE event_id = :id"), {"id": envelope_id})

    eventually(followed_handled)
    assert [item for item in api.get("/notifications", user=ann).json()["items"]
            if item["type"] == "new_follower"] == []

    assert api.delete(f"/users/{bob['id']}/block", user=ann).status_code == 204
    replicated(db_engine, "blocks", ann, bob, False)
    again = api.post("/messages", user=bob, json={"conversation_id": direct.json()["id"], "body": "sorry"})
    assert again.status_code == 201, again.text


def test_a_mute_empties_my_feed_of_them_and_silences_their_messages(api, db_engine):
    ann, mia, carl = api.register(), api.register(), api.register()
    assert follow(api, ann, mia).status_code == 204
    event = new_event(api, mia, visibility="followers")
    post = new_post(api, mia)
    eventually(lambda: {event["id"], post["id"]} <= set(ids(api, "/feed", ann)))

    assert api.post(f"/users/{mia['id']}/mute", user=ann).status_code == 204
    eventually(lambda: not {event["id"], post["id"]} & set(ids(api, "/feed", ann)))
    # Only the feed: her profile, event and post are still there for Ann, and Ann still follows her.
    profile = api.get(f"/users/{mia['id']}", user=ann)
    assert profile.status_code == 200 and profile.json()["is_following"] is True
    assert api.get(f"/events/{event['id']}", user=ann).status_code == 200
    assert api.get(f"/posts/{post['id']}", user=ann).status_code == 200
    assert post["id"] in ids(api, "/posts", ann, author_id=mia["id"])
    assert event["id"] in ids(api, "/events", ann, **WINDOW)
    # Mia is not told, and nothing changes for her.
    assert ids(api, "/users/me/mutes", mia) == []
    assert api.get(f"/users/{ann['id']}", user=mia).status_code == 200

    replicated(db_engine, "mutes", ann, mia, True)
    group = api.post("/messages/conversations", user=carl, json={"member_ids": [ann["id"], mia["id"]], "title": "x"})
    assert group.status_code == 201, group.text
    assert api.post("/messages", user=mia, json={"conversation_id": group.json()["id"], "body": "hey"}).status_code \
        == 201
    eventually(lambda: message_notifications(api, carl))
    assert message_notifications(api, ann) == []

    assert api.delete(f"/users/{mia['id']}/mute", user=ann).status_code == 204
    eventually(lambda: {event["id"], post["id"]} <= set(ids(api, "/feed", ann)))


def test_the_replicas_keep_the_newest_change_whatever_order_it_arrives_in(api, config, db_engine):
    ann, bob = api.register(), api.register()
    event = new_event(api, bob)
    dispatch = event_dispatcher(config)

    def change(kind, version):
        envelope_id = str(uuid.uuid4())
        dispatch("auth", kind, {"domain_event_id": envelope_id, "user_id": ann["id"], "target_id": bob["id"],
                                "version": version})
        return envelope_id

    def handled(envelope_id):
        with db_engine.connect() as connection:
            return connection.scalar(text(
                "SELECT count(*) FROM events.processed_events WHERE event_id = :id"), {"id": envelope_id}) == 1

    # The unblock (version 10**12 + 2) overtakes the block it undoes (+ 1).
    late = [change("user_unblocked", 10**12 + 2), change("user_blocked", 10**12 + 1)]
    for envelope_id in late:
        eventually(lambda envelope_id=envelope_id: handled(envelope_id))
    assert replica_row(db_engine, "events", "blocks", ann, bob) == (False, 10**12 + 2)
    assert api.get(f"/events/{event['id']}", user=ann).status_code == 200
    # A newer block counts, and an older unblock arriving after it does not undo it.
    newer_block = change("user_blocked", 10**12 + 3)
    eventually(lambda: handled(newer_block))
    older_unblock = change("user_unblocked", 10**12 + 2)
    eventually(lambda: handled(older_unblock))
    assert replica_row(db_engine, "events", "blocks", ann, bob) == (True, 10**12 + 3)
    assert api.get(f"/events/{event['id']}", user=ann).status_code == 404


def test_a_deleted_account_takes_its_blocks_and_mutes_with_it(api, config, db_engine):
    ann, bob, carl = api.register(), api.register(), api.register()
    assert api.post(f"/users/{bob['id']}/block", user=ann).status_code == 204
    assert api.post(f"/users/{ann['id']}/mute", user=carl).status_code == 204
    replicated(db_engine, "blocks", ann, bob, True)
    replicated(db_engine, "mutes", carl, ann, True)
    with ClusterRpcProxy(config, timeout=15) as rpc:
        assert rpc.auth.deactivate_user(ann["id"]) is True
    assert ids(api, "/users/me/mutes", carl) == []

    def rows_naming_ann():
        with db_engine.connect() as connection:
            return sum(connection.scalar(text(
                f"SELECT count(*) FROM {schema}.{table} WHERE :id IN ({whose}, {whom})"), {"id": ann["id"]})
                for schema, table, whose, whom in (
                    ("auth", "blocks", "blocker_id", "blocked_id"), ("auth", "mutes", "muter_id", "muted_id"),
                    ("events", "blocks", "user_id", "target_id"), ("events", "mutes", "user_id", "target_id"),
                    ("messages", "blocks", "user_id", "target_id"), ("messages", "mutes", "user_id", "target_id")))

    eventually(lambda: rows_naming_ann() == 0)
