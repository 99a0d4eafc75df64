"""Authentication hardening, each attack against the real system:

- weak passwords (common, the user's own name, blank or invisible) are
  refused with 422 and nothing is created;
- bcrypt is bounded: a registration flood from one address gets 429 while
  another address registers; correct logins are bounded per address and per
  account (slowed, never locked);
- access tokens have a maximum accepted age, whatever their `exp` says, in
  every process that verifies them; refresh tokens cannot outlive the
  lifetime in force.
"""
import json
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest
import socketio
from cryptography.hazmat.primitives import serialization
from sqlalchemy import text

from services.auth.sessions import hash_refresh_token
from services.shared.redis import redis_from_config
from tests.conftest import Api, lone_auth
from tests.integration.test_auth_api import fingerprint

pytestmark = pytest.mark.integration

GOOD_PASSWORD = "correct horse battery"
LIMITS = {
    "TRUSTED_PROXY_HOPS": "1",  # so each test client can be a different address
    "REGISTER_MAX_PER_ADDRESS": "3",
    "REGISTER_WINDOW_SECONDS": "600",
    "LOGIN_MAX_ATTEMPTS_PER_ADDRESS": "6",
    "LOGIN_MAX_ATTEMPTS_PER_ACCOUNT": "4",
    # Long, so that "at most one attempt per interval" is an exact count here.
    "LOGIN_SLOW_SECONDS": "600",
}


def new_address():
    """A client address of this run alone (the benchmarking range, 198.18.0.0/15)."""
    return f"198.{random.randint(18, 19)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


class Client(Api):
    """The API as seen from one client address behind the proxy."""

    def __init__(self, base_url, address=None):
        super().__init__(base_url)
        self.address = address or new_address()

    def request(self, method, path, user=None, **kwargs):
        kwargs.setdefault("headers", {})["X-Forwarded-For"] = self.address
        return super().request(method, path, user=user, **kwargs)

    def try_register(self, username=None, password=GOOD_PASSWORD):
        username = username or "h" + uuid.uuid4().hex[:12]
        return self.post("/auth/register", json={"email": username + "@example.com", "username": username,
                                                 "password": password})

    def login(self, user, password=None):
        return self.post("/auth/login", json={"login": user["user"]["username"],
                                              "password": password or user["password"]})


@pytest.fixture(scope="module")
def limited(config):
    """Auth alone, with low limits, behind one (pretended) proxy hop."""
    with lone_auth("limits", 160, **LIMITS) as running:
        yield running


def assert_rate_limited(response, scope, at_most_seconds):
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "RATE_LIMITED" and error["details"] == {"scope": scope}
    assert 0 < int(response.headers["Retry-After"]) <= at_most_seconds


# ---- weak passwords --------------------------------------------------------------

@pytest.fixture(scope="module")
def someone(api):
    return api.register()


WEAK = [
    ("password123", "too common"),
    ("Iloveyou1", "too common"),
    ("qwerty\u200buiop", "too common"),                  # a zero-width space changes nothing
    ("{username}", "username"),
    ("{USERNAME}!", "username"),
    ("{EMAIL}", "username"),
    ("my {username} secret", "username"),
    ("        ", "spaces or invisible"),
    ("\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b", "spaces or invisible"),
    ("\u3164" * 10, "spaces or invisible"),
    ("\u0301" * 10, "spaces or invisible"),
    ("\u00e9" * 37, "72 bytes"),                         # 37 characters, 74 bytes
    ("e\u0301" * 7, "at least 8 characters"),            # 14 code points, 7 characters after NFC
    ("\ud800" * 12, "unpaired surrogates"),             # was a 500: it has no UTF-8 form
    ("tab\tinside pw", "control characters"),
]


@pytest.mark.parametrize("password, says", WEAK)
def test_weak_passwords_are_refused_with_422_and_nothing_is_created(api, db_engine, password, says):
    username = "w" + uuid.uuid4().hex[:12]
    email = username + "@example.com"
    password = password.format(username=username, USERNAME=username.upper(), EMAIL=email.upper())
    before = fingerprint(db_engine)
    response = api.post("/auth/register", data=json.dumps({"email": email, "username": username,
                                                           "password": password}),
                        headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_FAILED" and list(error["details"]) == ["password"]
    assert says in " ".join(error["details"]["password"])
    assert fingerprint(db_engine) == before


def test_length_is_counted_in_characters_after_nfc_and_login_takes_any_normal_form(api):
    username = "n" + uuid.uuid4().hex[:12]
    decomposed = "cafe\u0301 " * 12  # 72 code points as typed; 60 characters, 72 bytes after NFC
    registered = api.post("/auth/register", json={"email": username + "@example.com", "username": username,
                                                  "password": decomposed})
    assert registered.status_code == 201, registered.text
    for typed in (decomposed, "caf\u00e9 " * 12):
        assert api.post("/auth/login", json={"login": username, "password": typed}).status_code == 200


def test_the_document_states_the_password_rules_and_the_registration_limit(api):
    document = api.get("/openapi.json").json()
    password = document["components"]["schemas"]["RegisterRequest"]["properties"]["password"]
    assert (password["minLength"], password["maxLength"]) == (8, 72)
    assert "NFC" in password["description"] and "commonly used" in password["description"]
    assert "429" in document["paths"]["/auth/register"]["post"]["responses"]


# ---- bcrypt is bounded ---------------------------------------------------------

def test_a_registration_flood_from_one_address_gets_429_while_another_address_registers(limited):
    flooder = Client(limited.base_url)
    stem = "fl" + uuid.uuid4().hex[:8]
    # As the attack: 48 registrations, 16 at a time.
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda index: flooder.try_register(f"{stem}_{index}"), range(48)))
    statuses = [answer.status_code for answer in answers]
    assert statuses.count(201) == 3 and statuses.count(429) == 45, statuses  # three bcrypt hashes, no more
    assert_rate_limited(next(a for a in answers if a.status_code == 429), "address", 600)

    neighbour = Client(limited.base_url)
    registered = neighbour.try_register()
    assert registered.status_code == 201, registered.text
    # Nothing was created for the refused ones.
    found = neighbour.get("/users", user=registered.json(), params={"q": stem, "limit": 100}).json()["items"]
    assert len(found) == 3


