"""The messages service's collaborators."""
from typing import Any

from nameko.extensions import DependencyProvider

from services.shared.presence import Presence
from services.shared.redis import redis_from_config


class PresenceProvider(DependencyProvider):
    """Who has a socket open, as the realtime servers record it in Redis."""

    def setup(self) -> None:
        self.presence = Presence(redis_from_config(self.container.config))

    def stop(self) -> None:
        self.presence.redis.close()

    kill = stop

    def get_dependency(self, worker_ctx: Any) -> Presence:
        return self.presence
