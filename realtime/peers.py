"""The other realtime replicas, as this one hears them on the Redis channel.

Pub/sub keeps nothing for a subscriber that is not listening: after a Redis
restart every replica re-subscribes, each at its own moment, and what one
publishes before another is back reaches none of the other's sockets. So each
replica announces itself on a side channel every HEARTBEAT_SECONDS while it is
subscribed, and a push counts as published only when PUBLISH answers that
every replica heard it (realtime.sockets); otherwise it is retried, and the
replicas that had it drop the repeat (realtime.delivered).

A replica is expected until it says it is leaving (a graceful stop) or has not
been heard for TIMEOUT_SECONDS of this replica's own listening: on every
(re)subscription the clock of every known peer starts again, so peers that
went quiet because Redis was down are waited for, not forgotten.
"""
import time
from collections.abc import Callable

HEARTBEAT_SECONDS = 1.0
# A killed replica delays pushes by at most this long (they are retried, not lost).
TIMEOUT_SECONDS = 3.0


class Peers:
    def __init__(self, timeout_seconds: float = TIMEOUT_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._last_heard: dict[str, float] = {}  # host id -> when
        self._timeout = timeout_seconds
        self._clock = clock

    def heard(self, host_id: str) -> None:
        self._last_heard[host_id] = self._clock()

    def left(self, host_id: str) -> None:
        self._last_heard.pop(host_id, None)

    def listening_again(self) -> None:
        """This replica has just (re)subscribed: give every known peer time to as well."""
        now = self._clock()
        for host_id in self._last_heard:
            self._last_heard[host_id] = now

    def expected(self) -> int:
        """How many other replicas should hear a publish now."""
        cutoff = self._clock() - self._timeout
        for host_id in [host for host, heard_at in self._last_heard.items() if heard_at < cutoff]:
            del self._last_heard[host_id]
        return len(self._last_heard)
