"""Auth's collaborators: password hashing, token issuing, login throttling."""
import hashlib
import secrets
from datetime import UTC, datetime, timedelta

import bcrypt
from eventlet import tpool
from nameko.extensions import DependencyProvider

from services.shared.errors import RateLimited
from services.shared.redis import redis_from_config
from services.shared.tokens import signer_from_file


class Passwords:
    def __init__(self, rounds):
        self.rounds = rounds
        # Verifying against this makes an unknown login cost what a wrong
        # password costs, so response times do not reveal who has an account.
        self._decoy_hash = bcrypt.hashpw(b"decoy password", bcrypt.gensalt(rounds))

    def hash(self, password):
        # bcrypt is CPU-bound and releases the GIL: run it on a real thread so
        # the eventlet hub keeps serving other requests meanwhile.
        hashed = tpool.execute(bcrypt.hashpw, password.encode(), bcrypt.gensalt(self.rounds))
        return hashed.decode()

    def verify(self, password, password_hash):
        """True if password matches; as slow for an unknown user (hash None)."""
        candidate = password.encode()
        # Registration caps passwords at 72 bytes, so a longer one cannot match
        # (bcrypt would otherwise compare only its first 72 bytes).
        comparable = password_hash is not None and len(candidate) <= 72
        target = password_hash.encode() if comparable else self._decoy_hash
        matched = tpool.execute(bcrypt.checkpw, candidate[:72], target)
        return matched and comparable


class PasswordHasher(DependencyProvider):
    def setup(self):
        self.passwords = Passwords(int(self.container.config.get("BCRYPT_ROUNDS", 12)))

    def get_dependency(self, worker_ctx):
        return self.passwords


def hash_refresh_token(raw):
    return hashlib.sha256(raw.encode()).hexdigest()


class Tokens:
    def __init__(self, signer, refresh_ttl_seconds):
        self.signer = signer
        self.refresh_ttl = timedelta(seconds=refresh_ttl_seconds)

    def access_token(self, user_id):
        return self.signer.sign(user_id)

    @property
    def access_ttl_seconds(self):
        return self.signer.ttl_seconds

    def new_refresh_token(self):
        raw = secrets.token_urlsafe(32)
        expires_at = datetime.now(UTC) + self.refresh_ttl
        return raw, hash_refresh_token(raw), expires_at


class TokenIssuer(DependencyProvider):
    def setup(self):
        config = self.container.config
        signer = signer_from_file(config["JWT_PRIVATE_KEY_PATH"], int(config["ACCESS_TOKEN_TTL_SECONDS"]))
        self.tokens = Tokens(signer, int(config["REFRESH_TOKEN_TTL_SECONDS"]))

    def get_dependency(self, worker_ctx):
        return self.tokens


class LoginThrottle:
    """Counts failed logins per account and per client address in Redis.

    Once either count reaches its limit within the window, logins for that
    account (or from that address) get a 429 until the window ends.
    """

    def __init__(self, redis, max_per_account, max_per_address, window_seconds):
        self.redis = redis
        self.limits = {"account": max_per_account, "address": max_per_address}
        self.window = window_seconds

    def _keys(self, login, address):
        account = hashlib.sha256(login.strip().lower().encode()).hexdigest()
        return {"account": "login-failures:account:" + account,
                "address": "login-failures:address:" + (address or "unknown")}

    def check(self, login, address):
        keys = self._keys(login, address)
        pipe = self.redis.pipeline()
        for key in keys.values():
            pipe.get(key)
            pipe.ttl(key)
        replies = pipe.execute()
        for index, scope in enumerate(keys):
            count, ttl = replies[2 * index], replies[2 * index + 1]
            if count is not None and int(count) >= self.limits[scope]:
                raise RateLimited(retry_after=ttl if ttl and ttl > 0 else self.window,
                                  details={"scope": scope})

    def record_failure(self, login, address):
        pipe = self.redis.pipeline()
        for key in self._keys(login, address).values():
            pipe.incr(key)
            pipe.expire(key, self.window, nx=True)
        pipe.execute()

    def record_success(self, login, address):
        self.redis.delete(self._keys(login, address)["account"])


class LoginThrottleProvider(DependencyProvider):
    def setup(self):
        config = self.container.config
        self.throttle = LoginThrottle(
            redis_from_config(config),
            int(config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]),
            int(config["LOGIN_MAX_FAILURES_PER_ADDRESS"]),
            int(config["LOGIN_FAILURE_WINDOW_SECONDS"]),
        )

    def stop(self):
        self.throttle.redis.close()

    def get_dependency(self, worker_ctx):
        return self.throttle
