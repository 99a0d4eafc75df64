"""Socket.IO against the running system plus two more realtime replicas, with
the Python client and the official JavaScript one (socket.io-client under node).

Clients are spread over the replicas; every push must reach each connected
recipient exactly once, whichever replica holds its socket, and nobody else.
"""
import json
import os
import re
import subprocess
import time
import uuid

import jwt
import pytest
import requests
import socketio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from services.shared.tokens import signer_from_file
from tests.conftest import JS_DIR, ROOT, STATE_DIR, TEST_PORT
from tests.support.processes import LoggedProcess, answers_ready

pytestmark = pytest.mark.integration

# From LIFYTP_TEST_PORT, like every port of the suite: suites running at once
# on one machine would otherwise reach each other's replicas.
REPLICA_PORTS = (TEST_PORT + 140, TEST_PORT + 141)
SETTLE_SECONDS = 0.6


class RealtimeReplica(LoggedProcess):
    """One more `nameko run realtime.service`, as Kubernetes runs it: alone."""

    def __init__(self, port):
        self.base_url = f"http://127.0.0.1:{port}"
        super().__init__(
            [os.path.join(ROOT, ".venv", "bin", "nameko"), "run", "--config", "config.yaml", "realtime.service"],
            os.path.join(STATE_DIR, f"realtime-{port}.log"), name="replica",
            env=dict(os.environ, WEB_SERVER_ADDRESS=f"127.0.0.1:{port}"))

    def wait_until_ready(self, timeout=30):
        super().wait_until_ready(lambda: answers_ready(self.base_url, timeout=1), timeout)

    def stop(self):
        super().stop(grace=15)


@pytest.fixture(scope="module")
def replicas(system):
    started = [RealtimeReplica(port) for port in REPLICA_PORTS]
    try:
        for replica in started:
            replica.wait_until_ready()
        yield [replica.base_url for replica in started]
    finally:
        for replica in started:
            replica.stop()


class Socket:
    """A real Socket.IO client that records every event it receives."""

    def __init__(self, base_url, token, transports=("websocket",)):
        self.received = []
        self.client = socketio.Client(reconnection=False)
        self.client.on("*", self._record)
        self.client.connect(base_url, auth={"token": token} if token is not None else None,
                            transports=list(transports), wait_timeout=10)

    def _record(self, event, *args):
        self.received.append((event, args[0] if args else None))

    def of(self, event):
        return [data for name, data in self.received if name == event]

    def call(self, event, *args):
        """Emit with an ack and return the server's answer; several args go as a tuple."""
        data = args[0] if len(args) == 1 else (tuple(args) if args else None)
        return self.client.call(event, data, timeout=10)

    def close(self):
        self.client.disconnect()


@pytest.fixture
def sockets():
    opened = []

    def open_socket(base_url, user, **kwargs):
        socket = Socket(base_url, user["access_token"] if isinstance(user, dict) else user, **kwargs)
        opened.append(socket)
        return socket

    yield open_socket
    for socket in opened:
        socket.close()


