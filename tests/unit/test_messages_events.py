"""Event handlers that requeue what a down dependency failed, and only that,
and refuse a payload that breaks its contract before any worker runs
(services.shared.events, used by every consumer)."""
from unittest import mock

import pytest
import redis
from sqlalchemy.exc import OperationalError

from services.shared import contracts, events
from services.shared.errors import DependencyUnavailable, InvalidInput

ANN = "11111111-1111-4111-8111-111111111111"
EVENT = "55555555-5555-4555-8555-555555555555"


def handler():
    entrypoint = events.DurableEventHandler(contracts.UserFollowed)
    entrypoint.queue_consumer = mock.Mock()
    entrypoint.container = mock.Mock()
    return entrypoint


def test_a_handler_listens_to_the_source_and_type_of_its_contract():
    entrypoint = handler()
    assert (entrypoint.source_service, entrypoint.event_type) == ("auth", "user_followed")
    assert entrypoint.contract is contracts.UserFollowed and entrypoint.requeue_on_error


@pytest.mark.parametrize("exc", [
    redis.ConnectionError("down"), redis.TimeoutError("slow"), OperationalError("SELECT 1", {}, Exception("down")),
    DependencyUnavailable(), ConnectionRefusedError(),
])
def test_an_event_failed_by_a_down_dependency_is_requeued_after_a_pause(exc):
    entrypoint, message = handler(), mock.Mock()
    with mock.patch.object(events.eventlet, "sleep") as sleep:
        entrypoint.handle_result(message, mock.Mock(), exc_info=(type(exc), exc, None))
    sleep.assert_called_once_with(events.REQUEUE_PAUSE_SECONDS)
    entrypoint.queue_consumer.requeue_message.assert_called_once_with(message)
    assert not entrypoint.queue_consumer.ack_message.called and not message.reject.called


@pytest.mark.parametrize("exc", [KeyError("message"), TypeError("junk"), InvalidInput(), ValueError()])
def test_a_poison_event_is_dead_lettered_not_requeued_forever(exc):
    entrypoint, message = handler(), mock.Mock()
    with mock.patch.object(events.eventlet, "sleep") as sleep:
        entrypoint.handle_result(message, mock.Mock(), exc_info=(type(exc), exc, None))
    assert not sleep.called and not entrypoint.queue_consumer.requeue_message.called
    message.reject.assert_called_once_with(requeue=False)


def test_a_handled_event_is_acknowledged():
    entrypoint, message = handler(), mock.Mock()
    entrypoint.handle_result(message, mock.Mock(), result=None)
    entrypoint.queue_consumer.ack_message.assert_called_once_with(message)


@pytest.mark.parametrize("payload", [
    {"domain_event_id": EVENT, "follower_id": ANN},  # a field missing
    {"domain_event_id": EVENT, "follower_id": ANN, "followee_id": "not a uuid"},
    {"follower_id": ANN, "followee_id": ANN},  # no envelope id
    "junk",
])
def test_a_payload_breaking_its_contract_is_dead_lettered_without_a_worker(payload):
    entrypoint, message = handler(), mock.Mock()
    entrypoint.handle_message(payload, message)
    assert not entrypoint.container.spawn_worker.called
    message.reject.assert_called_once_with(requeue=False)
    assert not entrypoint.queue_consumer.ack_message.called and not entrypoint.queue_consumer.requeue_message.called


def test_a_payload_keeping_its_contract_reaches_the_worker_typed():
    entrypoint, message = handler(), mock.Mock(headers={})
    entrypoint.handle_message({"domain_event_id": EVENT, "follower_id": ANN, "followee_id": EVENT}, message)
    _entrypoint, args, _kwargs = entrypoint.container.spawn_worker.call_args.args
    assert args == (contracts.UserFollowed(envelope_id=EVENT, follower_id=ANN, followee_id=EVENT),)
    assert not message.reject.called


@pytest.mark.parametrize("outcome", [
    {"result": None}, {"exc_info": (DependencyUnavailable, DependencyUnavailable(), None)}])
def test_an_ack_or_requeue_the_broker_cannot_take_leaves_the_container_alive(outcome):
    """Seen in the reliability harness: the broker restarted while a worker
    finished, basic_ack raised ConnectionResetError, and Nameko killed the
    whole messages container."""
    entrypoint, message = handler(), mock.Mock()
    entrypoint.queue_consumer.ack_message.side_effect = ConnectionResetError(104, "reset")
    entrypoint.queue_consumer.requeue_message.side_effect = ConnectionResetError(104, "reset")
    with mock.patch.object(events.eventlet, "sleep"):
        entrypoint.handle_result(message, mock.Mock(), **outcome)  # does not raise


def test_a_down_redis_is_a_transient_failure():
    assert events.is_transient(redis.ConnectionError("down"))
