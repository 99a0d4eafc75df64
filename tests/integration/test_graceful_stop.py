"""SIGTERM: requests in flight finish with their answers, new ones get a 503
(a load balancer retries them elsewhere), and the process exits cleanly."""
import threading
import time

import pytest
import requests

from tests.conftest import Api, lone_auth

pytestmark = pytest.mark.integration


@pytest.fixture
def slow_auth(config):
    # Cost-12 bcrypt makes each login take a few hundred milliseconds: long
    # enough to be in flight when the signal lands.
    with lone_auth("graceful", 102, BCRYPT_ROUNDS="12") as running:
        yield running


def test_sigterm_finishes_in_flight_requests_then_exits(slow_auth):
    api = Api(slow_auth.base_url)
    user = api.register()
    login = {"login": user["user"]["username"], "password": user["password"]}
    results = []

    def log_in():
        try:
            results.append(requests.post(slow_auth.base_url + "/auth/login", json=login, timeout=30).status_code)
        except requests.RequestException as exc:
            results.append(type(exc).__name__)

    in_flight = [threading.Thread(target=log_in) for _ in range(4)]
    for thread in in_flight:
        thread.start()
    time.sleep(0.15)  # the logins are hashing now
    slow_auth.process.send_signal(15)
    after_signal = []
    for _ in range(20):
        try:
            after_signal.append(requests.get(slow_auth.base_url + "/ready", timeout=5).status_code)
        except requests.RequestException:
            after_signal.append("refused")
            break
        time.sleep(0.02)
    for thread in in_flight:
        thread.join()

    assert results == [200] * 4, results
    # The signal is handled asynchronously, so the first probes may still be
    # served; once the replica says 503 it never serves again.
    first_refusal = next(i for i, status in enumerate(after_signal) if status in (503, "refused"))
    assert set(after_signal[first_refusal:]) <= {503, "refused"}, after_signal
    assert slow_auth.process.wait(30) == 0
