"""realtime when Redis fails or a replica stops: no push is lost or doubled,
sockets are left to reconnect, the channel listener comes back at once."""
import glob
import importlib
import inspect
import json
import os
from unittest import mock

import pytest
import redis
import socketio
from nameko.events import EventHandler
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
from nameko.testing.services import worker_factory

from realtime import sockets as sockets_module
from realtime.membership import MemberCache
from realtime.peers import Peers
from realtime.service import RealtimeService
from realtime.sockets import ChannelManager, SocketServer
from services.shared import contracts
from services.shared.errors import DependencyUnavailable
from services.shared.events import DurableEventHandler
from tests.conftest import ROOT

ANN = "11111111-1111-4111-8111-111111111111"
EVENT = "55555555-5555-4555-8555-555555555555"
SENT = contracts.MessageSent.from_payload({
    "domain_event_id": EVENT, "conversation_id": ANN, "sender_id": ANN, "recipient_ids": [ANN],
    "message": {"id": EVENT, "conversation_id": ANN, "seq": 1, "sender_id": ANN, "body": "hi", "client_id": None,
                "created_at": "2026-11-23T18:00:00Z", "reactions": []}})


def service_classes():
    """Every Nameko service class of the system: what `nameko run` takes from
    each package's service module (services/<name>/service.py, realtime/service.py)."""
    paths = sorted(glob.glob(os.path.join(ROOT, "services", "*", "service.py"))) + [
        os.path.join(ROOT, "realtime", "service.py")]
    for path in paths:
        module = importlib.import_module(os.path.relpath(path, ROOT)[:-3].replace(os.sep, "."))
        for _, value in inspect.getmembers(module, inspect.isclass):
            if value.__module__ == module.__name__ and isinstance(getattr(value, "name", None), str):
                yield value


def event_handlers(service_class):
    for name in dir(service_class):
        for extension in getattr(getattr(service_class, name), ENTRYPOINT_EXTENSIONS_ATTR, ()):
            if isinstance(extension, EventHandler):
                yield f"{service_class.name}.{name}", extension


def test_every_service_is_found():
    assert {service.name for service in service_classes()} >= {"auth", "events", "messages", "realtime"}


def test_every_event_handler_of_every_service_requeues_what_a_down_dependency_failed():
    handlers = dict(handler for service in service_classes() for handler in event_handlers(service))
    assert len(handlers) >= 10, handlers
    plain = sorted(name for name, handler in handlers.items()
                   if not (isinstance(handler, DurableEventHandler) and handler.requeue_on_error))
    assert plain == [], f"plain event_handler (acks an event whose worker failed): {plain}"


def test_a_push_that_cannot_be_published_fails_and_is_not_marked_pushed():
    service = worker_factory(RealtimeService, members=MemberCache())
    service.redis.exists.return_value = 0
    service.sockets.emit_to_users.side_effect = redis.ConnectionError("gone")
    with pytest.raises(redis.ConnectionError):
        service.on_message_sent(SENT)
    assert not service.redis.set.called  # so the redelivery pushes it


def test_a_push_whose_mark_fails_is_still_done_once():
    service = worker_factory(RealtimeService, members=MemberCache())
    service.redis.exists.return_value = 0
    service.redis.set.side_effect = redis.ConnectionError("gone")
    service.on_message_sent(SENT)  # acknowledged: a repeat would be dropped on receipt
    assert service.sockets.emit_to_users.call_count == 1


def test_nothing_is_pushed_while_the_replica_is_not_subscribed():
    service = worker_factory(RealtimeService, members=MemberCache())
    service.sockets.check_subscribed.side_effect = DependencyUnavailable()
    with pytest.raises(DependencyUnavailable):
        service.on_message_sent(SENT)
    assert not service.redis.exists.called and not service.sockets.emit_to_users.called


def test_readiness_includes_the_channel_subscription():
    service = worker_factory(RealtimeService, members=MemberCache())
    assert service.readiness_probes()["pubsub"] is service.sockets.check_subscribed


def _manager():
    manager = ChannelManager("redis://127.0.0.1:1/0", channel="test")
    manager.server = mock.Mock()
    return manager


def test_an_emit_is_published_before_local_sockets_get_it_and_a_failed_publish_raises():
    manager = _manager()
    manager.redis = mock.Mock()
    manager.connected = True
    calls = []
    manager.redis.publish.side_effect = lambda *args: calls.append("publish")
    with mock.patch.object(manager, "_handle_emit", side_effect=lambda message: calls.append("local")):
        manager.emit("message:new", {"x": 1}, to=["user:a"])
        assert calls == ["publish", "local"]
        manager.redis.publish.side_effect = redis.ConnectionError("gone")
        with mock.patch.object(manager, "_redis_connect", side_effect=redis.ConnectionError("gone")):
            with pytest.raises(redis.ConnectionError):
                manager.emit("message:new", {"x": 2}, to=["user:a"])
        assert calls == ["publish", "local"]  # nobody got the failed one, so a retry doubles nothing


