"""realtime's handlers and socket plumbing in isolation (Nameko's worker_factory)."""
import time
import uuid
from unittest import mock

import eventlet
import jwt
import pytest
import redis
import socketio
from nameko.testing.services import worker_factory

from realtime import sockets as sockets_module
from realtime.delivered import RecentIds
from realtime.membership import MemberCache
from realtime.service import RealtimeService
from realtime.sockets import ChannelManager, SocketServer, pubsub_channel
from services.shared import contracts
from services.shared.errors import InvalidInput, NotFound
from services.shared.revocation import Revocation
from services.shared.tokens import VerifiedToken

ANN = "11111111-1111-4111-8111-111111111111"
ANN_TOKEN = VerifiedToken(user_id=ANN, session_id="22222222-2222-4222-8222-222222222222", issued_at=time.time())
BOB = "22222222-2222-4222-8222-222222222222"
CAT = "33333333-3333-4333-8333-333333333333"
CHAT = "44444444-4444-4444-8444-444444444444"
EVENT = "55555555-5555-4555-8555-555555555555"


def realtime(members=(ANN, BOB, CAT)):
    service = worker_factory(RealtimeService, members=MemberCache())
    service.messages.member_ids.return_value = list(members)
    return service


def test_typing_goes_to_the_other_members_only():
    service = realtime()
    assert service.typing(ANN, {"conversation_id": CHAT}) == {"ok": True}
    service.sockets.emit_to_users.assert_called_once_with(
        sorted([BOB, CAT]), "typing", {"conversation_id": CHAT, "user_id": ANN})


def test_typing_from_a_non_member_is_refused_and_relayed_to_nobody():
    service = realtime(members=(BOB, CAT))
    with pytest.raises(NotFound):
        service.typing(ANN, {"conversation_id": CHAT})
    assert not service.sockets.emit_to_users.called


@pytest.mark.parametrize("data", [{}, {"conversation_id": "x"}, {"conversation_id": None},
                                  {"conversation_id": CHAT, "more": 1}, {"conversation_id": [CHAT]}])
def test_malformed_typing_is_refused_before_asking_messages(data):
    service = realtime()
    with pytest.raises(InvalidInput):
        service.typing(ANN, data)
    assert not service.messages.member_ids.called


def test_membership_is_cached_between_keystrokes():
    service = realtime()
    for _ in range(5):
        service.typing(ANN, {"conversation_id": CHAT})
    service.messages.member_ids.assert_called_once_with(CHAT)


def test_member_cache_expires_and_stays_bounded():
    now = [0.0]
    cache = MemberCache(ttl=10, max_entries=2, clock=lambda: now[0])
    fetch = mock.Mock(side_effect=lambda conversation_id: [conversation_id])
    cache.members("a", fetch), cache.members("a", fetch)
    assert fetch.call_count == 1
    now[0] = 11
    cache.members("a", fetch)
    assert fetch.call_count == 2
    cache.members("b", fetch), cache.members("c", fetch)
    assert list(cache._entries) == ["b", "c"]


MESSAGE = {"id": CAT, "conversation_id": CHAT, "seq": 7, "sender_id": ANN, "body": "hi", "client_id": None,
           "created_at": "2026-11-23T18:00:00Z", "reactions": [{"emoji": "👍", "count": 1, "user_ids": [BOB]}],
           "deleted": False}
NOTIFICATION = {"id": CAT, "type": "message", "data": {"conversation_id": CHAT, "count": 2},
                "created_at": "2026-11-23T18:00:00Z", "read_at": None}
REACTION = {"message_id": CAT, "conversation_id": CHAT, "user_id": BOB, "emoji": "👍"}


def received(contract, payload):
    """An event as the messages service records it and realtime's handler is handed it."""
    return contract.from_payload(dict(payload, domain_event_id=EVENT))


def test_a_push_goes_out_once_per_envelope_id_and_carries_it_as_event_id():
    service = realtime()
    service.redis.exists.side_effect = [0, 1]
    event = received(contracts.MessageSent, {"message": MESSAGE, "conversation_id": CHAT, "sender_id": ANN,
                                             "recipient_ids": [ANN, BOB]})
    service.on_message_sent(event)
    service.on_message_sent(event)  # redelivered
    service.sockets.emit_to_users.assert_called_once_with(
        [ANN, BOB], "message:new", {"message": MESSAGE, "event_id": EVENT}, push_id=EVENT)
    service.redis.set.assert_called_once_with("realtime:pushed:" + EVENT, 1, ex=3600)


