"""Auth's collaborators: password hashing, token issuing, login and registration throttling.

The domain receives them as plain objects; the Nameko providers here build
them from the config, once per container."""
import hashlib
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import bcrypt
from eventlet import tpool
from eventlet.semaphore import Semaphore
from nameko.extensions import DependencyProvider
from redis import Redis
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from services.auth import moderation, password_policy
from services.auth.password_policy import normalise
from services.auth.sessions import Tokens
from services.shared.database import ENGINE_OPTIONS, database_uri
from services.shared.errors import RateLimited
from services.shared.mail import Post, post_from_config
from services.shared.observability.dependency import refresh_forever
from services.shared.observability.metrics import set_report_queue
from services.shared.redis import redis_from_config
from services.shared.tokens import max_token_age, signer_from_file

T = TypeVar("T")


class Passwords:
    def __init__(self, rounds: int, concurrency: int = 1) -> None:
        self.rounds = rounds
        if concurrency < 1:
            raise ValueError(f"BCRYPT_CONCURRENCY must be at least 1, not {concurrency}")  # 0 would hang every login
        # At most `concurrency` hashes at once; other workers wait their turn
        # on the hub, costing nothing (see _off_the_hub).
        self._hashing = Semaphore(concurrency)
        # Verifying against this makes an unknown login cost what a wrong
        # password costs, so response times do not reveal who has an account.
        self._decoy_hash = bcrypt.hashpw(b"decoy password", bcrypt.gensalt(rounds))

    def hash(self, password: str) -> str:
        # NFC, so the same password typed on any keyboard is the same bytes.
        hashed: bytes = self._off_the_hub(bcrypt.hashpw, normalise(password).encode(), bcrypt.gensalt(self.rounds))
        return hashed.decode()

    def verify(self, password: str, password_hash: str | None) -> bool:
        """True if password matches; as slow for an unknown user (hash None).

        Hashes made before passwords were normalised are of the password as
        typed, so one whose typed form is not NFC is tried that way too: at
        most two checks for the one attempt the login throttle counted."""
        return any(self._check(candidate, password_hash)
                   for candidate in dict.fromkeys([normalise(password), password]))

    def _check(self, password: str, password_hash: str | None) -> bool:
        candidate = password.encode()
        # Registration caps passwords at 72 bytes, so a longer one cannot match
        # (bcrypt would otherwise compare only its first 72 bytes).
        comparable = password_hash is not None and len(candidate) <= 72
        target = password_hash.encode() if comparable and password_hash is not None else self._decoy_hash
        matched: bool = self._off_the_hub(bcrypt.checkpw, candidate[:72], target)
        return matched and comparable

    def _off_the_hub(self, function: Callable[..., T], *args: Any) -> T:
        """bcrypt is CPU-bound and releases the GIL: it runs on a real thread
        (eventlet.tpool) so the hub keeps serving meanwhile. Bounded, because
        a login storm would otherwise hash on up to max_workers threads at once:
        no login finishes sooner once the CPU is full, but every thread takes
        its share of the CPU from the hub's, and in a pod past its CPU limit
        all of them are throttled together, hub included."""
        with self._hashing:
            result: T = tpool.execute(function, *args)
        return result


class PasswordHasher(DependencyProvider):
    def setup(self) -> None:
        config = self.container.config
        self.passwords = Passwords(int(config.get("BCRYPT_ROUNDS", 12)), int(config.get("BCRYPT_CONCURRENCY", 1)))
        # Loading the common-password list takes a fraction of a second of
        # CPU: at startup, not on the hub during the first registration.
        password_policy.load_lists()

    def get_dependency(self, worker_ctx: Any) -> Passwords:
        return self.passwords


class TokenIssuer(DependencyProvider):
    def setup(self) -> None:
        config = self.container.config
        signer = signer_from_file(config["JWT_PRIVATE_KEY_PATH"], int(config["ACCESS_TOKEN_TTL_SECONDS"]),
                                  max_token_age(config))
        self.tokens = Tokens(signer, int(config["REFRESH_TOKEN_TTL_SECONDS"]))

    def get_dependency(self, worker_ctx: Any) -> Tokens:
        return self.tokens


