"""Every RPC method uses the broker-tolerant entrypoint of services.shared.rpc."""
import pytest
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
from nameko.rpc import Rpc as NamekoRpc

from services.auth.service import AuthService
from services.events.service import EventsService
from services.messages.service import MessagesService
from services.shared import rpc as shared_rpc


def rpc_entrypoints(service_cls):
    for name in dir(service_cls):
        for entrypoint in getattr(getattr(service_cls, name), ENTRYPOINT_EXTENSIONS_ATTR, ()):
            if isinstance(entrypoint, NamekoRpc):
                yield name, entrypoint


@pytest.mark.parametrize("service_cls", [AuthService, EventsService, MessagesService])
def test_rpc_methods_survive_a_broker_outage(service_cls):
    entrypoints = dict(rpc_entrypoints(service_cls))
    assert {"outbox_backlog", "replay_outbox", "counts"} <= set(entrypoints)
    # Nameko's own rpc beside ours would put a second consumer on the queue.
    assert {type(entrypoint) for entrypoint in entrypoints.values()} == {shared_rpc.Rpc}


def test_a_reply_the_broker_cannot_take_leaves_the_request_for_redelivery():
    from unittest import mock

    from kombu.exceptions import OperationalError

    consumer = shared_rpc.BrokerTolerantRpcConsumer()
    consumer.queue_consumer = mock.Mock()
    message = object()
    with mock.patch.object(shared_rpc.RpcConsumer, "handle_result", side_effect=OperationalError("gone")):
        assert consumer.handle_result(message, "answer", None) == ("answer", None)
    consumer.queue_consumer.requeue_message.assert_called_once_with(message)
