"""Event handlers that take typed events and do not lose one when a dependency is down.

    @consumes(contracts.UserFollowed)
    def on_user_followed(self, event): ...   # event is a contracts.UserFollowed

The payload is validated against its contract (services.shared.contracts)
before any worker runs. One the contract refuses is a bug of its producer:
it is logged and rejected without requeue, which the broker's `event-queues`
policy dead-letters to `lifytp.dead-letters` for an operator to look at.

Nameko 2's `event_handler` acknowledges an event whose worker raised (unless
`requeue_on_error=True`), so an effect that failed because Redis, PostgreSQL
or an RPC peer was briefly unreachable is lost for good. `consumes`
requeues the event in that case, after a short pause so that a long outage
does not turn into a hot redelivery loop; RabbitMQ then delivers it again (to
this replica or another). Every handler using it must be idempotent: the
consumers here claim each event's envelope id (`uow.first_delivery`: a
PostgreSQL insert in the handler's own unit of work, so a claim and its effect
commit together).

Any other failure (a bug) is logged and dead-lettered the same way:
requeueing it would only repeat the same failure forever.
"""
import logging
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import eventlet
from nameko.events import EventHandler

from services.shared.contracts import DomainEvent, MalformedEvent
from services.shared.errors import DependencyUnavailable
from services.shared.failures import as_domain_error

log = logging.getLogger(__name__)

# Long enough that a store which is down is not hammered (each pause holds a
# worker, so at most max_workers events wait at once), short enough that the
# event follows soon after the store is back.
REQUEUE_PAUSE_SECONDS = 1.0


def is_transient(exc: BaseException) -> bool:
    """True when exc means a dependency was unreachable, not that the event is bad."""
    return isinstance(as_domain_error(exc), DependencyUnavailable)


class DurableEventHandler(EventHandler):
    pause_seconds = REQUEUE_PAUSE_SECONDS

    def __init__(self, contract: type[DomainEvent], **kwargs: Any) -> None:
        kwargs.pop("requeue_on_error", None)
        self.contract = contract
        super().__init__(contract.source, contract.event_type, requeue_on_error=True, **kwargs)

    def handle_message(self, body: object, message: Any) -> None:
        try:
            event = self.contract.from_payload(body)
        except MalformedEvent as exc:
            log.warning("%s.%s: the event is dead-lettered, its payload breaks its contract (%s)",
                        self.source_service, self.event_type, exc)
            self._settle(_dead_letter, message)
            return
        super().handle_message(event, message)

    def handle_message_processed(
        self, message: Any, result: object = None,
        exc_info: tuple[type[BaseException], BaseException, TracebackType | None] | None = None,
    ) -> None:
        if exc_info is not None and is_transient(exc_info[1]):
            log.warning("%s.%s: a dependency is unavailable (%s); the event is requeued",
                        self.source_service, self.event_type, type(exc_info[1]).__name__)
            eventlet.sleep(self.pause_seconds)
            self._settle(self.queue_consumer.requeue_message, message)
            return
        if exc_info is not None:
            log.warning("%s.%s: the event is dead-lettered, its handler failed (%s)",
                        self.source_service, self.event_type, type(exc_info[1]).__name__)
            self._settle(_dead_letter, message)
            return
        self._settle(self.queue_consumer.ack_message, message)

    def _settle(self, settle: Callable[[Any], object], message: Any) -> None:
        # An error here would be fatal to the whole container (Nameko runs this
        # in the worker's result handler). If the broker connection is gone,
        # so is the delivery: the broker hands the event out again once the
        # consumer reconnects, and the handlers are idempotent.
        try:
            settle(message)
        except Exception as exc:
            log.warning("%s.%s: the event could not be settled with the broker (%s); it will be redelivered",
                        self.source_service, self.event_type, type(exc).__name__)


def _dead_letter(message: Any) -> None:
    # As QueueConsumer.ack_message: a message whose connection is gone is the
    # broker's again already.
    if message.channel.connection:
        message.reject(requeue=False)


if TYPE_CHECKING:
    _Handler = TypeVar("_Handler", bound=Callable[..., Any])

    # Nameko's decorator registers the entrypoint on the handler and returns it unchanged.
    def consumes(contract: type[DomainEvent], **kwargs: Any) -> Callable[[_Handler], _Handler]: ...
else:
    consumes = DurableEventHandler.decorator
