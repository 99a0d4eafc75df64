"""Password change, account deletion and operator deactivation against the real
system: access tokens and sockets of what was revoked stop working within 5 s,
in every service, not at their expiry."""
import time

import pytest
import socketio
from nameko.standalone.rpc import ClusterRpcProxy

from services.shared.revocation import RevocationList, revocation_client
from services.shared.tokens import VerifiedToken
from tests.fixtures.events.media_samples import png_bytes
from tests.support.mail import link_token

pytestmark = pytest.mark.integration

# The promise: revoked within this many seconds in every service.
REVOKED_WITHIN_SECONDS = 5
PROTECTED = ("/auth/me", "/events?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z",
             "/messages/conversations", "/notifications")


def refused_everywhere_within(api, user, seconds=REVOKED_WITHIN_SECONDS):
    """Poll until every service answers the user's token 401; the seconds it took."""
    started = time.monotonic()
    while True:
        statuses = [api.get(path, user=user).status_code for path in PROTECTED]
        if all(status == 401 for status in statuses):
            return time.monotonic() - started
        assert time.monotonic() - started < seconds, f"still {statuses} after {seconds} s"
        time.sleep(0.1)


def accepted_everywhere(api, user):
    return [api.get(path, user=user).status_code for path in PROTECTED] == [200] * len(PROTECTED)


def login(api, user, password=None):
    return api.post("/auth/login", json={"login": user["user"]["username"],
                                         "password": password or user["password"]})


class Socket:
    def __init__(self, base_url, token):
        self.disconnected_at = None
        self.client = socketio.Client(reconnection=False)
        self.client.on("disconnect", self._on_disconnect)
        self.client.connect(base_url, auth={"token": token}, transports=["websocket"], wait_timeout=10)

    def _on_disconnect(self, *reason):
        self.disconnected_at = time.monotonic()

    def closed_within(self, seconds, since):
        deadline = since + seconds
        while self.disconnected_at is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.disconnected_at is not None and self.disconnected_at - since <= seconds

    def close(self):
        if self.client.connected:
            self.client.disconnect()


@pytest.fixture
def open_socket(system):
    opened = []

    def open_one(user):
        socket = Socket(system.base_url, user["access_token"])
        opened.append(socket)
        return socket

    yield open_one
    for socket in opened:
        socket.close()


def refused_socket(system, user):
    client = socketio.Client(reconnection=False)
    try:
        client.connect(system.base_url, auth={"token": user["access_token"]}, transports=["websocket"],
                       wait_timeout=10)
    except socketio.exceptions.ConnectionError:
        return True
    client.disconnect()
    return False


# Deleting the account ---------------------------------------------------------------

def test_a_deleted_accounts_tokens_are_refused_everywhere_and_its_socket_closed_within_5_s(api, system,
                                                                                             open_socket):
    ann = api.register()
    second_session = login(api, ann).json()
    assert accepted_everywhere(api, ann) and accepted_everywhere(api, second_session)
    socket = open_socket(second_session)

    deleted_at = time.monotonic()
    response = api.delete("/auth/me", user=ann, json={"password": ann["password"]})
    assert response.status_code == 204, response.text

    refused_everywhere_within(api, ann)
    refused_everywhere_within(api, second_session, REVOKED_WITHIN_SECONDS - (time.monotonic() - deleted_at))
    assert socket.closed_within(REVOKED_WITHIN_SECONDS, since=deleted_at)
    assert refused_socket(system, second_session)
    assert login(api, ann).status_code == 401
    assert api.post("/auth/refresh", json={"refresh_token": second_session["refresh_token"]}).status_code == 401
    assert api.get(f"/users/{ann['id']}", user=api.register()).status_code == 404


def test_a_deleted_accounts_email_and_username_can_be_registered_again(api):
    ann = api.register()
    assert api.delete("/auth/me", user=ann, json={"password": ann["password"]}).status_code == 204
    again = api.register(username=ann["user"]["username"])
    assert again["id"] != ann["id"] and again["user"]["email"] == ann["user"]["email"]


