"""Auth without I/O: its rules (sessions, profiles, avatars, throttles), its
answers as the schemas write them, and what its entrypoints hand the domain.
What needs the database is in tests/interface/test_auth.py."""
import io
import json
import time
from datetime import UTC, datetime, timedelta
from unittest import mock

import bcrypt
import eventlet
import pytest
from nameko.testing.services import worker_factory
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.auth import accounts, exceptions, schemas, sessions
from services.auth.dependencies import LoginThrottle, Passwords, UserQuota
from services.auth.models import User
from services.auth.profiles import Profile
from services.auth.service import AuthService
from services.shared.config import load_config
from services.shared.errors import InvalidInput, MalformedRequest, RateLimited, UnsupportedType

ANN_ID = "2c1b6f3e-5a4d-4b8e-9c1f-0a2b3c4d5e6f"
MEDIA_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


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


def ann(**columns):
    """Ann's account as a row (never added to a session)."""
    return User(**{"id": ANN_ID, "email": "ann@example.com", "username": "ann", "display_name": "Ann",
                   "bio": "", "avatar_media_id": None, "is_active": True, "is_private": False,
                   "group_invites": "everyone", "email_verified": False,
                   "created_at": datetime(2026, 11, 23, 18, 0, 0, 123456, tzinfo=UTC), **columns})


# Requests: validated before any worker runs --------------------------------------

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


def test_register_hands_the_domain_the_normalised_names_as_plain_arguments():
    service = worker_factory(AuthService)
    request = validated(AuthService.register, json_request(
        {"email": " Ann@Example.COM ", "username": "Ann_1", "password": "long enough"}))
    with mock.patch("services.auth.accounts.register") as register, \
            mock.patch.object(schemas.SESSION, "dump", return_value={}):
        status, _ = service.register(request)
    assert status == 201
    assert register.call_args.kwargs == {"email": "ann@example.com", "username": "ann_1",
                                         "password": "long enough", "display_name": None}


def test_login_passes_the_client_address_to_the_throttle():
    service = worker_factory(AuthService)
    request = validated(AuthService.login, json_request({"login": "ann", "password": "pw"}))
    with mock.patch("services.auth.accounts.login") as login, \
            mock.patch.object(schemas.SESSION, "dump", return_value={}):
        service.login(request)
    assert login.call_args.args[4:] == ("ann", "pw", request.remote_addr)


def test_every_user_id_in_a_path_is_parsed_at_the_edge_into_the_users_404():
    routes = [entrypoint for name in dir(AuthService)
              for entrypoint in getattr(getattr(AuthService, name), "nameko_entrypoints", ())
              if "<" in getattr(entrypoint, "url", "")]
    assert len(routes) == 12
    for entrypoint in routes:
        # A follow request is named by the id of the user who asked.
        expected = (exceptions.FollowRequestNotFound if "/follow-requests/" in entrypoint.url
                    else exceptions.UserNotFound)
        assert "<uuid:id>" in entrypoint.url and entrypoint.not_found is expected


def test_rpc_get_users_ignores_ids_that_are_not_uuids():
    service = worker_factory(AuthService)
    with mock.patch("services.auth.accounts.users_by_ids", return_value=[]) as lookup:
        assert service.get_users([MEDIA_ID, "nope", 42, None]) == []
    assert lookup.call_args.args[1] == [MEDIA_ID]


# Sessions --------------------------------------------------------------------------

def test_a_reused_refresh_token_is_refused_after_its_family_revocation_is_committed():
    service = worker_factory(AuthService)
    uow = service.outbox.unit_of_work.return_value
    with mock.patch("services.auth.sessions.refresh", return_value=sessions.FAMILY_REVOKED):
        with pytest.raises(exceptions.RefreshTokenReused):
            service.refresh(validated(AuthService.refresh, json_request({"refresh_token": "abc"})))
    # The unit of work was left without an error (it commits), before the refusal.
    uow.__exit__.assert_called_once_with(None, None, None)


class FakeSigner:
    ttl_seconds = 900

    def sign(self, user_id, session_id=None):
        return f"token-of-{user_id}-in-{session_id}"


def test_refresh_tokens_are_stored_as_their_hash_and_expire_after_their_lifetime():
    tokens = sessions.Tokens(FakeSigner(), refresh_ttl_seconds=3600)
    raw, token_hash, expires_at = tokens.new_refresh_token()
    assert token_hash == sessions.hash_refresh_token(raw) != raw and len(token_hash) == 64
    assert timedelta(seconds=3590) < expires_at - datetime.now(UTC) <= timedelta(seconds=3600)
    assert tokens.access_token(ANN_ID, "s1") == f"token-of-{ANN_ID}-in-s1" and tokens.access_ttl_seconds == 900


def test_a_lowered_lifetime_shortens_the_refresh_tokens_already_issued():
    now = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
    tokens = sessions.Tokens(FakeSigner(), refresh_ttl_seconds=3600)
    assert not tokens.refresh_token_too_old(now - timedelta(minutes=59), now)
    assert tokens.refresh_token_too_old(now - timedelta(minutes=60), now)
    assert tokens.refresh_token_too_old(None, now)


# Rules that refuse before anything is read ---------------------------------------------

def test_nobody_follows_themselves():
    with pytest.raises(exceptions.CannotFollowYourself):
        accounts.follow(None, ANN_ID, ANN_ID)  # no unit of work needed: nothing is read


