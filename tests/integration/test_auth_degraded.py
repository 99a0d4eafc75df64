"""Auth when what it depends on is down: 503s, never 500s or hangs."""
import time
import uuid

import pytest
import requests

from tests.conftest import TEST_PORT, Api, RunningSystem, lone_auth

pytestmark = pytest.mark.integration

CLOSED_PORT_DB = "postgresql+psycopg2://postgres@127.0.0.1:9/lifytp"


@pytest.fixture
def auth_without_database_or_redis(config):
    running = RunningSystem(TEST_PORT + 100, log_name="auth-degraded", modules=["services.auth.service"],
                            env={"AUTH_DATABASE_URL": CLOSED_PORT_DB, "REDIS_URL": "redis://127.0.0.1:9/0"})
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(running.base_url + "/health", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.3)
        yield running
    finally:
        running.stop()


def test_ready_is_503_and_calls_are_503_while_stores_are_down(auth_without_database_or_redis):
    base = auth_without_database_or_redis.base_url
    assert requests.get(base + "/health", timeout=5).status_code == 200
    ready = requests.get(base + "/ready", timeout=10)
    assert ready.status_code == 503
    assert set(ready.json()["error"]["details"]) == {"database", "redis"}
    login = requests.post(base + "/auth/login", json={"login": "ann", "password": "whatever1"}, timeout=10)
    assert login.status_code == 503
    assert login.headers["Retry-After"]
    register = requests.post(base + "/auth/register", timeout=10, json={
        "email": uuid.uuid4().hex + "@example.com", "username": "u" + uuid.uuid4().hex[:10],
        "password": "long enough"})
    assert register.status_code == 503


@pytest.fixture
def auth_alone(config):
    with lone_auth("alone", 101, RPC_TIMEOUT_SECONDS="1") as running:
        yield running


def test_rpc_to_a_missing_service_is_a_prompt_503(auth_alone):
    api = Api(auth_alone.base_url)
    user = api.register()
    started = time.monotonic()
    response = api.patch("/users/me", user=user, json={"avatar_media_id": str(uuid.uuid4())})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert time.monotonic() - started < 10  # bounded by the RPC deadline, not a hang
