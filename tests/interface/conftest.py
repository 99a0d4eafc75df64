"""Interface tests: one service in a Nameko container, in this test process,
against the real PostgreSQL and RabbitMQ, with its RPC peers replaced.

    def test_something(run_service):
        service = run_service(EventsService, "auth")
        service.peers["auth"].get_users.return_value = [...]
        answer = service.api.get("/events/...", user=service.user(user_id))

The containers get a database and a vhost of their own (see
tests.conftest.fresh_database): their outbox relays and event consumers
never meet those of the system the end-to-end tests run.
"""
import uuid

import pytest
from nameko.testing.services import replace_dependencies

from services.shared.migrations import SERVICES
from services.shared.tokens import signer_from_file
from tests.conftest import TEST_NAME, TEST_PORT, Api, fresh_database, reset_vhost

INTERFACE_PORT = TEST_PORT + 170


@pytest.fixture(scope="session")
def interface_config(config):
    url = fresh_database("interface")
    return dict(
        config,
        AMQP_URI=reset_vhost(TEST_NAME + "_interface"),
        DB_URIS={f"{service}:Base": url for service in SERVICES},
        WEB_SERVER_ADDRESS=f"127.0.0.1:{INTERFACE_PORT}",
    )


class RunningService:
    def __init__(self, container, peers, config):
        self.container = container
        self.peers = peers
        self.api = Api(f"http://127.0.0.1:{INTERFACE_PORT}")
        self._signer = signer_from_file(config["JWT_PRIVATE_KEY_PATH"], 600)

    def user(self, user_id=None):
        """Credentials of a user (a new id unless given), as Api.request takes them."""
        user_id = user_id or str(uuid.uuid4())
        return {"id": user_id, "access_token": self._signer.sign(user_id)}


@pytest.fixture
def run_service(container_factory, interface_config):
    """Start a service class with the named RPC peers replaced by mocks."""

    def run(service_cls, *peers, **config):
        container = container_factory(service_cls, dict(interface_config, **config))
        replaced = replace_dependencies(container, *peers) if peers else ()
        if len(peers) == 1:
            replaced = (replaced,)
        container.start()
        return RunningService(container, dict(zip(peers, replaced, strict=True)), interface_config)

    return run
