"""A replica's bounded memory of the pushes it has delivered to its sockets.

An emit can reach a replica twice: a PUBLISH whose reply was lost (Redis went
away after taking it) is published again when the event is redelivered, and an
operator's outbox replay or a claim lost with Redis's memory re-publishes too.
Every replica drops, on receipt, an emit whose push id it has delivered already,
so a re-publish changes nothing for any socket it holds.

Bounded in time and in count: an id is kept for TTL_SECONDS (far longer than a
redelivery takes: those follow within seconds of the dependency coming back)
unless more than MAX_IDS newer ones arrive first. A replica that restarts
forgets; clients dedupe too (docs/API.md).
"""
import time
from collections import OrderedDict
from collections.abc import Callable

TTL_SECONDS = 3600
MAX_IDS = 200_000  # a UUID string and a float each: about 40 MB when full


class RecentIds:
    def __init__(self, ttl_seconds: float = TTL_SECONDS, max_ids: int = MAX_IDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()  # id -> when first seen, oldest first
        self._ttl = ttl_seconds
        self._max_ids = max_ids
        self._clock = clock

    def first_time(self, key: str) -> bool:
        """Remember key; True the first time it is seen within the window."""
        now = self._clock()
        self._forget_older_than(now - self._ttl)
        if key in self._seen:
            return False
        self._seen[key] = now
        if len(self._seen) > self._max_ids:
            self._seen.popitem(last=False)
        return True

    def _forget_older_than(self, moment: float) -> None:
        while self._seen:
            oldest = next(iter(self._seen.values()))
            if oldest > moment:
                return
            self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)
