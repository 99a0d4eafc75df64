"""Revoked accounts and sessions: what every verifier consults besides the signature.

An access token verifies offline (services.shared.tokens) until it expires.
To end it sooner, auth records a `sessions_revoked` domain event
(services.shared.contracts.SessionsRevoked) in the transaction that revokes the
refresh tokens; once that is committed, its consumers write the revocation to
Redis, which every process shares:

- `revoked:user:<user id>` = not-before (seconds since the epoch): every
  token of the account issued before it is refused (a deleted or deactivated
  account, a password reset);
- `revoked:session:<session id>`: every token of that session is refused (a
  sign-out, a password change revoking the other sessions, a reused refresh
  token).

Each key lives as long as the oldest token any verifier accepts
(ACCESS_TOKEN_MAX_AGE_SECONDS): by then every token it refuses is refused
for its age anyway, so nothing here outlives the tokens it is about.

A verifier asks once per request: one MGET of the account's key and the
session's. When Redis does not answer within a short timeout, the token is
taken on its signature alone (fail open) unless REVOCATION_FAIL_CLOSED is set
(docs/ARCHITECTURE.md says why), and Redis is not asked again for a moment, so
an outage costs no request the timeout.
"""
import logging
import math
import time
from collections.abc import Iterable
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

# Keeps the later of two not-before times, whichever revocation is written
# first (two consumers write each one, and events may arrive out of order).
_RAISE_NOT_BEFORE = """
local current = tonumber(redis.call('GET', KEYS[1]))
if current == nil or current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1
"""


def user_key(user_id: str) -> str:
    return "revoked:user:" + user_id


def session_key(session_id: str) -> str:
    return "revoked:session:" + session_id


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
        self._raise_not_before = client.register_script(_RAISE_NOT_BEFORE)
        self._unreachable_until = 0.0

    def is_revoked(self, token: VerifiedToken) -> bool:
        """True if the token is revoked; without Redis, False (fail open) or
        RevocationUnknown (fail closed)."""
        now = time.monotonic()
        if now < self._unreachable_until:
            return self._without_redis()
        keys = [user_key(token.user_id)]
        if token.session_id is not None:
            keys.append(session_key(token.session_id))
        try:
            found = self.redis.mget(keys)
        except (redis.ConnectionError, redis.TimeoutError):
            self._unreachable_until = now + self.retry_after_seconds
            log.warning("Redis did not answer the revocation check; for %.1f s tokens are %s",
                        self.retry_after_seconds, "refused" if self.fail_closed else "taken on their signature")
            return self._without_redis()
        not_before = _number(found[0])
        return is_revoked(token, not_before, len(found) > 1 and found[1] is not None)

    def _without_redis(self) -> bool:
        if self.fail_closed:
            raise RevocationUnknown()
        return False

    def revoked_sessions(self, session_ids: Iterable[str]) -> set[str]:
        """Which of these sessions are revoked (one MGET); raises when Redis is down."""
        ids = list(dict.fromkeys(session_ids))
        if not ids:
            return set()
        found = self.redis.mget([session_key(session_id) for session_id in ids])
        return {session_id for session_id, value in zip(ids, found, strict=True) if value is not None}

    def apply(self, revocation: Revocation) -> None:
        """Write a revocation (idempotent: the same one twice changes nothing);
        raises when Redis is down, so that its event is delivered again."""
        pipe = self.redis.pipeline()
        for session_id in revocation.session_ids:
            pipe.set(session_key(session_id), 1, ex=self.ttl_seconds)
        if revocation.not_before is not None:
            self._raise_not_before(keys=[user_key(revocation.user_id)],
                                   args=[revocation.not_before, self.ttl_seconds], client=pipe)
        pipe.execute()


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
