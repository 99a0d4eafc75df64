"""Every RPC method uses the broker-tolerant entrypoint of services.shared.rpc, and
which failures of a call or a reply count as the broker's."""
from unittest import mock

import pytest
from kombu.exceptions import OperationalError
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
from nameko.rpc import Rpc as NamekoRpc

from services.auth.service import AuthService
from services.events.service import EventsService
from services.messages.service import MessagesService
from services.shared import rpc as shared_rpc
from services.shared.errors import DependencyUnavailable
from services.shared.failures import as_domain_error


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


# What a reply publish on a dead broker connection raises: kombu's error, the
# socket's own (not all of them ConnectionErrors) and py-amqp's bare OSError.
@pytest.mark.parametrize("failure", [
    OperationalError("gone"), BrokenPipeError(), ConnectionResetError(), TimeoutError(), OSError("Socket closed"),
])
def test_a_reply_the_broker_cannot_take_leaves_the_request_for_redelivery(failure):
    consumer = shared_rpc.BrokerTolerantRpcConsumer()
    consumer.queue_consumer = mock.Mock()
    message = object()
    with mock.patch.object(shared_rpc.RpcConsumer, "handle_result", side_effect=failure):
        assert consumer.handle_result(message, "answer", None) == ("answer", None)
    consumer.queue_consumer.requeue_message.assert_called_once_with(message)


@pytest.mark.parametrize("failure", [ConnectionResetError(), OSError("Socket closed")])
def test_a_reply_that_cannot_be_acknowledged_still_reaches_its_caller(failure):
    listener = shared_rpc.BrokerTolerantReplyListener()
    listener.queue_consumer = mock.Mock()
    listener.queue_consumer.ack_message.side_effect = failure
    waiting = listener.get_reply_event("call-1")
    message = mock.Mock(properties={"correlation_id": "call-1"})
    listener.handle_message({"result": "answer", "error": None}, message)
    assert waiting.wait() == {"result": "answer", "error": None}


def test_every_rpc_proxy_shares_the_tolerant_reply_listener():
    assert type(shared_rpc.BoundedRpcProxy("auth").rpc_reply_listener) is shared_rpc.BrokerTolerantReplyListener


def test_a_call_the_broker_cannot_take_is_a_dependency_failure():
    method = mock.Mock()
    method.call_async.side_effect = OSError("Socket closed")
    with pytest.raises(DependencyUnavailable) as raised:
        shared_rpc.call_with_deadline("events", method, 1, (), {})
    assert raised.value.details == {"service": "events"}


def test_an_os_error_outside_the_broker_stays_a_bug():
    assert as_domain_error(FileNotFoundError("media/missing.jpg")) is None
    assert isinstance(as_domain_error(ConnectionRefusedError()), DependencyUnavailable)