def test_deleting_with_a_wrong_password_changes_nothing(api):
    ann = api.register()
    response = api.delete("/auth/me", user=ann, json={"password": "not the password"})
    assert response.status_code == 401 and response.json()["error"]["code"] == "INVALID_CREDENTIALS"
    time.sleep(1)  # a revocation, had one been recorded, would have landed by now
    assert accepted_everywhere(api, ann)
    assert login(api, ann).status_code == 200
    for body in ({}, {"password": 12}, {"password": ""}):
        assert api.delete("/auth/me", user=ann, json=body).status_code == 422
    assert api.delete("/auth/me", user=ann, data="nope", headers={"Content-Type": "application/json"}
                      ).status_code == 400
    assert accepted_everywhere(api, ann)


def test_the_cascade_runs_for_a_deleted_account(api):
    ann, bob = api.register(), api.register()
    assert api.post(f"/users/{bob['id']}/follow", user=ann).status_code == 204
    assert api.post(f"/users/{ann['id']}/follow", user=bob).status_code == 204
    event = api.post("/events", user=ann, json={"title": "Picnic", "starts_at": "2030-06-01T12:00:00Z",
                                                 "visibility": "public"}).json()
    assert api.post(f"/events/{event['id']}/participants", user=bob).status_code == 201
    post = api.post("/posts", user=ann, json={"body": "hello"}).json()
    conversation = api.post("/messages/conversations", user=ann, json={"member_ids": [bob["id"]]}).json()
    assert api.post("/messages", user=ann, json={"conversation_id": conversation["id"], "body": "hi"}
                    ).status_code == 201
    answer = api.post("/messages", user=bob, json={"conversation_id": conversation["id"], "body": "hey"}).json()
    assert api.post(f"/messages/{answer['id']}/reactions", user=ann, json={"emoji": "👍"}).status_code == 201

    assert api.delete("/auth/me", user=ann, json={"password": ann["password"]}).status_code == 204

    def cascaded():
        events = api.get(f"/events/{event['id']}", user=bob).json()
        profile = api.get(f"/users/{bob['id']}", user=bob).json()
        return (events.get("status") == "cancelled" and api.get(f"/posts/{post['id']}", user=bob).status_code == 404
                and profile["followers_count"] == 0 and profile["following_count"] == 0)

    deadline = time.monotonic() + 10
    while not cascaded():
        assert time.monotonic() < deadline, "the cascade did not run"
        time.sleep(0.2)
    def reactions_gone():
        items = api.get(f"/messages/conversations/{conversation['id']}/messages", user=bob).json()["items"]
        return [(message["body"], message["reactions"]) for message in items] == [("hey", []), ("hi", [])]

    deadline = time.monotonic() + 10
    while not reactions_gone():
        assert time.monotonic() < deadline, "ann's reaction stayed"
        time.sleep(0.2)
    # Bob, who had joined, is told (events' event_cancelled, then a notification by messages).
    deadline = time.monotonic() + 10
    while not (cancelled := [item["data"] for item in api.get("/notifications", user=bob).json()["items"]
                             if item["type"] == "event_cancelled"]):
        assert time.monotonic() < deadline, "bob was not told"
        time.sleep(0.2)
    assert cancelled == [{"event_id": event["id"], "event_title": "Picnic", "reason": "organizer_deleted"}]
    members = api.get(f"/messages/conversations/{conversation['id']}", user=bob).json()["members"]
    # Shown as from a deleted user.
    assert [member["username"] for member in members if member["id"] == ann["id"]] == [None]


# Changing the password ----------------------------------------------------------------

def test_a_password_change_signs_out_the_other_sessions_only(api, system, open_socket):
    ann = api.register()
    other = login(api, ann).json()
    other_socket = open_socket(other)
    own_socket = open_socket(ann)
    new_password = "a brand new secret phrase"

    changed_at = time.monotonic()
    response = api.post("/auth/password", user=ann,
                        json={"current_password": ann["password"], "new_password": new_password})
    assert response.status_code == 204, response.text

    refused_everywhere_within(api, other)
    assert other_socket.closed_within(REVOKED_WITHIN_SECONDS, since=changed_at)
    assert api.post("/auth/refresh", json={"refresh_token": other["refresh_token"]}).status_code == 401
    assert accepted_everywhere(api, ann) and own_socket.client.connected
    assert api.post("/auth/refresh", json={"refresh_token": ann["refresh_token"]}).status_code == 200
    assert login(api, ann).status_code == 401
    assert login(api, ann, new_password).status_code == 200