# What each socket event carries (docs/API.md): exactly these fields, whatever else the domain event has.
@pytest.mark.parametrize("handler, contract, payload, socket_event, pushed", [
    ("on_reaction_added", contracts.ReactionAdded, dict(REACTION, action="added"), "message:reaction",
     dict(REACTION, action="added")),
    ("on_reaction_removed", contracts.ReactionRemoved, dict(REACTION, action="removed"), "message:reaction",
     dict(REACTION, action="removed")),
    ("on_conversation_read", contracts.ConversationRead, {"conversation_id": CHAT, "user_id": BOB, "message_id": CAT},
     "conversation:read", {"conversation_id": CHAT, "user_id": BOB, "message_id": CAT}),
    ("on_notification_created", contracts.NotificationCreated, {"notification": NOTIFICATION, "user_id": BOB},
     "notification:new", {"notification": NOTIFICATION}),
], ids=["reaction_added", "reaction_removed", "conversation_read", "notification_created"])
def test_each_push_carries_what_the_socket_contract_says(handler, contract, payload, socket_event, pushed):
    service = realtime()
    service.redis.exists.return_value = 0
    getattr(service, handler)(received(contract, dict(payload, recipient_ids=[BOB])))
    service.sockets.emit_to_users.assert_called_once_with(
        [BOB], socket_event, dict(pushed, event_id=EVENT), push_id=EVENT)


def test_a_removed_message_is_two_pushes_to_its_members_each_with_an_id_of_its_own():
    service = realtime()
    service.redis.exists.return_value = 0
    service.on_message_removed(received(contracts.MessageRemoved, {
        "message_id": CAT, "conversation_id": CHAT, "recipient_ids": [ANN, BOB]}))
    [deleted, removed] = service.sockets.emit_to_users.call_args_list
    assert deleted.args == ([ANN, BOB], "message:deleted", {"message_id": CAT, "conversation_id": CHAT,
                                                           "event_id": EVENT})
    assert removed.args[:2] == ([ANN, BOB], "content:removed")
    assert removed.args[2]["target_type"] == "message" and removed.args[2]["target_id"] == CAT
    # Derived from the envelope id: the same at every redelivery, never the other push's.
    assert removed.args[2]["event_id"] == str(uuid.uuid5(uuid.UUID(EVENT), "content:removed")) != EVENT
    assert removed.kwargs["push_id"] == removed.args[2]["event_id"]


def test_removed_public_content_goes_to_every_socket():
    service = realtime()
    service.redis.exists.return_value = 0
    service.on_public_content_removed(received(contracts.PublicContentRemoved,
                                               {"target_type": "post", "target_id": CAT}))
    pushed_id = str(uuid.uuid5(uuid.UUID(EVENT), "content:removed"))
    service.sockets.emit_to_everyone.assert_called_once_with(
        "content:removed", {"target_type": "post", "target_id": CAT, "event_id": pushed_id}, push_id=pushed_id)
    service.sockets.emit_to_users.assert_not_called()


def test_a_closed_account_loses_its_sockets():
    service = realtime()
    service.on_user_deleted(received(contracts.UserDeleted, {"user_id": ANN}))
    service.sockets.close_user.assert_called_once_with(ANN)


def test_redis_databases_get_their_own_channel():
    assert pubsub_channel("redis://127.0.0.1:6379/13") == "lifytp-socketio:13"
    assert pubsub_channel("redis://127.0.0.1:6379") == "lifytp-socketio:0"


def _server():
    server = SocketServer()
    server.sio = mock.Mock()
    server.presence = mock.Mock()
    server.presence.live_sockets.return_value = 0
    server.redis = mock.Mock()
    server.redis.exists.return_value = 0
    server.revocations = mock.Mock()
    server.revocations.is_revoked.return_value = False
    server.public_key_path = "/nonexistent"
    server.token_max_age = 3600
    return server