class LoginThrottle:
    """Login attempts, counted in Redis, so guessing is slow, password checks
    (bcrypt) are bounded, and nobody is locked out by somebody else.

    Wrong passwords:
    - A client address that failed `max_per_address` times in the window gets
      429 for any account.
    - An account that failed `max_per_account` times from one address gets 429
      from that address: the guesser is shut out, not the owner.
    - An account that failed `max_per_account` times in all is slowed, never
      locked: one attempt every `slow_seconds`, from anywhere, so guessers
      spread over many addresses get few tries and the owner waits seconds.

    Every attempt, right or wrong, costs a password check, so:
    - A client address that made `max_attempts_per_address` attempts in the
      window gets 429 for any account until the window ends.
    - An account tried `max_attempts_per_account` times in the window is
      slowed as above (one attempt every `slow_seconds`): a flood of correct
      logins costs one check every few seconds, and the owner still gets in.

    An attempt is reserved (counted) before the password is hashed, atomically,
    so concurrent attempts cost at most the limit in bcrypt checks; a
    successful one gives its failure reservation back. Accounts are keyed by
    the resolved account (its email and username are one account), an unknown
    login by its normalised text.
    """

    SLOW_SECONDS = 2

    def __init__(self, redis: Redis, max_per_account: int, max_per_address: int, window_seconds: int, *,
                 max_attempts_per_account: int, max_attempts_per_address: int,
                 slow_seconds: int = SLOW_SECONDS) -> None:
        self.redis = redis
        self.max_per_account = max_per_account
        self.max_per_address = max_per_address
        self.max_attempts_per_account = max_attempts_per_account
        self.max_attempts_per_address = max_attempts_per_address
        self.window = window_seconds
        self.slow_seconds = slow_seconds

    @staticmethod
    def account_key(user_id: str | None, login: str) -> str:
        return user_id or hashlib.sha256(login.strip().lower().encode()).hexdigest()

    def _keys(self, account: str, address: str | None) -> dict[str, str]:
        address = address or "unknown"
        return {"address": "login-failures:address:" + address,
                "pair": f"login-failures:pair:{account}:{address}",
                "account": "login-failures:account:" + account,
                "attempts-address": "login-attempts:address:" + address,
                "attempts-account": "login-attempts:account:" + account,
                "slow": "login-slow:" + account}

    # What reserve() counts up, and gives back when it refuses the attempt.
    _RESERVED = ("address", "pair", "attempts-address", "attempts-account")

    def reserve(self, account: str, address: str | None) -> None:
        """Count this attempt before the password is checked; 429 if over a limit."""
        keys = self._keys(account, address)
        pipe = self.redis.pipeline()
        for scope in self._RESERVED:
            pipe.incr(keys[scope])
            pipe.expire(keys[scope], self.window, nx=True)
        pipe.get(keys["account"])
        by_address, _, by_pair, _, attempts_by_address, _, attempts_on_account, _, failed_on_account = pipe.execute()
        if by_address > self.max_per_address:
            self._refuse(keys, "address", "address")
        if attempts_by_address > self.max_attempts_per_address:
            self._refuse(keys, "attempts-address", "address")
        if by_pair > self.max_per_account:
            self._refuse(keys, "pair", "account")
        busy = attempts_on_account > self.max_attempts_per_account or (
            failed_on_account is not None and int(failed_on_account) >= self.max_per_account)
        if busy and not self.redis.set(keys["slow"], 1, nx=True, ex=self.slow_seconds):
            self._refuse(keys, "slow", "account")

    def failed(self, account: str, address: str | None) -> None:
        keys = self._keys(account, address)
        pipe = self.redis.pipeline()
        pipe.incr(keys["account"])
        pipe.expire(keys["account"], self.window, nx=True)
        pipe.execute()

    def succeeded(self, account: str, address: str | None) -> None:
        # Not a failure after all; the attempt itself stays counted.
        keys = self._keys(account, address)
        pipe = self.redis.pipeline()
        pipe.decr(keys["address"])
        pipe.delete(keys["pair"])
        pipe.execute()

    def _refuse(self, keys: dict[str, str], limiting: str, scope: str) -> NoReturn:
        pipe = self.redis.pipeline()
        for reserved in self._RESERVED:
            pipe.decr(keys[reserved])
        pipe.execute()
        raise_rate_limited(self.redis, keys[limiting], scope, self.window)


