"""A Redis client per process, with timeouts so a dead Redis fails fast."""
from typing import Any

import redis
from nameko.extensions import DependencyProvider


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