def test_a_password_change_refuses_a_wrong_current_password_and_a_weak_new_one(api):
    ann = api.register()
    other = login(api, ann).json()
    wrong = api.post("/auth/password", user=ann,
                     json={"current_password": "not it at all", "new_password": "a brand new secret phrase"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "INVALID_CREDENTIALS"
    for weak in ("short", "password123", ann["user"]["username"] + "xyz"):
        response = api.post("/auth/password", user=ann, json={"current_password": ann["password"],
                                                              "new_password": weak})
        assert response.status_code == 422, (weak, response.text)
        assert "new_password" in response.json()["error"]["details"]
    time.sleep(1)
    assert accepted_everywhere(api, other)
    assert login(api, ann).status_code == 200


# Operators ------------------------------------------------------------------------------

def test_operator_deactivation_refuses_tokens_and_closes_sockets_within_5_s(api, config, open_socket):
    ann = api.register()
    socket = open_socket(ann)
    deactivated_at = time.monotonic()
    with ClusterRpcProxy(config, timeout=15) as rpc:
        assert rpc.auth.deactivate_user(ann["id"]) is True
    refused_everywhere_within(api, ann)
    assert socket.closed_within(REVOKED_WITHIN_SECONDS, since=deactivated_at)


def test_a_token_from_before_sessions_works_until_its_account_is_revoked(api, config):
    """Tokens signed before they named their session (no `sid`) keep working,
    and are refused by an account-wide revocation all the same."""
    from services.shared.tokens import signer_from_file

    ann = api.register()
    legacy = {"access_token": signer_from_file(config["JWT_PRIVATE_KEY_PATH"], 600).sign(ann["id"])}
    assert accepted_everywhere(api, legacy)
    other = login(api, ann).json()
    assert api.post("/auth/password", user=other, json={"current_password": ann["password"],
                                                        "new_password": "a brand new secret phrase"}
                    ).status_code == 204
    time.sleep(1)  # the revocation of the other sessions has landed: it names sessions only
    assert accepted_everywhere(api, legacy)
    with ClusterRpcProxy(config, timeout=15) as rpc:
        assert rpc.auth.deactivate_user(ann["id"]) is True
    refused_everywhere_within(api, legacy)


def test_signing_out_ends_the_sessions_access_token_too(api):
    ann = api.register()
    other = login(api, ann).json()
    assert api.post("/auth/logout", json={"refresh_token": other["refresh_token"]}).status_code == 204
    refused_everywhere_within(api, other)
    assert accepted_everywhere(api, ann)


# When Redis forgets, or does not answer -------------------------------------------------

def test_revocations_lost_with_redis_are_written_again_from_the_database(api, config):
    """A Redis that restarts empty (no persistence, as deployed) forgets the
    revocation list: auth notices and writes the last hour's again."""
    from services.shared.redis import redis_from_config
    from services.shared.revocation import SEEDED_KEY, SESSIONS_KEY, USERS_KEY

    ann, bob = api.register(), api.register()
    bobs_other = login(api, bob).json()
    with ClusterRpcProxy(config, timeout=15) as rpc:
        assert rpc.auth.deactivate_user(ann["id"]) is True
    assert api.post("/auth/logout", json={"refresh_token": bobs_other["refresh_token"]}).status_code == 204
    refused_everywhere_within(api, ann)
    refused_everywhere_within(api, bobs_other)

    client = redis_from_config(config)
    client.delete(USERS_KEY, SESSIONS_KEY, SEEDED_KEY)
    # Auth checks every 5 s; a few more for the check to land.
    refused_everywhere_within(api, ann, seconds=10)
    refused_everywhere_within(api, bobs_other, seconds=10)
    assert client.exists(SEEDED_KEY) and accepted_everywhere(api, bob)


# When Redis does not answer -------------------------------------------------------------

def test_without_redis_the_check_fails_open_by_default_and_closed_when_configured(config):
    unreachable = dict(config, REDIS_URL="redis://127.0.0.1:1/0")
    token = VerifiedToken(user_id="11111111-1111-4111-8111-111111111111", session_id=None, issued_at=time.time())
    assert RevocationList(revocation_client(unreachable), 60).is_revoked(token) is False
    closed = RevocationList(revocation_client(unreachable), 60, fail_closed=True)
    from services.shared.revocation import RevocationUnknown
    with pytest.raises(RevocationUnknown):
        closed.is_revoked(token)
    # Redis is not asked again for a moment: the next check costs no timeout.
    started = time.monotonic()
    with pytest.raises(RevocationUnknown):
        closed.is_revoked(token)
    assert time.monotonic() - started < 0.05


# The data export -------------------------------------------------------------------------

def test_the_export_holds_what_the_account_owns_or_wrote_across_services(api):
    ann, bob = api.register(), api.register()
    assert api.post(f"/users/{bob['id']}/follow", user=ann).status_code == 204
    assert api.post(f"/users/{ann['id']}/follow", user=bob).status_code == 204
    upload = api.post("/media", user=ann, files={"file": ("dot.png", png_bytes(), "image/png")})
    assert upload.status_code == 201, upload.text
    media = upload.json()
    event = api.post("/events", user=ann, json={"title": "Export picnic", "starts_at": "2030-06-01T12:00:00Z",
                                                 "visibility": "public"}).json()
    joined = api.post("/events", user=bob, json={"title": "Bob's party", "starts_at": "2030-07-01T12:00:00Z",
                                                  "visibility": "public"}).json()
    assert api.post(f"/events/{joined['id']}/participants", user=ann).status_code == 201
    post = api.post("/posts", user=ann, json={"body": "my post", "media_ids": [media["id"]]}).json()
    conversation = api.post("/messages/conversations", user=ann, json={"member_ids": [bob["id"]]}).json()
    sent = api.post("/messages", user=ann, json={"conversation_id": conversation["id"], "body": "export me"}).json()

    # bob's follow reaches ann's notifications through messages: wait for it, then export once.
    deadline = time.monotonic() + 10
    while [item["type"] for item in api.get("/notifications", user=ann).json()["items"]] != ["new_follower"]:
        assert time.monotonic() < deadline, "the follow notification never arrived"
        time.sleep(0.2)
    response = api.get("/auth/me/export", user=ann)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    document = response.json()
    assert document["format"] == "lifytp-export/1" and document["truncated"] == []
    assert [item["type"] for item in document["notifications"]] == ["new_follower"]
    assert document["profile"]["id"] == ann["id"] and document["profile"]["email"] == ann["user"]["email"]
    assert [item["user_id"] for item in document["following"]] == [bob["id"]]
    assert [item["user_id"] for item in document["followers"]] == [bob["id"]]
    assert [item["id"] for item in document["events_organized"]] == [event["id"]]
    assert [item["id"] for item in document["events_joined"]] == [joined["id"]]
    assert [(item["id"], item["body"], item["media_ids"]) for item in document["posts"]] == [
        (post["id"], "my post", [media["id"]])]
    assert [(item["id"], item["url"]) for item in document["media"]] == [(media["id"], media["url"])]
    assert [(item["id"], item["body"]) for item in document["messages_sent"]] == [(sent["id"], "export me")]
    assert [(item["id"], sorted(item["member_ids"])) for item in document["conversations"]] == [
        (conversation["id"], sorted([ann["id"], bob["id"]]))]
    # Nothing of bob's own beyond what ann shares with him.
    assert api.get("/auth/me/export", user=bob).json()["messages_sent"] == []
    assert api.get("/auth/me/export").status_code == 401


def test_exports_are_limited_per_account(api):
    ann, bob = api.register(), api.register()
    answers = [api.get("/auth/me/export", user=ann) for _ in range(6)]
    assert [answer.status_code for answer in answers] == [200] * 5 + [429]
    refused = answers[-1]
    assert refused.json()["error"]["details"] == {"scope": "account"} and int(refused.headers["Retry-After"]) > 0
    assert api.get("/auth/me/export", user=bob).status_code == 200


def test_a_password_reset_closes_open_sockets_and_refuses_the_tokens_everywhere(api, mail_sink, open_socket):
    ann = api.register()
    email = ann["user"]["email"]
    socket = open_socket(ann)
    assert accepted_everywhere(api, ann)
    assert api.post("/auth/password/forgot", json={"email": email}).status_code == 202
    token = link_token(mail_sink.wait_for(email, 2)[-1])  # the registration's mail, then the reset's

    reset_at = time.monotonic()
    reset = api.post("/auth/password/reset", json={"token": token, "password": "a brand new secret 42"})
    assert reset.status_code == 204
    assert socket.closed_within(REVOKED_WITHIN_SECONDS, since=reset_at)
    refused_everywhere_within(api, ann)
