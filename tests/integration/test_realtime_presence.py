"""Presence in the real Redis: online while a socket's entry has not lapsed."""
import uuid

import pytest

from services.shared.presence import TTL_SECONDS, Presence
from services.shared.redis import redis_from_config

pytestmark = pytest.mark.integration


@pytest.fixture
def clock():
    return [1_000_000.0]


@pytest.fixture
def presence(config, clock):
    client = redis_from_config(config)
    yield Presence(client, now=lambda: clock[0])
    client.close()


def test_online_while_any_socket_is_live(presence, clock):
    ann, bob = str(uuid.uuid4()), str(uuid.uuid4())
    presence.connected(ann, "phone")
    presence.connected(ann, "laptop")
    assert presence.online_among([ann, bob]) == {ann}
    presence.disconnected(ann, "phone")
    assert presence.online_among([ann]) == {ann}
    presence.disconnected(ann, "laptop")
    assert presence.online_among([ann]) == set()


def test_sockets_of_a_vanished_server_lapse_unless_refreshed(presence, clock):
    ann, bob = str(uuid.uuid4()), str(uuid.uuid4())
    presence.connected(ann, "a")
    presence.connected(bob, "b")
    clock[0] += TTL_SECONDS - 1
    presence.refresh({"b": bob})  # only bob's server is still alive
    clock[0] += 2
    assert presence.online_among([ann, bob]) == {bob}
    assert presence.online_among([]) == set()
