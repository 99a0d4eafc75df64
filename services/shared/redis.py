"""A Redis client per process, with timeouts so a dead Redis fails fast."""
import redis
from nameko.extensions import DependencyProvider


def redis_from_config(config):
    return redis.Redis.from_url(
        config["REDIS_URL"],
        socket_timeout=2,
        socket_connect_timeout=2,
        health_check_interval=15,
        decode_responses=True,
    )


class Redis(DependencyProvider):
    def setup(self):
        self.client = redis_from_config(self.container.config)

    def stop(self):
        self.client.close()

    kill = stop

    def get_dependency(self, worker_ctx):
        return self.client