def wait_for(condition, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def without_event_id(pushes):
    return [{key: value for key, value in push.items() if key != "event_id"} for push in pushes]


def _conversation(api, owner, *others, title=None):
    body = {"member_ids": [user["id"] for user in others], **({"title": title} if title else {})}
    response = api.post("/messages/conversations", user=owner, json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_each_recipient_gets_each_push_once_across_replicas(api, replicas, sockets):
    ann, bob, cat, eve = (api.register() for _ in range(4))
    a, b = replicas
    ann_phone, ann_laptop = sockets(a, ann), sockets(b, ann)
    bob_phone, bob_laptop = sockets(b, bob), sockets(api.base_url, bob, transports=("polling", "websocket"))
    cat_phone = sockets(a, cat)
    eve_a, eve_b = sockets(a, eve), sockets(b, eve)
    members = [ann_phone, ann_laptop, bob_phone, bob_laptop, cat_phone]
    group = _conversation(api, ann, bob, cat, title="Plans")

    sent = api.post("/messages", user=ann, json={"conversation_id": group["id"], "body": "hello all"}).json()
    wait_for(lambda: all(socket.of("message:new") for socket in members))
    reaction = api.post(f"/messages/{sent['id']}/reactions", user=bob, json={"emoji": "🎉"})
    assert reaction.status_code == 201
    wait_for(lambda: all(socket.of("message:reaction") for socket in members))
    api.post(f"/messages/conversations/{group['id']}/read", user=cat, json={"message_id": sent["id"]})
    wait_for(lambda: all(socket.of("conversation:read") for socket in members))
    time.sleep(SETTLE_SECONDS)  # time for any duplicate to arrive

    # The socket that started on long-polling was upgraded through eventlet.wsgi.
    assert bob_laptop.client.transport() == "websocket"
    for socket in members:  # the sender's own devices included
        assert [data["message"]["id"] for data in socket.of("message:new")] == [sent["id"]]
        assert socket.of("message:new")[0]["message"]["seq"] == sent["seq"] > 0
        # The message a socket gets is the message the API answered, nothing more.
        assert without_event_id(socket.of("message:new")) == [{"message": sent}]
        assert without_event_id(socket.of("message:reaction")) == [{
            "message_id": sent["id"], "conversation_id": group["id"], "user_id": bob["id"],
            "emoji": "🎉", "action": "added",
        }]
        assert without_event_id(socket.of("conversation:read")) == [
            {"conversation_id": group["id"], "user_id": cat["id"], "message_id": sent["id"]}]
    # Every push carries the id of its change, the same on every device: what a client dedupes by.
    for event in ("message:new", "message:reaction", "conversation:read"):
        event_ids = {socket.of(event)[0]["event_id"] for socket in members}
        assert len(event_ids) == 1 and uuid.UUID(event_ids.pop())
    assert eve_a.received == [] and eve_b.received == []
    metrics = requests.get(a + "/metrics", timeout=5).text
    held = re.search(r"^lifytp_connected_sockets (\S+)$", metrics, re.MULTILINE)
    assert held and float(held.group(1)) >= 3  # ann's phone, cat's phone and eve's socket at least


def test_a_push_published_again_reaches_each_socket_once(api, replicas, sockets, config):
    """A PUBLISH whose reply was lost is published again, and a mark lost with
    Redis's memory lets the redelivered event be pushed again: every replica
    drops the repeat on receipt."""
    from nameko.standalone.events import event_dispatcher

    from realtime.sockets import pubsub_channel
    from services.shared.redis import redis_from_config

    ann = api.register()
    on_a, on_b, on_main = sockets(replicas[0], ann), sockets(replicas[1], ann), sockets(api.base_url, ann)
    event_id, event = _message_sent(ann["id"], "once")
    dispatch = event_dispatcher(config)
    dispatch("messages", "message_sent", event)
    wait_for(lambda: all(socket.of("message:new") for socket in (on_a, on_b, on_main)))

    redis = redis_from_config(config)
    assert redis.delete("realtime:pushed:" + event_id) == 1  # as a Redis restart forgets it
    dispatch("messages", "message_sent", event)  # redelivered: published again
    pushed = {"message": event["message"], "event_id": event_id}
    repeat = {"method": "emit", "event": "message:new", "data": [pushed], "binary": False,
              "namespace": "/", "room": ["user:" + ann["id"]], "skip_sid": None, "callback": None,
              "host_id": "a replica whose PUBLISH reply was lost", "push_id": event_id}
    assert redis.publish(pubsub_channel(config["REDIS_URL"]), json.dumps(repeat)) >= 3  # every replica hears it
    later_id, later = _message_sent(ann["id"], "next")
    dispatch("messages", "message_sent", later)  # the pipeline still works after the repeats
    wait_for(lambda: all(len(socket.of("message:new")) >= 2 for socket in (on_a, on_b, on_main)))
    time.sleep(SETTLE_SECONDS)  # time for any duplicate to arrive
    for socket in (on_a, on_b, on_main):
        assert socket.of("message:new")[0] == pushed
        assert [push["event_id"] for push in socket.of("message:new")] == [event_id, later_id]


def _message_sent(recipient_id, body):
    """A message_sent payload as the messages service records it: (envelope id, payload)."""
    from services.shared import contracts

    envelope_id, conversation_id = str(uuid.uuid4()), str(uuid.uuid4())
    event = contracts.MessageSent(
        message=contracts.MessageSummary(id=str(uuid.uuid4()), conversation_id=conversation_id, seq=1,
                                         sender_id=recipient_id, body=body, client_id=None,
                                         created_at="2026-11-23T18:00:00Z"),
        conversation_id=conversation_id, sender_id=recipient_id, recipient_ids=[recipient_id],
    )
    return envelope_id, dict(event.to_payload(), **{contracts.ENVELOPE_ID: envelope_id})


def test_a_socket_that_emits_disconnect_is_still_closed_at_expiry_and_when_its_account_is(api, replicas, config):
    """python-socketio would hand a client's "disconnect" event to the server's
    own handler: the socket cancelled its expiry and stayed in its room."""
    from nameko.standalone.rpc import ClusterRpcProxy

    ann, bob = api.register(), api.register()
    chat = _conversation(api, bob, ann)

    def spoofing_socket(url, token):
        socket = socketio.Client(reconnection=False)
        received = []
        socket.on("message:new", lambda data: received.append(data["message"]["body"]))
        socket.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
        socket.emit("disconnect")
        socket.emit("connect", {"token": token})
        return socket, received

    def send(body):
        assert api.post("/messages", user=bob, json={"conversation_id": chat["id"], "body": body}).status_code == 201

    short_lived = signer_from_file(config["JWT_PRIVATE_KEY_PATH"], 3).sign(ann["id"])
    expiring, expiring_got = spoofing_socket(replicas[0], short_lived)
    phone, phone_got = spoofing_socket(replicas[1], ann["access_token"])
    laptop, laptop_got = spoofing_socket(api.base_url, ann["access_token"])
    try:
        send("before")
        wait_for(lambda: expiring_got and phone_got and laptop_got)
        wait_for(lambda: not expiring.connected, timeout=10)  # at its token's expiry, spoof or not
        assert phone.connected and laptop.connected

        with ClusterRpcProxy(config, timeout=15) as rpc:
            assert rpc.auth.deactivate_user(ann["id"]) is True
        wait_for(lambda: not phone.connected and not laptop.connected, timeout=5)
        send("after")
        refusals = []
        again = socketio.Client(reconnection=False)
        again.on("connect_error", refusals.append)
        with pytest.raises(socketio.exceptions.ConnectionError):  # its token is still valid, the account is not
            again.connect(replicas[0], auth={"token": ann["access_token"]}, transports=["websocket"], wait_timeout=10)
        assert refusals == [{"message": "This account is closed.", "data": {"code": "ACCOUNT_CLOSED"}}]
        time.sleep(SETTLE_SECONDS)
        assert expiring_got == phone_got == laptop_got == ["before"]
    finally:
        for socket in (expiring, phone, laptop):
            socket.disconnect()


def test_a_revoked_session_loses_its_sockets_on_every_replica_and_other_sessions_keep_theirs(api, replicas):
    """One replica consumes sessions_revoked; it closes the session's sockets
    on every replica (and only those), within 5 s."""
    ann = api.register()
    other = api.post("/auth/login", json={"login": ann["user"]["username"], "password": ann["password"]}).json()

    def connected(url, token):
        socket = socketio.Client(reconnection=False)
        socket.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
        return socket

    others = [connected(url, other["access_token"]) for url in (*replicas, api.base_url)]
    own = [connected(url, ann["access_token"]) for url in (*replicas, api.base_url)]
    try:
        changed = api.post("/auth/password", user=ann, json={"current_password": ann["password"],
                                                             "new_password": "a brand new secret phrase"})
        assert changed.status_code == 204, changed.text
        wait_for(lambda: not any(socket.connected for socket in others), timeout=5)
        refusals = []
        again = socketio.Client(reconnection=False)
        again.on("connect_error", refusals.append)
        with pytest.raises(socketio.exceptions.ConnectionError):
            again.connect(replicas[1], auth={"token": other["access_token"]}, transports=["websocket"],
                          wait_timeout=10)
        assert [refusal["data"]["code"] for refusal in refusals] == ["TOKEN_REVOKED"]
        time.sleep(SETTLE_SECONDS)
        assert all(socket.connected for socket in own)
    finally:
        for socket in others + own:
            socket.disconnect()


def test_bad_tokens_are_refused(api, replicas, config):
    ann = api.register()
    claims = {"sub": ann["id"], "iss": "lifytp-auth", "aud": "lifytp", "iat": int(time.time()),
              "exp": int(time.time()) + 600}
    forged = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA")
    expired = signer_from_file(config["JWT_PRIVATE_KEY_PATH"], 60).sign(ann["id"], now=time.time() - 3600)
    unsigned = jwt.encode(claims, None, algorithm="none")
    for token in [forged, expired, unsigned, "garbage", "", "x" * 10000, None]:
        with pytest.raises(socketio.exceptions.ConnectionError):
            Socket(replicas[0], token)
    Socket(replicas[0], ann["access_token"]).close()  # the real one still works

    # A socket lasts no longer than its token.
    short_lived = signer_from_file(config["JWT_PRIVATE_KEY_PATH"], 2).sign(ann["id"])
    socket = Socket(replicas[1], short_lived)
    assert socket.client.connected
    wait_for(lambda: not socket.client.connected, timeout=6)


def test_typing_reaches_other_members_only(api, replicas, sockets):
    ann, bob, eve = api.register(), api.register(), api.register()
    chat = _conversation(api, ann, bob)
    ann_socket, bob_socket, bob_other = sockets(replicas[0], ann), sockets(replicas[1], bob), sockets(replicas[0], bob)
    eve_socket = sockets(replicas[1], eve)

    assert ann_socket.call("typing", {"conversation_id": chat["id"]}) == {"ok": True}
    wait_for(lambda: bob_socket.of("typing") and bob_other.of("typing"))
    refusal = eve_socket.call("typing", {"conversation_id": chat["id"]})
    assert refusal["error"]["code"] == "CONVERSATION_NOT_FOUND"
    time.sleep(SETTLE_SECONDS)
    assert bob_socket.of("typing") == [{"conversation_id": chat["id"], "user_id": ann["id"]}]
    assert bob_other.of("typing") == bob_socket.of("typing")
    assert ann_socket.of("typing") == [] and eve_socket.received == []


def test_typing_does_not_cross_a_block_in_a_one_to_one(api, replicas, sockets, db_engine):
    """Neither of two blocked users reaches the other: not even "is typing"."""
    ann, bob = api.register(), api.register()
    chat = _conversation(api, ann, bob)
    assert api.post(f"/users/{bob['id']}/block", user=ann).status_code == 204

    def messages_knows():
        with db_engine.connect() as connection:
            return connection.scalar(text(
                "SELECT active FROM messages.blocks WHERE user_id = :ann AND target_id = :bob"),
                {"ann": ann["id"], "bob": bob["id"]})

    wait_for(messages_knows)
    ann_socket, bob_socket = sockets(replicas[0], ann), sockets(replicas[1], bob)
    for typer in (bob_socket, ann_socket):
        assert typer.call("typing", {"conversation_id": chat["id"]})["error"]["code"] == "CONVERSATION_NOT_FOUND"
    time.sleep(SETTLE_SECONDS)
    assert ann_socket.of("typing") == [] and bob_socket.of("typing") == []


def test_malformed_and_huge_socket_input_is_refused_and_the_server_stays_up(api, replicas, sockets, db_engine):
    ann, bob = api.register(), api.register()
    chat = _conversation(api, ann, bob)
    ann_socket, bob_socket = sockets(replicas[0], ann), sockets(replicas[0], bob)

    def count_rows():
        with db_engine.connect() as connection:
            return connection.scalar(text("SELECT (SELECT count(*) FROM messages.messages)"
                                          " + (SELECT count(*) FROM messages.conversations)"))

    before = count_rows()
    for payload in ["text", 42, [chat["id"]], {}, {"conversation_id": "nope"},
                    {"conversation_id": chat["id"], "extra": "x" * 100}, {"conversation_id": {"$gt": ""}}]:
        answer = ann_socket.call("typing", payload)
        assert answer["error"]["code"] == "MALFORMED_EVENT", payload
    assert ann_socket.call("typing")["error"]["code"] == "MALFORMED_EVENT"
    assert ann_socket.call("typing", {"conversation_id": chat["id"]}, 2)["error"]["code"] == "MALFORMED_EVENT"
    assert ann_socket.call("delete_everything", {})["error"]["code"] == "UNKNOWN_EVENT"
    assert ann_socket.call("typing", {"conversation_id": str(uuid.uuid4())})["error"]["code"] == \
        "CONVERSATION_NOT_FOUND"

    huge = sockets(replicas[0], ann)
    huge.client.emit("typing", {"conversation_id": "x" * 200_000})
    wait_for(lambda: not huge.client.connected)  # the server drops it

    # Everyone else is still served, and nothing changed.
    assert requests.get(replicas[0] + "/health", timeout=5).status_code == 200
    api.post("/messages", user=bob, json={"conversation_id": chat["id"], "body": "still here"})
    wait_for(lambda: ann_socket.of("message:new"))
    assert count_rows() == before + 1
    assert bob_socket.of("typing") == []  # no refused event was relayed


def test_follow_notification_arrives_live_and_offline_members_are_notified(api, replicas, sockets):
    ann, bob, cat = api.register(), api.register(), api.register()
    bob_socket = sockets(replicas[1], bob)
    assert api.post(f"/users/{bob['id']}/follow", user=ann).status_code == 204
    wait_for(lambda: bob_socket.of("notification:new"))
    notification = bob_socket.of("notification:new")[0]["notification"]
    assert notification["type"] == "new_follower" and notification["data"] == {"follower_id": ann["id"]}
    listed = api.get("/notifications", user=bob).json()["items"]
    assert [item["id"] for item in listed] == [notification["id"]]

    # cat has no socket open: the message becomes a notification; bob's does not.
    group = _conversation(api, ann, bob, cat, title="Later")
    for body in ("are you there?", "see you"):
        api.post("/messages", user=ann, json={"conversation_id": group["id"], "body": body})
    wait_for(lambda: [item for item in api.get("/notifications", user=cat).json()["items"]
                      if item["data"].get("count") == 2])
    (item,) = api.get("/notifications", user=cat).json()["items"]  # one per conversation, kept current
    assert item["type"] == "message" and item["data"]["preview"] == "see you" and item["read_at"] is None
    assert api.post("/notifications/read", user=cat, json={}).status_code == 204
    assert api.get("/notifications", user=cat, params={"unread_only": "true"}).json()["items"] == []
    time.sleep(SETTLE_SECONDS)
    assert [item["type"] for item in api.get("/notifications", user=bob).json()["items"]] == ["new_follower"]


# The official JavaScript client -------------------------------------------------------

@pytest.fixture(scope="module")
def node_client(js_client_dir):
    return os.path.join(js_client_dir, "two_replicas.mjs")


def test_js_clients_get_pushes_once_across_replicas(api, replicas, node_client):
    ann, bob, eve = api.register(), api.register(), api.register()
    chat = api.post("/messages/conversations", user=ann, json={"member_ids": [bob["id"]]}).json()
    forged = jwt.encode({"sub": ann["id"], "iss": "lifytp-auth", "aud": "lifytp", "iat": 1, "exp": 2**31},
                        Ed25519PrivateKey.generate(), algorithm="EdDSA")
    script_input = {"urls": replicas, "conversation_id": chat["id"], "forged": forged,
                    "tokens": {"sender": ann["access_token"], "receiver": bob["access_token"],
                               "outsider": eve["access_token"]}}
    node = subprocess.Popen(["node", node_client, json.dumps(script_input)], cwd=JS_DIR,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert json.loads(node.stdout.readline() or "{}") == {"ready": True}, node.stderr.read()
        sent = api.post("/messages", user=ann, json={"conversation_id": chat["id"], "body": "from the app"})
        assert sent.status_code == 201
        result = json.loads(node.stdout.readline() or "null") or pytest.fail(node.stderr.read())
    finally:
        node.kill()
        node.wait()

    message_id = sent.json()["id"]
    assert [data["message"]["id"] for event, data in result["receiver"] if event == "message:new"] == [message_id]
    assert [data["message"]["id"] for event, data in result["sender"] if event == "message:new"] == [message_id]
    assert [data for event, data in result["receiver"] if event == "typing"] == [
        {"conversation_id": chat["id"], "user_id": ann["id"]}]
    assert not any(event == "typing" for event, _ in result["sender"])
    assert result["outsider"] == []
    assert result["forged"] == {"code": "TOKEN_INVALID"}
    assert result["acks"]["typing"] == {"ok": True}
    assert result["acks"]["outsider"]["error"]["code"] == "CONVERSATION_NOT_FOUND"
    assert result["acks"]["malformed"]["error"]["code"] == "MALFORMED_EVENT"
