"""Auth's entrypoints and collaborators in isolation (Nameko's worker_factory)."""
import io
import json
from unittest import mock

import bcrypt
import eventlet
import pytest
from nameko.testing.services import worker_factory
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.auth.dependencies import LoginThrottle, Passwords
from services.auth.service import AuthService
from services.shared.config import load_config
from services.shared.errors import InvalidInput, MalformedRequest, NotFound, RateLimited, UnsupportedType


def json_request(body, user_id=None, content_type="application/json"):
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    raw = raw.encode() if isinstance(raw, str) else raw
    builder = EnvironBuilder(method="POST", input_stream=io.BytesIO(raw),
                             content_type=content_type, content_length=len(raw))
    request = Request(builder.get_environ())
    request.user_id = user_id
    return request


def validated(handler, request):
    """Run the validation the handler's @http declaration does before any worker."""
    (entrypoint,) = handler.nameko_entrypoints
    entrypoint._validate(request)
    return request


def test_register_is_validated_before_any_worker_runs():
    with pytest.raises(InvalidInput) as failure:
        validated(AuthService.register, json_request({"email": "not-an-email", "username": "A!", "password": "x"}))
    assert set(failure.value.details) == {"email", "username", "password"}


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_login_rejects_bodies_that_are_not_json_objects(body):
    with pytest.raises(MalformedRequest):
        validated(AuthService.login, json_request(body))


def test_login_rejects_other_content_types():
    with pytest.raises(UnsupportedType):
        validated(AuthService.login, json_request("login=a&password=b",
                                                  content_type="application/x-www-form-urlencoded"))


def test_unknown_fields_are_named():
    with pytest.raises(InvalidInput) as failure:
        validated(AuthService.login, json_request({"login": "ann", "password": "x", "admin": True}))
    assert "admin" in failure.value.details


def test_register_normalises_and_hands_the_domain_clean_data():
    service = worker_factory(AuthService)
    request = validated(AuthService.register, json_request(
        {"email": " Ann@Example.COM ", "username": "Ann_1", "password": "long enough"}))
    with mock.patch("services.auth.accounts.register", return_value={"user": {}}) as register:
        status, _ = service.register(request)
    assert status == 201
    assert register.call_args.kwargs == {"email": "ann@example.com", "username": "ann_1",
                                         "password": "long enough", "display_name": None}


def test_login_passes_the_client_address_to_the_throttle():
    service = worker_factory(AuthService)
    request = validated(AuthService.login, json_request({"login": "ann", "password": "pw"}))
    with mock.patch("services.auth.accounts.login", return_value={}) as login:
        service.login(request)
    assert login.call_args.args[4:] == ("ann", "pw", request.remote_addr)


def test_profile_of_a_non_uuid_is_not_found_without_a_query():
    service = worker_factory(AuthService)
    with pytest.raises(NotFound):
        service.get_profile(json_request({}, user_id="2c1b6f3e-5a4d-4b8e-9c1f-0a2b3c4d5e6f"), id="1 OR 1=1")
    assert not service.db.session.method_calls


def test_rpc_get_users_ignores_ids_that_are_not_uuids():
    service = worker_factory(AuthService)
    with mock.patch("services.auth.accounts.users_by_ids", return_value=[]) as lookup:
        service.get_users(["7c9e6679-7425-40de-944b-e07fc1f90ae7", "nope", 42, None])
    assert lookup.call_args.args[1] == ["7c9e6679-7425-40de-944b-e07fc1f90ae7"]


def test_production_bcrypt_cost_is_12():
    import os
    saved = os.environ.pop("BCRYPT_ROUNDS", None)
    try:
        assert load_config()["BCRYPT_ROUNDS"] == 12
    finally:
        if saved is not None:
            os.environ["BCRYPT_ROUNDS"] = saved


def test_unknown_login_costs_a_full_password_check():
    passwords = Passwords(rounds=4)
    with mock.patch("services.auth.dependencies.bcrypt.checkpw", wraps=bcrypt.checkpw) as checkpw:
        assert passwords.verify("whatever password", None) is False
        assert passwords.verify("whatever password", passwords.hash("another password")) is False
    assert checkpw.call_count == 2  # the same work whether or not the account exists


def test_passwords_over_72_bytes_never_match_their_prefix():
    passwords = Passwords(rounds=4)
    stored = passwords.hash("a" * 72)
    assert passwords.verify("a" * 72, stored) is True
    assert passwords.verify("a" * 72 + "tail", stored) is False


