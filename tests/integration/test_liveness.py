"""The liveness probe answers while every worker is busy: `GET /health` never
queues for a worker behind slow logins, so Kubernetes does not restart a
process that is merely busy."""
import re
import threading

import pytest
import requests

from tests.conftest import Api, eventually, lone_auth

pytestmark = pytest.mark.integration

MAX_WORKERS = 2
LOGINS = MAX_WORKERS + 2  # every worker busy, and two logins waiting for one


@pytest.fixture
def busy_auth(config):
    # Cost 14: each hash takes a core for a second or more, one at a time
    # (BCRYPT_CONCURRENCY 1), so the logins stay in flight for seconds while
    # a /health round trip takes a few milliseconds.
    with lone_auth("liveness", 104, MAX_WORKERS=str(MAX_WORKERS), BCRYPT_ROUNDS="14",
                   BCRYPT_CONCURRENCY="1") as running:
        yield running


def worker_pool(base_url):
    """auth's workers in use and work waiting for one, from /metrics (served without a worker)."""
    text = requests.get(base_url + "/metrics", timeout=10).text
    return {key: int(float(re.search(rf'^lifytp_worker_pool_{key}\{{service="auth"\}} (\S+)$', text, re.M).group(1)))
            for key in ("in_use", "waiting")}


def test_health_answers_while_every_worker_is_busy_with_logins(busy_auth):
    base = busy_auth.base_url
    user = Api(base).register()
    login = {"login": user["user"]["username"], "password": user["password"]}
    answered = []

    def log_in():
        answered.append(requests.post(base + "/auth/login", json=login, timeout=120).status_code)

    logins = [threading.Thread(target=log_in) for _ in range(LOGINS)]
    for thread in logins:
        thread.start()
    try:
        eventually(lambda: worker_pool(base) == {"in_use": MAX_WORKERS, "waiting": LOGINS - MAX_WORKERS}, timeout=30)
        probes = [requests.get(base + "/health", timeout=60) for _ in range(5)]
        assert [probe.status_code for probe in probes] == [200] * 5
        assert probes[0].json() == {"status": "ok", "service": "auth"}
        # Answered while every login was still in flight: no probe waited for a worker.
        assert answered == []
        assert worker_pool(base)["in_use"] == MAX_WORKERS
    finally:
        for thread in logins:
            thread.join(120)
    assert answered == [200] * LOGINS