class RegistrationThrottle:
    """Registrations per client address, counted in Redis: each costs a bcrypt
    hash (and makes an account), so one address gets `max_per_address` in the
    window and 429 after that, while every other address registers as usual.

    An attempt is counted before anything is checked, so attempts at taken
    names (409) count too: the limit also bounds probing who is registered.
    """

    def __init__(self, redis: Redis, max_per_address: int, window_seconds: int) -> None:
        self.redis = redis
        self.max_per_address = max_per_address
        self.window = window_seconds

    def reserve(self, address: str | None) -> None:
        count_or_refuse(self.redis, "registrations:address:" + (address or "unknown"), self.max_per_address,
                        self.window, "address", "Too many registrations from this address; try again later.")


class ForgotPasswordThrottle:
    """Reset mails asked for, per address they go to (so nobody floods
    someone's mailbox) and per client address (so nobody floods every
    mailbox). Keyed by the address as typed, known or not: the answer is the
    same for both."""

    def __init__(self, redis: Redis, max_per_email: int, max_per_address: int, window_seconds: int) -> None:
        self.redis = redis
        self.max_per_email = max_per_email
        self.max_per_address = max_per_address
        self.window = window_seconds

    def reserve(self, email: str, address: str | None) -> None:
        message = "Too many password resets asked for; try again later."
        count_or_refuse(self.redis, "password-forgot:address:" + (address or "unknown"), self.max_per_address,
                        self.window, "address", message)
        email_key = hashlib.sha256(email.strip().lower().encode()).hexdigest()
        count_or_refuse(self.redis, "password-forgot:email:" + email_key, self.max_per_email, self.window,
                        "email", message)


def count_or_refuse(redis: Redis, key: str, limit: int, window_seconds: int, scope: str, message: str) -> None:
    """Count one more under key (the window starts at the first); past
    limit, take it back and answer 429 with Retry-After."""
    pipe = redis.pipeline()
    pipe.incr(key)
    pipe.expire(key, window_seconds, nx=True)
    count, _ = pipe.execute()
    if count > limit:
        redis.decr(key)
        raise_rate_limited(redis, key, scope, window_seconds, message=message)


class UserQuota:
    """At most `max_per_user` of one costly kind of request per user in a
    window, counted in Redis (key `<kind>:<scope>:<id>`); 429 after that. A
    refused request is not counted, so the window ends when it says it does."""

    def __init__(self, redis: Redis, kind: str, max_per_user: int, window_seconds: int, scope: str,
                 message: str) -> None:
        self.redis = redis
        self.kind = kind
        self.max_per_user = max_per_user
        self.window = window_seconds
        self.scope = scope
        self.message = message

    def reserve(self, user_id: str) -> None:
        count_or_refuse(self.redis, f"{self.kind}:{self.scope}:{user_id}", self.max_per_user, self.window,
                        self.scope, self.message)


def raise_rate_limited(redis: Redis, key: str, scope: str, fallback_seconds: int,
                       message: str | None = None) -> NoReturn:
    """429 with Retry-After: until `key` expires (the limit it counts resets)."""
    ttl = redis.ttl(key)
    raise RateLimited(retry_after=ttl if ttl and ttl > 0 else fallback_seconds, message=message,
                      details={"scope": scope})