def _connect(server, sid="sid", expires_in=600):
    with mock.patch("realtime.sockets.verifier_from_file") as verifier:
        verifier.return_value.verify_token.return_value = ANN_TOKEN
        server._on_connect(sid, {}, {"token": _token(expires_in)})


def test_a_closed_account_and_one_with_too_many_sockets_are_refused():
    server = _server()
    server.redis.exists.return_value = 1
    with pytest.raises(socketio.exceptions.ConnectionRefusedError, match="closed"):
        _connect(server)
    server.redis.exists.return_value = 0
    server.presence.live_sockets.return_value = sockets_module.MAX_SOCKETS_PER_USER
    with pytest.raises(socketio.exceptions.ConnectionRefusedError, match="At most"):
        _connect(server)
    server.redis.exists.side_effect = redis.ConnectionError("down")
    with pytest.raises(socketio.exceptions.ConnectionRefusedError):
        _connect(server)
    assert server.users_by_sid == {} and not server.sio.enter_room.called


def test_a_revoked_token_is_refused_and_a_revocation_closes_only_the_sockets_it_covers():
    server = _server()
    server.revocations.is_revoked.return_value = True
    with pytest.raises(socketio.exceptions.ConnectionRefusedError, match="revoked"):
        _connect(server)
    server.revocations.is_revoked.return_value = False
    _connect(server, sid="kept")
    server._close_local_revoked(Revocation(user_id=ANN, session_ids=("33333333-3333-4333-8333-333333333333",)))
    assert not server.sio.disconnect.called
    server._close_local_revoked(Revocation(user_id=ANN, session_ids=(ANN_TOKEN.session_id,)))
    server.sio.disconnect.assert_called_once_with("kept")


def test_a_socket_whose_token_expired_gets_no_push_even_if_its_timer_was_cancelled():
    server = _server()
    _connect(server, expires_in=600)
    assert server._socket_is_live("sid")
    server._expiry_timers.pop("sid").cancel()
    server._expires_at["sid"] = time.time() - 1
    assert not server._socket_is_live("sid")
    eventlet.sleep(0)
    server.sio.disconnect.assert_called_with("sid")


def test_closing_an_account_disconnects_its_sockets_here_and_marks_it_closed():
    server = _server()
    _connect(server, sid="mine")
    server.users_by_sid["other"] = BOB
    server.closed_seconds = 900
    server.close_user(ANN)
    server.redis.set.assert_called_once_with("realtime:closed:" + ANN, 1, ex=900)
    server.sio.manager.close_user_everywhere.assert_called_once_with(ANN)
    server._close_local_sockets_of(ANN)
    server.sio.disconnect.assert_called_once_with("mine")


def test_client_events_named_connect_or_disconnect_never_reach_the_server_handlers():
    server = sockets_module.GuardedServer(async_mode="threading")
    handled = []
    server.on("disconnect", lambda sid, *args: handled.append("disconnect"))
    server.on("*", lambda event, sid, *args: handled.append(event))
    server.manager.is_connected = lambda sid, namespace: True
    server.manager.sid_from_eio_sid = lambda eio_sid, namespace: "sid"
    server.async_handlers = False
    for data in (["disconnect"], ["connect", {}], [42], [], ["typing", {"conversation_id": CHAT}]):
        server._handle_event("eio", "/", None, data)
    assert handled == ["typing"]


@pytest.mark.parametrize("auth", [None, "token", {}, {"token": ""}, {"token": 5}, {"token": "x" * 5000}])
def test_connecting_without_a_usable_token_is_refused(auth):
    server = _server()
    with pytest.raises(socketio.exceptions.ConnectionRefusedError):
        server._on_connect("sid", {}, auth)
    assert server.users_by_sid == {} and not server.sio.enter_room.called


def test_connecting_with_a_bad_token_is_refused():
    server = _server()
    with mock.patch("realtime.sockets.verifier_from_file") as verifier:
        from services.shared.tokens import InvalidToken

        verifier.return_value.verify_token.side_effect = InvalidToken("bad signature")
        with pytest.raises(socketio.exceptions.ConnectionRefusedError):
            server._on_connect("sid", {}, {"token": "forged"})
    assert server.users_by_sid == {}


def _token(expires_in):
    # Verification is mocked below; only the expiry is read from this token.
    claims = {"sub": ANN, "exp": int(time.time() + expires_in)}
    return jwt.encode(claims, "an unused key of thirty-two bytes!", algorithm="HS256")


