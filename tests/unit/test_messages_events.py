"""Event handlers that requeue what a down dependency failed, and only that
(services.shared.events, used by the messages and realtime services)."""
from unittest import mock

import pytest
import redis
from sqlalchemy.exc import OperationalError

from services.shared import events
from services.shared.errors import DependencyUnavailable, InvalidInput


def handler():
    entrypoint = events.DurableEventHandler("messages", "message_sent")
    entrypoint.queue_consumer = mock.Mock()
    return entrypoint


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
    assert not entrypoint.queue_consumer.ack_message.called


@pytest.mark.parametrize("exc", [KeyError("message"), TypeError("junk"), InvalidInput(), ValueError()])
def test_a_poison_event_is_acknowledged_not_requeued_forever(exc):
    entrypoint, message = handler(), mock.Mock()
    with mock.patch.object(events.eventlet, "sleep") as sleep:
        entrypoint.handle_result(message, mock.Mock(), exc_info=(type(exc), exc, None))
    assert not sleep.called and not entrypoint.queue_consumer.requeue_message.called
    entrypoint.queue_consumer.ack_message.assert_called_once_with(message)


def test_a_handled_event_is_acknowledged():
    entrypoint, message = handler(), mock.Mock()
    entrypoint.handle_result(message, mock.Mock(), result=None)
    entrypoint.queue_consumer.ack_message.assert_called_once_with(message)


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


def test_messages_offline_notification_fails_rather_than_dropping_when_presence_is_down():
    from nameko.testing.services import worker_factory

    from services.messages.service import MessagesService

    service = worker_factory(MessagesService)
    service.presence.online_among.side_effect = redis.ConnectionError("down")
    with mock.patch("services.messages.notifications.first_delivery", return_value=True):
        with pytest.raises(redis.ConnectionError):
            service.on_message_sent({"event_id": "55555555-5555-4555-8555-555555555555",
                                     "message": {"sender_id": "a"}, "recipient_ids": ["a", "b"]})
    assert not service.db.session.commit.called  # the claim is rolled back with the rest
    assert events.is_transient(redis.ConnectionError("down"))
