"""realtime when Redis fails or a replica stops: no push is lost or doubled,
sockets are left to reconnect, the channel listener comes back at once."""
from unittest import mock

import pytest
import redis
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
from nameko.testing.services import worker_factory

from realtime import sockets as sockets_module
from realtime.membership import MemberCache
from realtime.service import RealtimeService
from realtime.sockets import ChannelManager, SocketServer
from services.messages.service import MessagesService
from services.shared.errors import DependencyUnavailable
from services.shared.events import DurableEventHandler

ANN = "11111111-1111-4111-8111-111111111111"
EVENT = "55555555-5555-4555-8555-555555555555"
PAYLOAD = {"event_id": EVENT, "message": {"id": "m"}, "recipient_ids": [ANN]}


def event_handlers(service_class):
    for name in dir(service_class):
        for extension in getattr(getattr(service_class, name), ENTRYPOINT_EXTENSIONS_ATTR, ()):
            if "EventHandler" in type(extension).__name__:
                yield name, extension


@pytest.mark.parametrize("service_class", [RealtimeService, MessagesService])
def test_every_event_handler_requeues_what_a_down_dependency_failed(service_class):
    handlers = dict(event_handlers(service_class))
    assert handlers
    assert all(isinstance(handler, DurableEventHandler) and handler.requeue_on_error
               for handler in handlers.values()), handlers


def test_a_push_that_cannot_be_published_gives_its_claim_back_and_fails():
    service = worker_factory(RealtimeService, members=MemberCache())
    service.redis.set.return_value = True
    service.sockets.emit_to_users.side_effect = redis.ConnectionError("gone")
    with pytest.raises(redis.ConnectionError):
        service.on_message_sent(PAYLOAD)
    service.redis.delete.assert_called_once_with("realtime:pushed:" + EVENT)


def test_nothing_is_pushed_or_claimed_while_the_replica_is_not_subscribed():
    service = worker_factory(RealtimeService, members=MemberCache())
    service.sockets.check_subscribed.side_effect = DependencyUnavailable()
    with pytest.raises(DependencyUnavailable):
        service.on_message_sent(PAYLOAD)
    assert not service.redis.set.called and not service.sockets.emit_to_users.called


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
