"""Revoked accounts and sessions: what every verifier consults besides the signature.

An access token verifies offline (services.shared.tokens) until it expires.
To end it sooner, auth records a `sessions_revoked` domain event
(services.shared.contracts.SessionsRevoked) in the transaction that revokes the
refresh tokens; once that is committed, its consumers write the revocation to
Redis, which every process shares, in two sorted sets:

- `revoked:users`: user id -> not-before (seconds since the epoch): every
  token of the account issued before it is refused (a deleted or deactivated
  account, a password reset);
- `revoked:sessions`: session id -> when it was revoked: every token of that
  session is refused (a sign-out, a password change revoking the other
  sessions, a reused refresh token).

An entry is dropped once it is older than the oldest token any verifier
accepts (ACCESS_TOKEN_MAX_AGE_SECONDS): by then every token it refuses is
refused for its age anyway, so the sets hold only the last hour's
revocations. The sets themselves have no expiry, so Redis never evicts them
under memory pressure (the deployments evict volatile keys only). A Redis that
restarts empty has lost them: auth writes them again from PostgreSQL when
`revoked:seeded` is missing (see services.auth.service).

A verifier asks once per request: one round trip (two ZSCOREs, pipelined).
When Redis does not answer within a short timeout, the token is taken on its
signature alone (fail open) unless REVOCATION_FAIL_CLOSED is set
(docs/ARCHITECTURE.md says why), and Redis is not asked again for a moment, so
an outage costs no request the timeout.
"""
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import redis

from services.shared.contracts import SessionsRevoked
from services.shared.tokens import VerifiedToken, max_token_age

log = logging.getLogger(__name__)

# How long a verifier waits for Redis before it decides without it.
CHECK_TIMEOUT_SECONDS = 0.25
# After Redis failed to answer, how long verifiers decide without asking it.
RETRY_AFTER_SECONDS = 1.0

USERS_KEY = "revoked:users"
SESSIONS_KEY = "revoked:sessions"
# Set once the sets hold every revocation PostgreSQL knows of; missing after
# Redis restarted empty.
SEEDED_KEY = "revoked:seeded"


@dataclass(frozen=True)
class Revocation:
    """One revocation: these sessions of the account, and with not_before every
    token of the account issued before that time (seconds since the epoch)."""
    user_id: str
    session_ids: tuple[str, ...] = ()
    not_before: int | None = None

    def revokes(self, token: VerifiedToken) -> bool:
        return token.user_id == self.user_id and is_revoked(
            token, self.not_before, token.session_id in self.session_ids)


def is_revoked(token: VerifiedToken, user_not_before: float | None, session_revoked: bool) -> bool:
    """Whether a token (its signature and age already checked) is revoked, given
    its account's not-before time (or None) and whether its session is revoked.

    `iat` has whole seconds, so a token issued in the very second of a
    revocation is not refused by the not-before time: a sign-in right after a
    password reset must work. A session-bearing token of that second is
    refused all the same, through its session (revoking every session lists
    each one); one issued before sessions were named may live on for that second.
    """
    if session_revoked and token.session_id is not None:
        return True
    return user_not_before is not None and token.issued_at < user_not_before


class RevocationUnknown(Exception):
    """Redis did not answer, and revocations fail closed."""


class RevocationList:
    """The revocations in Redis: written by consumers of `sessions_revoked`,
    read by every verifier."""

    def __init__(self, client: redis.Redis, ttl_seconds: int, fail_closed: bool = False,
                 retry_after_seconds: float = RETRY_AFTER_SECONDS) -> None:
        self.redis = client
        self.ttl_seconds = ttl_seconds
        self.fail_closed = fail_closed
        self.retry_after_seconds = retry_after_seconds
        self._unreachable_until = 0.0

    def is_revoked(self, token: VerifiedToken) -> bool:
        """True if the token is revoked; without Redis, False (fail open) or
        RevocationUnknown (fail closed)."""
        now = time.monotonic()
        if now < self._unreachable_until:
            return self._without_redis()
        pipe = self.redis.pipeline(transaction=False)
        pipe.zscore(USERS_KEY, token.user_id)
        if token.session_id is not None:
            pipe.zscore(SESSIONS_KEY, token.session_id)
        try:
            found = pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError):
            self._unreachable_until = now + self.retry_after_seconds
            log.warning("Redis did not answer the revocation check; for %.1f s tokens are %s",
                        self.retry_after_seconds, "refused" if self.fail_closed else "taken on their signature")
            return self._without_redis()
        return is_revoked(token, _number(found[0]), len(found) > 1 and found[1] is not None)

    def _without_redis(self) -> bool:
        if self.fail_closed:
            raise RevocationUnknown()
        return False

    def apply(self, *revocations: Revocation, now: float | None = None) -> None:
        """Write revocations (idempotent: the same one twice changes nothing, and
        an account's not-before only ever rises), and drop the entries too old
        to refuse anything; raises when Redis is down, so that the event is
        delivered again."""
        now = time.time() if now is None else now
        sessions = {session_id: now for revocation in revocations for session_id in revocation.session_ids}
        users: dict[str, float] = {}
        for revocation in revocations:
            if revocation.not_before is not None:
                users[revocation.user_id] = max(users.get(revocation.user_id, 0), revocation.not_before)
        pipe = self.redis.pipeline(transaction=False)
        if sessions:
            # NX: a session keeps its first revocation time, so its entry goes an hour after it.
            pipe.zadd(SESSIONS_KEY, sessions, nx=True)
        if users:
            pipe.zadd(USERS_KEY, users, gt=True)
        oldest = now - self.ttl_seconds
        pipe.zremrangebyscore(SESSIONS_KEY, "-inf", oldest)
        pipe.zremrangebyscore(USERS_KEY, "-inf", oldest)
        pipe.execute()

    def is_seeded(self) -> bool:
        return bool(self.redis.exists(SEEDED_KEY))

    def seed(self, revocations: list[Revocation]) -> None:
        """Write what PostgreSQL knows of (after Redis restarted empty), then mark it written."""
        self.apply(*revocations)
        self.redis.set(SEEDED_KEY, 1)


def _number(value: object) -> float | None:
    try:
        number = float(value) if isinstance(value, (str, bytes, int, float)) else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def revocation_client(config: dict[str, Any]) -> redis.Redis:
    """A Redis client for the revocation check: short timeouts, no retries
    (a verifier decides without Redis rather than make the request wait)."""
    return redis.Redis.from_url(
        config["REDIS_URL"],
        socket_timeout=CHECK_TIMEOUT_SECONDS,
        socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
        retry_on_timeout=False,
        health_check_interval=15,
        decode_responses=True,
    )


def fails_closed(config: dict[str, Any]) -> bool:
    return str(config.get("REVOCATION_FAIL_CLOSED") or "").strip().lower() in ("1", "true", "yes")


_LISTS: dict[tuple[str, int, bool], RevocationList] = {}


def revocation_list(config: dict[str, Any]) -> RevocationList:
    """The process's one RevocationList for this config (every entrypoint
    shares its client and its memory of an unreachable Redis)."""
    key = (str(config["REDIS_URL"]), max_token_age(config), fails_closed(config))
    if key not in _LISTS:
        _LISTS[key] = RevocationList(revocation_client(config), key[1], key[2])
    return _LISTS[key]


def revocation_of(event: SessionsRevoked) -> Revocation:
    return Revocation(user_id=event.user_id, session_ids=tuple(event.session_ids), not_before=event.not_before)
