"""A Redis client per process, with timeouts so a dead Redis fails fast; the revocation list."""
from typing import Any

import redis
from nameko.extensions import DependencyProvider

from services.shared.revocation import RevocationList, revocation_list


def redis_from_config(config: dict[str, Any]) -> redis.Redis:
    return redis.Redis.from_url(
        config["REDIS_URL"],
        socket_timeout=2,
        socket_connect_timeout=2,
        health_check_interval=15,
        decode_responses=True,
    )


class Redis(DependencyProvider):
    def setup(self) -> None:
        self.client = redis_from_config(self.container.config)

    def stop(self) -> None:
        self.client.close()

    kill = stop

    def get_dependency(self, worker_ctx: Any) -> redis.Redis:
        return self.client


class Revocations(DependencyProvider):
    """The process's RevocationList (services.shared.revocation), for the
    consumers that write revocations."""

    def setup(self) -> None:
        self.revocations = revocation_list(self.container.config)

    def get_dependency(self, worker_ctx: Any) -> RevocationList:
        return self.revocations