def test_a_registration_over_the_limit_is_refused_before_anything_is_read():
    throttle = mock.Mock()
    throttle.reserve.side_effect = RateLimited(retry_after=60)
    with pytest.raises(RateLimited):
        accounts.register(None, None, None, throttle, "203.0.113.7", "ann@example.com", "ann", "long enough")
    throttle.reserve.assert_called_once_with("203.0.113.7")


def test_a_batch_of_no_ids_reads_nothing():
    assert accounts.users_by_ids(None, []) == []


@pytest.mark.parametrize("media, allowed", [
    ({"owner_id": ANN_ID, "content_type": "image/png"}, True),
    ({"owner_id": ANN_ID, "content_type": "video/mp4"}, False),
    ({"owner_id": MEDIA_ID, "content_type": "image/png"}, False),
    ({"owner_id": ANN_ID}, False),
    (None, False),
])
def test_an_avatar_is_an_image_of_ones_own(media, allowed):
    assert accounts.is_own_image(media, ANN_ID) is allowed


# Answers -------------------------------------------------------------------------------

def test_the_summary_other_services_rely_on_keeps_its_keys_and_values():
    assert schemas.USER_SUMMARY.dump(ann(avatar_media_id=MEDIA_ID)) == {
        "id": ANN_ID, "username": "ann", "display_name": "Ann", "avatar_url": "/media/" + MEDIA_ID}
    assert schemas.USER_SUMMARY.dump([ann()], many=True)[0]["avatar_url"] is None


def test_a_private_user_has_email_and_a_time_to_the_second():
    assert schemas.PRIVATE_USER.dump(Profile(ann(), followers_count=2, following_count=3)) == {
        "id": ANN_ID, "username": "ann", "display_name": "Ann", "avatar_url": None, "bio": "",
        "followers_count": 2, "following_count": 3, "is_following": False,
        "is_private": False, "follow_status": "none", "group_invites": "everyone",
        "email": "ann@example.com", "email_verified": False, "created_at": "2026-11-23T18:00:00Z"}


def test_a_public_user_says_whether_the_viewer_follows_them_and_hides_the_email():
    answer = schemas.PUBLIC_USER.dump(Profile(ann(), 0, 1, follow_status="following"))
    assert answer["is_following"] is True and "email" not in answer and "created_at" not in answer
    assert answer["follow_status"] == "following" and "group_invites" not in answer


def test_a_private_account_is_marked_and_a_pending_request_is_not_a_follow():
    answer = schemas.PUBLIC_USER.dump(Profile(ann(is_private=True), 0, 0, follow_status="requested"))
    assert answer["is_private"] is True and answer["follow_status"] == "requested"
    assert answer["is_following"] is False


@pytest.mark.parametrize("changes, field", [
    ({"is_private": "yes"}, "is_private"),
    ({"is_private": 1}, "is_private"),
    ({"is_private": None}, "is_private"),
    ({"group_invites": "friends"}, "group_invites"),
    ({"group_invites": None}, "group_invites"),
])
def test_privacy_settings_take_only_their_values(changes, field):
    assert field in schemas.ProfileUpdate().validate(changes)


def test_privacy_settings_are_taken_as_given():
    assert schemas.ProfileUpdate().load({"is_private": True, "group_invites": "nobody"}) == {
        "is_private": True, "group_invites": "nobody"}


def test_a_session_answer():
    signed_in = sessions.SignedIn(user=Profile(ann(), 0, 0), access_token="a", refresh_token="r", expires_in=900)
    answer = schemas.SESSION.dump(signed_in)
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 900 and answer["user"]["email"]


def test_operators_see_whether_an_account_is_closed():
    assert schemas.OPERATOR_USER.dump(Profile(ann(is_active=False), 0, 0))["is_active"] is False


# Passwords and throttles -----------------------------------------------------------------

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


@pytest.mark.parametrize("concurrency", [1, 2])
def test_no_more_hashes_run_at_once_than_configured(concurrency):
    passwords = Passwords(rounds=4, concurrency=concurrency)
    stored = passwords.hash("correct horse battery")
    spans = []
    checkpw = bcrypt.checkpw

    def timed_checkpw(*args):
        started = time.monotonic()
        try:
            return checkpw(*args)
        finally:
            spans.append((started, time.monotonic()))

    with mock.patch("services.auth.dependencies.bcrypt.checkpw", timed_checkpw):
        pool = eventlet.GreenPool()
        answers = list(pool.imap(lambda _: passwords.verify("correct horse battery", stored), range(8)))
    assert answers == [True] * 8
    # However many workers verify at once, no moment sees more than `concurrency` hashing.
    assert max(sum(start <= moment < end for start, end in spans) for moment, _ in spans) <= concurrency


def test_hashing_needs_room_for_one_hash_at_least():
    with pytest.raises(ValueError, match="BCRYPT_CONCURRENCY"):
        Passwords(rounds=4, concurrency=0)


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

    def decr(self, key):
        self.values[key] = self.values.get(key, 0) - 1
        return self.values[key]


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


def test_a_user_quota_counts_per_user_and_refuses_past_the_limit_until_the_window_ends():
    throttle = UserQuota(FakeRedis(), "exports", max_per_user=2, window_seconds=600, scope="account",
                         message="Too many exports.")
    throttle.reserve(ANN_ID)
    throttle.reserve(ANN_ID)
    with pytest.raises(RateLimited) as refused:
        throttle.reserve(ANN_ID)
    assert refused.value.retry_after == 600 and refused.value.details == {"scope": "account"}
    throttle.reserve("someone else")