def test_a_connected_socket_joins_its_user_room_and_is_present():
    server = _server()
    with mock.patch("realtime.sockets.verifier_from_file") as verifier:
        verifier.return_value.verify_token.return_value = ANN_TOKEN
        server._on_connect("sid", {}, {"token": _token(600)})
    server.sio.enter_room.assert_called_once_with("sid", "user:" + ANN)
    server.presence.connected.assert_called_once_with(ANN, "sid")
    server._on_disconnect("sid", "client disconnect")
    server.presence.disconnected.assert_called_once_with(ANN, "sid")
    assert server.users_by_sid == {} and server._expiry_timers == {}
    eventlet.sleep(0)
    assert not server.sio.disconnect.called


def test_a_socket_is_closed_when_its_token_expires():
    server = _server()
    with mock.patch("realtime.sockets.verifier_from_file") as verifier:
        verifier.return_value.verify_token.return_value = ANN_TOKEN
        server._on_connect("sid", {}, {"token": _token(0)})
    eventlet.sleep(0.01)
    server.sio.disconnect.assert_called_once_with("sid")


def test_a_flood_of_events_is_cut_off():
    server = _server()
    typing = mock.Mock(event_name="typing")
    server._providers.add(typing)
    server.users_by_sid["sid"] = ANN
    answers = [server._on_event("typing", "sid", {"conversation_id": CHAT}) for _ in range(60)]
    limited = [answer for answer in answers if isinstance(answer, dict) and "error" in answer]
    assert limited and all(answer["error"]["code"] == "RATE_LIMITED" for answer in limited)
    assert typing.handle.call_count <= 40  # at most two one-second windows' worth


def test_client_events_are_checked_before_any_worker_runs():
    server = _server()
    typing = mock.Mock(event_name="typing")
    server._providers.add(typing)
    assert server._on_event("typing", "stranger", {"conversation_id": CHAT}) is None  # not connected
    server.users_by_sid["sid"] = ANN
    assert server._on_event("shout", "sid", {})["error"]["code"] == "UNKNOWN_EVENT"
    for args in [(), ("text",), ([1],), ({}, {})]:
        assert server._on_event("typing", "sid", *args)["error"]["code"] == "MALFORMED_EVENT"
    assert not typing.handle.called
    server._on_event("typing", "sid", {"conversation_id": CHAT})
    typing.handle.assert_called_once_with(ANN, {"conversation_id": CHAT})


def test_emitting_to_users_is_one_publish_to_their_rooms():
    server = _server()
    server.emit_to_users([ANN, BOB, ANN], "message:new", {"x": 1}, push_id=EVENT)
    server.sio.manager.emit.assert_called_once_with(
        "message:new", {"x": 1}, namespace="/", to=["user:" + ANN, "user:" + BOB], push_id=EVENT)
    server.emit_to_users([], "message:new", {})
    assert server.sio.manager.emit.call_count == 1


def test_recent_ids_are_remembered_for_a_while_and_bounded():
    now = [0.0]
    recent = RecentIds(ttl_seconds=10, max_ids=2, clock=lambda: now[0])
    assert recent.first_time("a") and not recent.first_time("a")
    now[0] = 9.9
    assert not recent.first_time("a")
    now[0] = 10.5
    assert recent.first_time("a")  # forgotten after the TTL
    assert recent.first_time("b") and recent.first_time("c")
    assert len(recent) == 2 and recent.first_time("a")  # the oldest made room


def test_a_replica_delivers_a_push_id_to_its_sockets_once_however_often_it_is_published():
    manager = ChannelManager("redis://127.0.0.1:1/0", channel="test")
    message = {"method": "emit", "event": "message:new", "data": [{"x": 1}], "namespace": "/",
               "room": ["user:" + ANN], "host_id": "another replica", "push_id": EVENT}
    with mock.patch.object(socketio.PubSubManager, "_handle_emit") as deliver:
        manager._handle_emit(message)
        manager._handle_emit(dict(message))  # published again
        manager._handle_emit(dict(message, push_id=None))  # typing: no push id, never deduped
        manager._handle_emit(dict(message, push_id=None))
    assert deliver.call_count == 3