def test_hashing_does_not_block_the_eventlet_hub():
    passwords = Passwords(rounds=12)
    ticks = []

    def ticker():
        while True:
            ticks.append(1)
            eventlet.sleep(0.005)

    thread = eventlet.spawn(ticker)
    try:
        passwords.hash("correct horse battery")
    finally:
        thread.kill()
    # A cost-12 hash takes a few hundred milliseconds; had it run on the hub,
    # the ticker would have run at most once.
    assert len(ticks) > 5


class FakeRedis:
    """In-memory stand-in for the few Redis calls the throttle makes."""

    def __init__(self):
        self.values, self.ttls = {}, {}

    def pipeline(self):
        return FakePipeline(self)

    def delete(self, key):
        self.values.pop(key, None)

    def set(self, key, value, nx=False, ex=None):
        if nx and key in self.values:
            return None
        self.values[key], self.ttls[key] = value, ex
        return True

    def ttl(self, key):
        return self.ttls.get(key, -2)


class FakePipeline:
    def __init__(self, redis):
        self.redis, self.replies = redis, []

    def get(self, key):
        self.replies.append(self.redis.values.get(key))

    def incr(self, key, by=1):
        self.redis.values[key] = self.redis.values.get(key, 0) + by
        self.replies.append(self.redis.values[key])

    def decr(self, key):
        self.incr(key, -1)

    def delete(self, key):
        self.redis.delete(key)
        self.replies.append(1)

    def expire(self, key, seconds, nx=False):
        if not (nx and key in self.redis.ttls):
            self.redis.ttls[key] = seconds
        self.replies.append(True)

    def execute(self):
        replies, self.replies = self.replies, []
        return replies


def _throttle(**limits):
    """A throttle of wrong passwords alone (attempts in all unbounded)."""
    return LoginThrottle(FakeRedis(), max_attempts_per_account=10**6, max_attempts_per_address=10**6, **limits)


def _guess(throttle, account, address):
    throttle.reserve(account, address)
    throttle.failed(account, address)


def test_an_address_that_keeps_guessing_one_account_is_shut_out_of_it_and_no_one_else_is():
    throttle = _throttle(max_per_account=3, max_per_address=100, window_seconds=600)
    for _ in range(3):
        _guess(throttle, "ann-id", "203.0.113.7")
    with pytest.raises(RateLimited) as limited:
        throttle.reserve("ann-id", "203.0.113.7")
    assert limited.value.retry_after == 600 and limited.value.details == {"scope": "account"}
    throttle.reserve("ann-id", "198.51.100.9")  # the owner, elsewhere: slowed at most, never locked out
    throttle.succeeded("ann-id", "198.51.100.9")
    throttle.reserve("bob-id", "203.0.113.7")  # other accounts are unaffected


def test_guesses_spread_over_addresses_are_slowed_not_locked():
    throttle = _throttle(max_per_account=3, max_per_address=100, window_seconds=600)
    for index in range(3):
        _guess(throttle, "ann-id", f"203.0.113.{index}")
    throttle.reserve("ann-id", "203.0.113.50")  # one attempt per SLOW_SECONDS now
    with pytest.raises(RateLimited) as limited:
        throttle.reserve("ann-id", "203.0.113.51")
    assert 0 < limited.value.retry_after <= LoginThrottle.SLOW_SECONDS


def test_concurrent_attempts_are_reserved_before_hashing():
    throttle = _throttle(max_per_account=5, max_per_address=100, window_seconds=600)
    admitted = 0
    for _ in range(50):  # none has finished hashing yet
        try:
            throttle.reserve("ann-id", "203.0.113.7")
            admitted += 1
        except RateLimited:
            pass
    assert admitted == 5


def test_one_account_whatever_login_names_it():
    assert LoginThrottle.account_key("ann-id", "ann") == LoginThrottle.account_key("ann-id", "ann@example.com")
    assert LoginThrottle.account_key(None, " Nobody ") == LoginThrottle.account_key(None, "nobody")


def test_throttle_limits_an_address_across_accounts():
    throttle = _throttle(max_per_account=100, max_per_address=2, window_seconds=60)
    _guess(throttle, "ann-id", "10.0.0.9")
    _guess(throttle, "bob-id", "10.0.0.9")
    with pytest.raises(RateLimited):
        throttle.reserve("carol-id", "10.0.0.9")