class LoginThrottleProvider(DependencyProvider):
    def setup(self) -> None:
        config = self.container.config
        self.throttle = LoginThrottle(
            redis_from_config(config),
            int(config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]),
            int(config["LOGIN_MAX_FAILURES_PER_ADDRESS"]),
            int(config["LOGIN_FAILURE_WINDOW_SECONDS"]),
            max_attempts_per_account=int(config["LOGIN_MAX_ATTEMPTS_PER_ACCOUNT"]),
            max_attempts_per_address=int(config["LOGIN_MAX_ATTEMPTS_PER_ADDRESS"]),
            slow_seconds=int(config["LOGIN_SLOW_SECONDS"]),
        )

    def stop(self) -> None:
        self.throttle.redis.close()

    def get_dependency(self, worker_ctx: Any) -> LoginThrottle:
        return self.throttle


class RegistrationThrottleProvider(DependencyProvider):
    def setup(self) -> None:
        config = self.container.config
        self.throttle = RegistrationThrottle(
            redis_from_config(config),
            int(config["REGISTER_MAX_PER_ADDRESS"]),
            int(config["REGISTER_WINDOW_SECONDS"]),
        )

    def stop(self) -> None:
        self.throttle.redis.close()

    def get_dependency(self, worker_ctx: Any) -> RegistrationThrottle:
        return self.throttle


class UserQuotaProvider(DependencyProvider):
    """A UserQuota of `max_key` requests per `window_key` seconds (config keys)."""

    def __init__(self, kind: str, max_key: str, window_key: str, default_max: int, scope: str,
                 message: str) -> None:
        self.kind, self.max_key, self.window_key, self.default_max = kind, max_key, window_key, default_max
        self.scope, self.message = scope, message

    def setup(self) -> None:
        config = self.container.config
        self.quota = UserQuota(
            redis_from_config(config), self.kind,
            int(config.get(self.max_key, self.default_max)), int(config.get(self.window_key, 3600)),
            self.scope, self.message,
        )

    def stop(self) -> None:
        self.quota.redis.close()

    def get_dependency(self, worker_ctx: Any) -> UserQuota:
        return self.quota


class ReportQueueMetrics(DependencyProvider):
    """Exports the size and age of the moderation queue (lifytp_reports_open,
    lifytp_reports_oldest_open_age_seconds): one read of the partial index of
    open reports every few seconds, whoever scrapes, on a connection of its own."""

    REFRESH_SECONDS = 5.0

    def setup(self) -> None:
        config = self.container.config
        options = dict(ENGINE_OPTIONS, pool_size=1, max_overflow=0)
        self.engine = create_engine(database_uri(config, self.container.service_name), **options)
        self.refresh_seconds = float(config.get("REPORT_METRICS_REFRESH_SECONDS", self.REFRESH_SECONDS))
        self._running = False

    def start(self) -> None:
        self._running = True
        self.container.spawn_managed_thread(self._refresh_forever)

    def stop(self) -> None:
        self._running = False
        self.engine.dispose()

    def kill(self) -> None:
        self.stop()

    def get_dependency(self, worker_ctx: Any) -> None:
        return None

    def _refresh_forever(self) -> None:
        refresh_forever(lambda: self._running, self._refresh, self.refresh_seconds, "the moderation queue")

    def _refresh(self) -> None:
        with Session(self.engine) as session:
            count, oldest = moderation.queue_stats(session)
        set_report_queue(count, oldest.timestamp() if oldest is not None else None)


class ForgotPasswordThrottleProvider(DependencyProvider):
    def setup(self) -> None:
        config = self.container.config
        self.throttle = ForgotPasswordThrottle(
            redis_from_config(config),
            int(config["PASSWORD_FORGOT_MAX_PER_EMAIL"]),
            int(config["PASSWORD_FORGOT_MAX_PER_ADDRESS"]),
            int(config["PASSWORD_FORGOT_WINDOW_SECONDS"]),
        )

    def stop(self) -> None:
        self.throttle.redis.close()

    def get_dependency(self, worker_ctx: Any) -> ForgotPasswordThrottle:
        return self.throttle


class MailPost(DependencyProvider):
    """The SMTP server, From address and link base of the config
    (services.shared.mail.post_from_config); a bad SMTP_URL stops the start."""

    def setup(self) -> None:
        self.post = post_from_config(self.container.config)

    def get_dependency(self, worker_ctx: Any) -> Post:
        return self.post