def test_correct_logins_from_one_address_are_bounded_and_other_addresses_are_not(limited):
    users = [Client(limited.base_url).register() for _ in range(3)]
    office = Client(limited.base_url)
    statuses = [office.login(user).status_code for user in users * 3]  # 9 correct logins, 3 per account
    assert statuses == [200] * 6 + [429] * 3, statuses
    assert_rate_limited(office.login(users[0]), "address", 900)
    for user in users:
        assert Client(limited.base_url).login(user).status_code == 200


def test_a_flood_of_correct_logins_on_one_account_is_slowed_not_locked(limited, config):
    ann = Client(limited.base_url).register()
    clients = [Client(limited.base_url) for _ in range(30)]  # as many addresses, none over its own limit
    with ThreadPoolExecutor(max_workers=15) as pool:
        statuses = [answer.status_code for answer in pool.map(lambda client: client.login(ann), clients)]
    # Four attempts in the window, then one per LOGIN_SLOW_SECONDS: five bcrypt checks in all.
    assert statuses.count(200) == 5 and statuses.count(429) == 25, statuses

    owner = Client(limited.base_url)
    slowed = owner.login(ann)
    assert_rate_limited(slowed, "account", 600)  # a wait of one interval, not a lockout
    # When the interval has passed (its Redis key expires), the owner gets in.
    redis_from_config(config).delete("login-slow:" + ann["id"])
    assert owner.login(ann).status_code == 200
    # Another account is untouched by the flood on this one.
    assert clients[0].login(Client(limited.base_url).register()).status_code == 200


# ---- tokens ----------------------------------------------------------------------

def minted(config, **claims):
    """A token signed with the real private key, as by someone who leaked it."""
    with open(config["JWT_PRIVATE_KEY_PATH"], "rb") as handle:
        key = serialization.load_pem_private_key(handle.read(), None)
    return jwt.encode({"iss": "lifytp-auth", "aud": "lifytp", **claims}, key, algorithm="EdDSA")


def test_a_century_token_minted_with_the_leaked_key_is_refused_by_every_verifier(api, system, config, someone):
    now = int(time.time())
    century = 100 * 365 * 24 * 3600
    forged = {
        "a century long": minted(config, sub=someone["id"], iat=now, exp=now + century),
        "minted long ago": minted(config, sub=someone["id"], iat=now - century, exp=now + century),
        "older than an hour": minted(config, sub=someone["id"], iat=now - 7200, exp=now + 60),
        "without iat": minted(config, sub=someone["id"], exp=now + 600),
        "issued in the future": minted(config, sub=someone["id"], iat=now + 3600, exp=now + 3900),
    }
    for name, token in forged.items():
        answer = api.get("/auth/me", headers={"Authorization": "Bearer " + token})
        assert (answer.status_code, answer.json()["error"]["code"]) == (401, "TOKEN_INVALID"), name
        client = socketio.Client(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            client.connect(system.base_url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
    # The same key, a sane token: accepted by both.
    sane = minted(config, sub=someone["id"], iat=now, exp=now + 600)
    assert api.get("/auth/me", headers={"Authorization": "Bearer " + sane}).status_code == 200
    client = socketio.Client(reconnection=False)
    client.connect(system.base_url, auth={"token": sane}, transports=["websocket"], wait_timeout=10)
    client.disconnect()


def test_a_refresh_token_older_than_the_refresh_lifetime_is_refused_whatever_its_expiry(api, db_engine, config):
    user = api.register()
    token_hash = hash_refresh_token(user["refresh_token"])
    lifetime = int(config["REFRESH_TOKEN_TTL_SECONDS"])
    with db_engine.begin() as connection:
        # Issued under a longer lifetime than the one in force: still "valid" by its stored expiry.
        connection.execute(text(
            "UPDATE auth.refresh_tokens SET created_at = now() - make_interval(secs => :age), "
            "expires_at = now() + interval '1 day' WHERE token_hash = :hash"),
            {"age": lifetime + 60, "hash": token_hash})
    refused = api.post("/auth/refresh", json={"refresh_token": user["refresh_token"]})
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "INVALID_REFRESH_TOKEN")
