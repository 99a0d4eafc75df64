"""Reports and moderation against the whole running system: users report over
HTTP, operators work the queue over real RPC (as from `nameko shell`), and
what they remove disappears from feeds, lists, conversations and open apps."""
import time
import uuid

import pytest
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import eventually
from tests.fixtures.events.media_samples import png_bytes
from tests.integration.test_realtime_sockets import Socket

pytestmark = pytest.mark.integration


@pytest.fixture
def rpc(config):
    with ClusterRpcProxy(config, timeout=15) as cluster:
        yield cluster


@pytest.fixture
def sockets(system):
    opened = []

    def open_socket(user):
        socket = Socket(system.base_url, user["access_token"])
        opened.append(socket)
        return socket

    yield open_socket
    for socket in opened:
        socket.close()


def report(api, user, target_type, target_id, reason="spam", **extra):
    return api.post("/reports", user=user, json={"target_type": target_type, "target_id": target_id,
                                                 "reason": reason, **extra})


def reported(api, user, target_type, target_id, **extra):
    response = report(api, user, target_type, target_id, **extra)
    assert response.status_code == 201, response.text
    return response.json()


def new_event(api, user, **fields):
    body = {"title": "Picnic", "starts_at": "2027-06-01T12:00:00Z", "visibility": "public", **fields}
    response = api.post("/events", user=user, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def new_post(api, user, body="Look at this", **fields):
    response = api.post("/posts", user=user, json={"body": body, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def upload(api, user):
    response = api.post("/media", user=user, files={"file": ("p.png", png_bytes(), "application/octet-stream")})
    assert response.status_code == 201, response.text
    return response.json()


def conversation_with_message(api, sender, *others, body="buy cheap pills"):
    wanted = {"member_ids": [other["id"] for other in others]}
    if len(others) > 1:
        wanted["title"] = "chat"
    created = api.post("/messages/conversations", user=sender, json=wanted)
    assert created.status_code in (200, 201), created.text
    conversation = created.json()
    sent = api.post("/messages", user=sender, json={"conversation_id": conversation["id"], "body": body})
    assert sent.status_code == 201, sent.text
    return conversation, sent.json()


def open_ids(rpc):
    return {found["id"] for found in rpc.auth.open_reports(200)}


def feed_ids(api, user):
    return {item["id"] for item in api.get("/feed", user=user).json()["items"]}


# Reporting -------------------------------------------------------------------------------

def test_each_kind_of_target_is_reported_with_a_snapshot_and_a_repeat_answers_the_same_report(api, rpc):
    ann, bob = api.register(), api.register()
    picture = upload(api, ann)
    post = new_post(api, ann, body="a post to report", media_ids=[picture["id"]])
    event = new_event(api, ann, description="an event to report")
    _, message = conversation_with_message(api, ann, bob)

    made = {target_type: reported(api, bob, target_type, target_id, reason="harassment", details="Not nice.")
            for target_type, target_id in [("user", ann["id"]), ("post", post["id"]), ("event", event["id"]),
                                           ("media", picture["id"]), ("message", message["id"])]}
    for target_type, answer in made.items():
        assert answer["status"] == "open" and answer["target_type"] == target_type
        assert answer["reason"] == "harassment" and answer["created_at"].endswith("Z")
        assert set(answer) == {"id", "status", "target_type", "target_id", "reason", "created_at"}

    again = report(api, bob, "post", post["id"], reason="spam")
    assert again.status_code == 200 and again.json() == made["post"]

    snapshots = {target_type: rpc.auth.get_report(answer["id"]) for target_type, answer in made.items()}
    assert all(found["target_owner_id"] == ann["id"] and found["reporter_id"] == bob["id"]
               and found["details"] == "Not nice." for found in snapshots.values())
    assert snapshots["user"]["content"]["username"] == ann["user"]["username"]
    assert snapshots["post"]["content"]["text"] == "a post to report"
    assert snapshots["post"]["content"]["media_urls"] == [picture["url"]]
    assert snapshots["event"]["content"]["title"] == "Picnic"
    assert snapshots["event"]["content"]["text"] == "an event to report"
    assert snapshots["media"]["content"]["media_urls"] == [picture["url"]]
    assert snapshots["message"]["content"]["text"] == "buy cheap pills"


def test_a_user_is_reported_across_a_block_either_way(api):
    """Block and report is one gesture in the apps: whichever comes first,
    the abuser stays reportable (their content follows what the reporter sees)."""
    ann, bob, cat = api.register(), api.register(), api.register()
    assert api.post(f"/users/{bob['user']['id']}/block", user=ann).status_code == 204
    assert reported(api, ann, "user", bob["user"]["id"])["status"] == "open"
    assert api.post(f"/users/{ann['user']['id']}/block", user=cat).status_code == 204
    assert reported(api, ann, "user", cat["user"]["id"])["status"] == "open"


def test_concurrent_repeats_make_one_report(api, rpc):
    import eventlet

    ann, bob = api.register(), api.register()
    pool = eventlet.GreenPool(8)
    answers = list(pool.imap(lambda _: report(api, bob, "user", ann["id"]), range(8)))
    assert sorted(answer.status_code for answer in answers) == [200] * 7 + [201]
    assert len({answer.json()["id"] for answer in answers}) == 1


def test_what_the_reporter_cannot_see_is_not_found_and_records_nothing(api, rpc):
    ann, bob, carl = api.register(), api.register(), api.register()
    private = new_event(api, ann, visibility="private")
    _, message = conversation_with_message(api, ann, carl)
    before = open_ids(rpc)

    for target_type, target_id in [("event", private["id"]), ("message", message["id"]),
                                   ("user", str(uuid.uuid4())), ("post", str(uuid.uuid4())),
                                   ("media", str(uuid.uuid4()))]:
        answer = report(api, bob, target_type, target_id)
        assert answer.status_code == 404, (target_type, answer.text)
        assert answer.json()["error"]["code"] == "REPORT_TARGET_NOT_FOUND"
    assert open_ids(rpc) == before
    # Carl, a member, may report it.
    assert report(api, carl, "message", message["id"]).status_code == 201


def test_bad_reports_are_refused_and_change_nothing(api, rpc):
    ann = api.register()
    own_post = new_post(api, ann)
    before = open_ids(rpc)

    refused = [
        report(api, ann, "user", ann["id"]),
        report(api, ann, "post", own_post["id"]),
        report(api, ann, "post", own_post["id"], reason="boring"),
        report(api, ann, "comment", own_post["id"]),
        report(api, ann, "post", "not-a-uuid"),
        report(api, ann, "post", own_post["id"], details="x" * 1001),
        api.post("/reports", user=ann, json={"target_type": "post"}),
    ]
    assert [answer.status_code for answer in refused] == [422] * len(refused)
    assert refused[0].json()["error"]["code"] == "CANNOT_REPORT_YOURSELF"
    assert refused[1].json()["error"]["code"] == "CANNOT_REPORT_YOURSELF"
    assert "reason" in refused[2].json()["error"]["details"]
    assert "target_type" in refused[3].json()["error"]["details"]
    assert "details" in refused[5].json()["error"]["details"]
    assert api.post("/reports", json={"target_type": "user", "target_id": ann["id"],
                                      "reason": "spam"}).status_code == 401
    assert open_ids(rpc) == before


def test_reports_are_rate_limited_per_user(api):
    ann, bob = api.register(), api.register()
    answers = [report(api, bob, "user", ann["id"]).status_code for _ in range(21)]
    assert answers == [201] + [200] * 19 + [429]
    limited = report(api, bob, "user", ann["id"])
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    # Somebody else is not slowed by bob.
    assert report(api, api.register(), "user", ann["id"]).status_code == 201


# Working the queue ----------------------------------------------------------------------------

def test_the_queue_lists_oldest_first_and_a_dismissal_closes_every_report_on_the_target(api, rpc):
    ann, bob, carl = api.register(), api.register(), api.register()
    post, other = new_post(api, ann, body="first"), new_post(api, ann, body="second")
    first = reported(api, bob, "post", post["id"])
    second = reported(api, carl, "post", post["id"], reason="hate")
    third = reported(api, bob, "post", other["id"])

    queue = rpc.auth.open_reports(200)
    mine = [found["id"] for found in queue if found["id"] in {first["id"], second["id"], third["id"]}]
    assert mine == [first["id"], second["id"], third["id"]]
    assert [found["created_at"] for found in queue] == sorted(found["created_at"] for found in queue)
    assert next(found for found in queue if found["id"] == first["id"])["content"]["text"] == "first"

    with pytest.raises(RemoteError) as unnamed:
        rpc.auth.dismiss_report(first["id"])
    assert unnamed.value.exc_type == "OperatorNameRequired"

    outcome = rpc.auth.dismiss_report(first["id"], by="alice")
    assert outcome["action"] == "dismiss" and outcome["operator"] == "alice"
    assert sorted(outcome["closed_report_ids"]) == sorted([first["id"], second["id"]])
    assert rpc.auth.get_report(second["id"])["status"] == "dismissed"
    assert rpc.auth.get_report(second["id"])["resolved_at"] is not None
    assert rpc.auth.get_report(third["id"])["status"] == "open"
    [logged] = rpc.auth.moderation_log(second["id"])
    assert logged["action"] == "dismiss" and logged["operator"] == "alice" and logged["created_at"]

    with pytest.raises(RemoteError) as closed:
        rpc.auth.remove_content(first["id"], by="bob the operator")
    assert closed.value.exc_type == "ReportClosed"
    with pytest.raises(RemoteError) as unknown:
        rpc.auth.dismiss_report(str(uuid.uuid4()), by="alice")
    assert unknown.value.exc_type == "ReportNotFound"
    # Nothing was removed by the dismissal; bob's repeat finds his closed report,
    # and someone new to it opens a report of their own.
    assert api.get("/posts/" + post["id"], user=bob).status_code == 200
    repeat = report(api, bob, "post", post["id"])
    assert repeat.status_code == 200 and repeat.json()["status"] == "dismissed"
    assert reported(api, api.register(), "post", post["id"])["id"] in open_ids(rpc)


def test_a_removed_post_leaves_every_feed_and_open_apps_are_told(api, rpc, sockets):
    ann, bob, carl = api.register(), api.register(), api.register()
    assert api.post("/users/{}/follow".format(ann["id"]), user=bob).status_code == 204
    picture = upload(api, ann)
    post = new_post(api, ann, body="offensive", media_ids=[picture["id"]])
    kept = new_post(api, ann, body="harmless")
    eventually(lambda: post["id"] in feed_ids(api, bob))
    socket = sockets(bob)
    found = reported(api, carl, "post", post["id"], reason="hate")

    outcome = rpc.auth.remove_content(found["id"], by="alice")
    assert outcome["action"] == "remove" and outcome["closed_report_ids"] == [found["id"]]
    assert rpc.auth.get_report(found["id"])["status"] == "actioned"

    eventually(lambda: api.get("/posts/" + post["id"], user=bob).status_code == 404)
    assert post["id"] not in feed_ids(api, bob) and kept["id"] in feed_ids(api, bob)
    listed = api.get("/posts", user=bob, params={"author_id": ann["id"]}).json()["items"]
    assert [item["id"] for item in listed] == [kept["id"]]
    assert api.get(picture["url"]).status_code == 404
    eventually(lambda: socket.of("content:removed"))
    [pushed] = socket.of("content:removed")
    assert pushed["target_type"] == "post" and pushed["target_id"] == post["id"] and pushed["event_id"]
    assert [entry["action"] for entry in rpc.auth.moderation_log(found["id"])] == ["remove"]


def test_a_removed_event_is_cancelled_and_hidden_from_everyone(api, rpc):
    ann, bob, carl = api.register(), api.register(), api.register()
    event = new_event(api, ann)
    assert api.post("/events/{}/participants".format(event["id"]), user=bob).status_code == 201
    found = reported(api, carl, "event", event["id"], reason="illegal")
    window = {"from": "2027-05-01T00:00:00Z", "to": "2027-07-01T00:00:00Z"}
    assert event["id"] in [item["id"] for item in api.get("/calendar", user=bob, params=window).json()["items"]]

    rpc.auth.remove_content(found["id"], by="alice")
    for viewer in (ann, bob, carl):
        eventually(lambda viewer=viewer: api.get("/events/" + event["id"], user=viewer).status_code == 404)
    assert event["id"] not in feed_ids(api, ann)
    for path, viewer in (("/calendar", bob), ("/calendar", ann), ("/events", carl)):
        listed = api.get(path, user=viewer, params=window).json()["items"]
        assert event["id"] not in [item["id"] for item in listed], path
    assert event["id"] not in api.get("/calendar.ics", user=bob).text
    assert api.get("/events/{}/participants".format(event["id"]), user=bob).status_code == 404


def test_a_removed_media_item_is_gone_from_posts_and_avatars(api, rpc, sockets):
    ann, bob = api.register(), api.register()
    picture, other = upload(api, ann), upload(api, ann)
    assert api.patch("/users/me", user=ann, json={"avatar_media_id": picture["id"]}).status_code == 200
    post = new_post(api, ann, media_ids=[picture["id"], other["id"]])
    socket = sockets(bob)
    found = reported(api, bob, "media", picture["id"], reason="sexual")

    rpc.auth.remove_content(found["id"], by="alice")
    assert api.get("/users/" + ann["id"], user=bob).json()["avatar_url"] is None
    eventually(lambda: api.get(picture["url"]).status_code == 404)
    shown = api.get("/posts/" + post["id"], user=bob).json()
    assert [item["id"] for item in shown["media"]] == [other["id"]]
    assert api.get(other["url"]).status_code == 200
    eventually(lambda: socket.of("content:removed"))
    assert socket.of("content:removed")[0]["target_type"] == "media"
    assert socket.of("content:removed")[0]["target_id"] == picture["id"]


def test_a_removed_message_becomes_a_placeholder_for_every_member(api, rpc, sockets):
    ann, bob = api.register(), api.register()
    conversation, message = conversation_with_message(api, ann, bob)
    socket = sockets(bob)
    found = reported(api, bob, "message", message["id"], reason="spam")

    with pytest.raises(RemoteError) as not_content:
        rpc.auth.remove_content(reported(api, bob, "user", ann["id"])["id"], by="alice")
    assert not_content.value.exc_type == "NotRemovable"
    rpc.auth.remove_content(found["id"], by="alice")

    def shown():
        items = api.get("/messages/conversations/{}/messages".format(conversation["id"]), user=ann).json()["items"]
        return items[0] if items[0]["deleted"] else None

    placeholder = eventually(shown)
    assert placeholder["id"] == message["id"] and placeholder["seq"] == message["seq"]
    assert placeholder["body"] is None and placeholder["sender_id"] == ann["id"]
    listed = api.get("/messages/conversations", user=bob).json()["items"]
    assert next(item for item in listed if item["id"] == conversation["id"])["last_message"]["deleted"] is True
    eventually(lambda: socket.of("message:deleted") and socket.of("content:removed"))
    assert socket.of("message:deleted")[0]["message_id"] == message["id"]
    assert socket.of("message:deleted")[0]["conversation_id"] == conversation["id"]
    assert socket.of("content:removed")[0]["target_type"] == "message"
    assert socket.of("content:removed")[0]["event_id"] != socket.of("message:deleted")[0]["event_id"]
    assert api.post("/messages/{}/reactions".format(message["id"]), user=bob,
                    json={"emoji": "👍"}).status_code == 404


def test_suspending_an_account_signs_it_out_and_closes_the_reports_on_it(api, rpc):
    ann, bob, carl = api.register(), api.register(), api.register()
    post = new_post(api, ann)
    on_post = reported(api, bob, "post", post["id"])
    on_account = reported(api, carl, "user", ann["id"])

    outcome = rpc.auth.suspend_account(on_post["id"], by="alice")
    assert outcome["action"] == "suspend"
    assert sorted(outcome["closed_report_ids"]) == sorted([on_post["id"], on_account["id"]])
    login = api.post("/auth/login", json={"login": ann["user"]["username"], "password": ann["password"]})
    assert login.status_code == 401
    assert api.post("/auth/refresh", json={"refresh_token": ann["refresh_token"]}).status_code == 401
    assert api.get("/users/" + ann["id"], user=bob).status_code == 404
    eventually(lambda: api.get("/posts/" + post["id"], user=bob).status_code == 404)
    [logged] = rpc.auth.moderation_log(on_account["id"])
    assert logged["action"] == "suspend" and logged["operator"] == "alice"


# Metrics -------------------------------------------------------------------------------------

def queue_metrics(api):
    text = api.get("/metrics").text
    samples = {sample.name: sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples}
    return samples["lifytp_reports_open"], samples["lifytp_reports_oldest_open_age_seconds"]


def test_metrics_show_the_open_reports_and_the_age_of_the_oldest(api, rpc):
    ann, bob = api.register(), api.register()
    reported(api, bob, "user", ann["id"])
    time.sleep(1)  # the oldest open report is at least this old

    def settled():
        queue = rpc.auth.report_queue()
        count, age = queue_metrics(api)
        return (count, age, queue) if count == queue["open"] else None

    count, age, queue = eventually(settled, timeout=15, interval=0.5)
    assert count >= 1
    assert age >= 1 and abs(age - queue["oldest_open_age_seconds"]) < 10
