"""Who is connected right now, kept in Redis by the realtime servers.

Each user has a sorted set `presence:<user id>` of their socket ids, scored by
when the entry lapses. A realtime server adds a socket on connect, removes it on
disconnect and refreshes its live sockets every REFRESH_SECONDS, so the sockets
of a server that died without saying goodbye lapse by themselves within
TTL_SECONDS. A user is online while any entry has not lapsed.
"""
import time
from collections.abc import Callable, Iterable

import redis as redis_py

TTL_SECONDS = 90
REFRESH_SECONDS = 30


def _key(user_id: str) -> str:
    return "presence:" + user_id


class Presence:
    def __init__(self, redis: redis_py.Redis, now: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self._now = now

    def connected(self, user_id: str, sid: str) -> None:
        self.refresh({sid: user_id})

    def disconnected(self, user_id: str, sid: str) -> None:
        self.redis.zrem(_key(user_id), sid)

    def refresh(self, users_by_sid: dict[str, str]) -> None:
        if not users_by_sid:
            return
        lapses_at = self._now() + TTL_SECONDS
        pipe = self.redis.pipeline(transaction=False)
        for sid, user_id in users_by_sid.items():
            pipe.zadd(_key(user_id), {sid: lapses_at})
            pipe.expire(_key(user_id), TTL_SECONDS)
        pipe.execute()

    def live_sockets(self, user_id: str) -> int:
        return self.redis.zcount(_key(user_id), self._now(), "+inf")

    def online_among(self, user_ids: Iterable[str]) -> set[str]:
        """The subset of user_ids with at least one live socket."""
        user_ids = list(user_ids)
        now = self._now()
        pipe = self.redis.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.zcount(_key(user_id), now, "+inf")
        return {user_id for user_id, live in zip(user_ids, pipe.execute(), strict=True) if live}
