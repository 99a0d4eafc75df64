"""Conversation members as the messages service knows them, cached briefly.

Typing indicators arrive several times a second per typing user; asking the
messages service each time would cost an RPC per keystroke. Members of a
conversation are fixed when it is created, so a short-lived cache is safe.
"""
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from nameko.extensions import DependencyProvider

TTL_SECONDS = 60
MAX_ENTRIES = 10_000


class MemberCache:
    def __init__(self, ttl: float = TTL_SECONDS, max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # conversation id -> (when it lapses, member ids), least recently used first
        self._entries: OrderedDict[str, tuple[float, frozenset[str]]] = OrderedDict()
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock

    def members(self, conversation_id: str, fetch: Callable[[str], Iterable[str]]) -> frozenset[str]:
        """Member ids of the conversation, from cache or from fetch(conversation_id)."""
        now = self._clock()
        cached = self._entries.get(conversation_id)
        if cached and cached[0] > now:
            self._entries.move_to_end(conversation_id)
            return cached[1]
        members = frozenset(fetch(conversation_id))
        self._entries[conversation_id] = (now + self._ttl, members)
        self._entries.move_to_end(conversation_id)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return members


class Members(DependencyProvider):
    def setup(self) -> None:
        self.cache = MemberCache()

    def get_dependency(self, worker_ctx: Any) -> MemberCache:
        return self.cache
