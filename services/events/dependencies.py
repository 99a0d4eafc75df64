"""The events service's collaborators: media storage and the calendar fetcher."""
from typing import Any

from nameko.extensions import DependencyProvider

from services.events.calendars import MAX_ICS_BYTES
from services.events.fetching import Fetcher
from services.events.storage import LocalStorage, S3Storage, storage_from_config

FETCH_TIMEOUT_SECONDS = 10


class MediaStorage(DependencyProvider):
    def setup(self) -> None:
        self.storage = storage_from_config(self.container.config)

    def get_dependency(self, worker_ctx: Any) -> LocalStorage | S3Storage:
        return self.storage


class CalendarFetcher(DependencyProvider):
    def setup(self) -> None:
        ports = str(self.container.config.get("CALENDAR_FETCH_PORTS", "80,443"))
        self.fetcher = Fetcher(MAX_ICS_BYTES, FETCH_TIMEOUT_SECONDS,
                               ports={int(port) for port in ports.split(",") if port.strip()})

    def get_dependency(self, worker_ctx: Any) -> Fetcher:
        return self.fetcher