def test_the_listener_resubscribes_promptly_and_says_whether_it_is_subscribed():
    manager = _manager()
    attempts = []

    def connect():
        attempts.append(manager.subscribed)
        if len(attempts) <= 6:
            raise redis.ConnectionError("down")
        manager.pubsub = mock.Mock()
        manager.pubsub.listen.return_value = iter([{"type": "message"}])

    sleeps = []
    with mock.patch.object(manager, "_redis_connect", side_effect=connect), \
            mock.patch.object(sockets_module.time, "sleep", side_effect=sleeps.append):
        listener = manager._redis_listen_with_retries()
        assert next(listener) == {"type": "message"}
    assert manager.subscribed and not any(attempts)
    assert len(sleeps) == 6 and max(sleeps) <= sockets_module.RESUBSCRIBE_MAX_SECONDS
    assert sum(sleeps) < 3  # python-socketio's own back-off: 1 + 2 + 4 + 8 + 16 + 32 s


def test_stopping_closes_transports_without_a_disconnect_packet():
    server = SocketServer()
    server.sio = mock.Mock()
    server.presence = mock.Mock()
    transports = [mock.Mock(), mock.Mock()]
    server.sio.eio.sockets = {"a": transports[0], "b": transports[1]}
    server.users_by_sid = {"s1": ANN}
    with mock.patch("nameko.extensions.SharedExtension.stop"):
        server.stop()
    for transport in transports:
        assert transport.close.call_args.kwargs["abort"] is True
    assert not server.sio.disconnect.called
    server.presence.disconnected.assert_called_once_with(ANN, "s1")
    assert server._stopping  # new (re)connections are sent elsewhere


def test_a_push_that_a_replica_did_not_hear_fails_after_reaching_the_local_sockets():
    manager = _manager()
    manager.redis = mock.Mock()
    manager.connected = True
    manager.peers.heard("replica b")
    manager.peers.heard("replica c")
    manager.redis.publish.return_value = 2  # this replica and b: c is still re-subscribing
    with mock.patch.object(socketio.PubSubManager, "_handle_emit") as deliver:
        with pytest.raises(DependencyUnavailable):
            manager.emit("message:new", {"x": 1}, to=["user:a"], push_id=EVENT)
        assert deliver.call_count == 1
        manager.redis.publish.return_value = 3  # c is back: the retry is published, local sockets skip it
        manager.emit("message:new", {"x": 1}, to=["user:a"], push_id=EVENT)
        assert deliver.call_count == 1
        manager.redis.publish.return_value = 1  # typing: no push id, nobody waited for
        manager.emit("typing", {"x": 1}, to=["user:a"])
        assert deliver.call_count == 2


def test_peers_are_expected_until_they_leave_or_go_quiet_while_this_replica_listens():
    now = [0.0]
    peers = Peers(timeout_seconds=3, clock=lambda: now[0])
    peers.heard("b"), peers.heard("c")
    assert peers.expected() == 2
    peers.left("c")
    now[0] = 2.0
    assert peers.expected() == 1
    now[0] = 10.0  # Redis was down: nothing heard for a while
    peers.listening_again()  # subscribed again: b gets its time to come back
    now[0] = 12.0
    assert peers.expected() == 1
    now[0] = 13.5  # b never came back (killed meanwhile)
    assert peers.expected() == 0


def test_announcements_of_other_replicas_are_heard_and_never_yielded_as_emits():
    manager = _manager()
    manager.redis, pubsub = mock.Mock(), mock.Mock()
    peers_channel = manager.peers_channel.encode()
    emit = {"type": "message", "channel": b"test", "data": "{}"}
    pubsub.listen.return_value = iter([
        {"type": "message", "channel": peers_channel, "data": '{"host_id": "b", "state": "here"}'},
        {"type": "message", "channel": peers_channel, "data": '{"host_id": "c", "state": "here"}'},
        {"type": "message", "channel": peers_channel, "data": "not json"},
        {"type": "message", "channel": peers_channel, "data": '{"host_id": "c", "state": "leaving"}'},
        {"type": "message", "channel": peers_channel,
         "data": json.dumps({"host_id": manager.host_id, "state": "here"})},  # its own: not a peer
        emit,
    ])
    with mock.patch.object(manager, "_redis_connect", side_effect=lambda: setattr(manager, "pubsub", pubsub)):
        assert next(manager._redis_listen_with_retries()) == emit
    pubsub.subscribe.assert_called_once_with("test", "test:replicas")
    assert manager.peers.expected() == 1
    announced = json.loads(manager.redis.publish.call_args.args[1])  # "here", as soon as it is subscribed
    assert manager.redis.publish.call_args.args[0] == "test:replicas"
    assert announced == {"host_id": manager.host_id, "state": "here"}
