"""Auth over real HTTP against the running system: contract, abuse, bad input."""
import base64
import json
import os
import subprocess
import uuid

import pytest
from sqlalchemy import text

from tests.conftest import ROOT, Api, lone_auth

pytestmark = pytest.mark.integration

# Each auth table a request may write, as the rows' text: whole rows, except
# what the outbox relay (published_at) and the mail worker (a mail's
# settlement) write afterwards on their own, whose timing is theirs.
AUTH_TABLES = {
    "users": "t",
    "refresh_tokens": "t",
    "follows": "t",
    "blocks": "t",
    "mutes": "t",
    "outbox": "(t.id, t.event_id, t.event_type, t.payload, t.request_id, t.created_at)",
    "outgoing_mail": "(t.id, t.kind, t.data, t.created_at)",
}


def cursor_of(key):
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def fingerprint(db_engine):
    """A digest of every auth table: equal before and after means nothing changed."""
    with db_engine.connect() as connection:
        return {
            table: connection.scalar(text(
                f"SELECT md5(coalesce(string_agg({row}::text, ',' ORDER BY {row}::text), '')) FROM auth.{table} t"))
            for table, row in AUTH_TABLES.items()
        }


@pytest.fixture(scope="module")
def ann(api):
    return api.register(display_name="Ann")


@pytest.fixture(scope="module")
def bob(api):
    return api.register(display_name="Bob")


# The bad-input table: (method, path, body or raw bytes, status, error code).
# "{other}" stands for another existing user's id.
LONG = "x" * 5000
BAD_INPUTS = [
    ("POST", "/auth/register", b"{not json", 400, "MALFORMED_JSON"),
    ("POST", "/auth/register", b'["a list"]', 400, "MALFORMED_JSON"),
    ("POST", "/auth/register", b"\xc3\x28", 400, "MALFORMED_JSON"),
    ("POST", "/auth/register", {}, 422, "VALIDATION_FAILED"),
    ("POST", "/auth/register", {"email": 5, "username": ["x"], "password": None}, 422, "VALIDATION_FAILED"),
    ("POST", "/auth/register", {"email": "a@example.com", "username": "ok_name", "password": "long enough",
                                "is_admin": True}, 422, "VALIDATION_FAILED"),
    ("POST", "/auth/register", {"email": "a@example.com", "username": "Robert'); DROP TABLE users;--",
                                "password": "long enough"}, 422, "VALIDATION_FAILED"),
    ("POST", "/auth/register", {"email": "a@example.com", "username": "ok_name", "password": "é" * 37},
     422, "VALIDATION_FAILED"),  # 74 bytes: over bcrypt's 72
    ("POST", "/auth/register", {"email": "a@example.com", "username": "ok_name", "password": "short"},
     422, "VALIDATION_FAILED"),
    ("POST", "/auth/register", {"email": "a@example.com", "username": "ok_name", "password": "long enough",
                                "display_name": "nul\x00byte"}, 422, "VALIDATION_FAILED"),
    ("POST", "/auth/register", {"email": "a@example.com", "username": "ok_name", "password": "long enough",
                                "display_name": "\ud800"}, 422, "VALIDATION_FAILED"),
    ("POST", "/auth/register", {"email": LONG + "@example.com", "username": "ok_name", "password": "long enough"},
     422, "VALIDATION_FAILED"),
    ("POST", "/auth/register", b"{" + b'"a":' * 1 + b"[" * 100000 + b"]" * 100000 + b"}", 413, "PAYLOAD_TOO_LARGE"),
    ("POST", "/auth/login", {"login": "x"}, 422, "VALIDATION_FAILED"),
    ("POST", "/auth/login", {"login": "' OR '1'='1", "password": "' OR '1'='1"}, 401, "INVALID_CREDENTIALS"),
    ("POST", "/auth/login", {"login": ["a"], "password": {"$ne": None}}, 422, "VALIDATION_FAILED"),
    ("POST", "/auth/refresh", {"refresh_token": "forged"}, 401, "INVALID_REFRESH_TOKEN"),
    ("POST", "/auth/refresh", {"refresh_token": 12}, 422, "VALIDATION_FAILED"),
    # Lone surrogates have no UTF-8 form: they were 500s where they reached hashing.
    ("POST", "/auth/refresh", {"refresh_token": "\ud800"}, 422, "VALIDATION_FAILED"),
    ("POST", "/auth/logout", {"refresh_token": "abc\udfff"}, 422, "VALIDATION_FAILED"),
    ("POST", "/auth/login", {"login": "ann", "password": "\ud800" * 9}, 422, "VALIDATION_FAILED"),
    ("POST", "/auth/register", {"email": "a@example.com", "username": "ok_name", "password": "\ud83d" * 9},
     422, "VALIDATION_FAILED"),
    ("POST", "/auth/register", {"email": "a@example.com", "username": "ok_name", "password": "password123"},
     422, "VALIDATION_FAILED"),
    ("POST", "/auth/register", {"email": "a@example.com", "username": "ok_name", "password": "\u200b" * 9},
     422, "VALIDATION_FAILED"),
    ("POST", "/auth/logout", {}, 422, "VALIDATION_FAILED"),
    ("PATCH", "/users/me", {"display_name": ""}, 422, "VALIDATION_FAILED"),
    ("PATCH", "/users/me", {"bio": LONG}, 422, "VALIDATION_FAILED"),
    ("PATCH", "/users/me", {"email": "new@example.com"}, 422, "VALIDATION_FAILED"),
    ("PATCH", "/users/me", {"avatar_media_id": "not-a-uuid"}, 422, "VALIDATION_FAILED"),
    ("PATCH", "/users/me", b"null", 400, "MALFORMED_JSON"),
    ("GET", "/users/not-a-uuid", None, 404, "USER_NOT_FOUND"),  # the same 404 as an unknown id
    ("GET", "/users/me", None, 405, "METHOD_NOT_ALLOWED"),
    ("GET", "/users/" + str(uuid.uuid4()), None, 404, "USER_NOT_FOUND"),
    ("GET", "/users?q=", None, 422, "VALIDATION_FAILED"),
    ("GET", "/users?q=a&limit=0", None, 422, "VALIDATION_FAILED"),
    ("GET", "/users?q=a&limit=101", None, 422, "VALIDATION_FAILED"),
    ("GET", "/users?q=a&limit=ten", None, 422, "VALIDATION_FAILED"),
    ("GET", "/users?q=a&cursor=%%%", None, 422, "INVALID_CURSOR"),
    ("GET", "/users/{other}/followers?cursor=" + base64.urlsafe_b64encode(b'["x","y"]').decode(), None,
     422, "INVALID_CURSOR"),
    # Cursors decoded into text that PostgreSQL cannot take (a NUL was a 500) or that no page of ours holds.
    ("GET", "/users?q=a&cursor=" + cursor_of(["\u0000"]), None, 422, "INVALID_CURSOR"),
    ("GET", "/users?q=a&cursor=" + cursor_of(["ann\u0000"]), None, 422, "INVALID_CURSOR"),
    ("GET", "/users?q=a&cursor=" + cursor_of(["\ud800"]), None, 422, "INVALID_CURSOR"),
    ("GET", "/users?q=a&cursor=" + cursor_of(["\x1b[2J"]), None, 422, "INVALID_CURSOR"),
    ("GET", "/users?q=a&cursor=" + cursor_of(["a" * 300]), None, 422, "INVALID_CURSOR"),
    ("GET", "/users?q=a&cursor=" + cursor_of([2**70]), None, 422, "INVALID_CURSOR"),
    ("GET", "/users?q=a&cursor=%00" + cursor_of(["ann"]), None, 422, "VALIDATION_FAILED"),
    ("GET", "/users?q=a&cursor=!" + cursor_of(["ann"]), None, 422, "INVALID_CURSOR"),
    ("GET", "/users/{other}/followers?cursor=" + cursor_of(["2026-01-01T00:00:00+00:00\u0000", str(uuid.uuid4())]),
     None, 422, "INVALID_CURSOR"),
    ("GET", "/users?q=a%00b", None, 422, "VALIDATION_FAILED"),
    ("GET", "/users?q=" + "a" * 2000, None, 422, "VALIDATION_FAILED"),
    ("GET", "/users?q=a&limit=%001", None, 422, "VALIDATION_FAILED"),
    ("POST", "/users/{me}/follow", None, 422, "CANNOT_FOLLOW_YOURSELF"),
    ("POST", "/users/" + str(uuid.uuid4()) + "/follow", None, 404, "USER_NOT_FOUND"),
    ("POST", "/users/{me}/block", None, 422, "CANNOT_BLOCK_YOURSELF"),
    ("POST", "/users/" + str(uuid.uuid4()) + "/block", None, 404, "USER_NOT_FOUND"),
    ("POST", "/users/not-a-uuid/block", None, 404, "USER_NOT_FOUND"),
    ("POST", "/users/{me}/mute", None, 422, "CANNOT_MUTE_YOURSELF"),
    ("POST", "/users/" + str(uuid.uuid4()) + "/mute", None, 404, "USER_NOT_FOUND"),
    ("GET", "/users/me/blocks?limit=0", None, 422, "VALIDATION_FAILED"),
    ("GET", "/users/me/mutes?cursor=%%%", None, 422, "INVALID_CURSOR"),
    ("DELETE", "/users/{other}", None, 405, "METHOD_NOT_ALLOWED"),  # with Allow: GET, OPTIONS
    # Mailed tokens: never issued, or not a token at all; addresses; passwords.
    ("POST", "/auth/email/verify", {"token": "A" * 43}, 422, "INVALID_TOKEN"),
    ("POST", "/auth/email/verify", {"token": "not a token"}, 422, "VALIDATION_FAILED"),
    ("POST", "/auth/email/verify", {"token": "A" * 5000}, 422, "VALIDATION_FAILED"),
    ("POST", "/auth/email/verify", {}, 422, "VALIDATION_FAILED"),
    ("POST", "/auth/password/reset", {"token": "A" * 43, "password": "a brand new secret 42"}, 422, "INVALID_TOKEN"),
    ("POST", "/auth/password/reset", {"token": "A" * 43, "password": "short"}, 422, "VALIDATION_FAILED"),
    ("POST", "/auth/password/reset", {"token": "A" * 43}, 422, "VALIDATION_FAILED"),
    ("POST", "/auth/password/forgot", {"email": "not an address"}, 422, "VALIDATION_FAILED"),
    ("POST", "/auth/password/forgot", {"email": "a\u0000@example.com"}, 422, "VALIDATION_FAILED"),
    ("POST", "/auth/password/forgot", {"email": ["ann@example.com"]}, 422, "VALIDATION_FAILED"),
    ("POST", "/auth/email", {"email": "new@example.com", "password": "not the password"}, 401, "INVALID_CREDENTIALS"),
    ("POST", "/auth/email", {"email": "new@example.com"}, 422, "VALIDATION_FAILED"),
    ("POST", "/auth/email", {"email": "x" * 300 + "@example.com", "password": "p"}, 422, "VALIDATION_FAILED"),
]


@pytest.mark.parametrize("method, path, body, status, code", BAD_INPUTS)
def test_bad_input_gets_its_4xx_and_changes_nothing(api, db_engine, ann, bob, method, path, body, status, code):
    path = path.format(me=ann["id"], other=bob["id"])
    kwargs = {"headers": {"Content-Type": "application/json"}}
    if isinstance(body, bytes):
        kwargs["data"] = body
    elif body is not None:
        kwargs["data"] = json.dumps(body)
    before = fingerprint(db_engine)
    response = api.request(method, path, user=ann, **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert fingerprint(db_engine) == before


def test_wrong_content_type_is_415(api):
    response = api.post("/auth/login", data="login=a&password=b",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


@pytest.mark.parametrize("authorization", [
    None, "Bearer", "Bearer not.a.token", "Basic dXNlcjpwYXNz",
    # alg: none, claiming to be a real-looking user
    "Bearer " + base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=") + "."
    + base64.urlsafe_b64encode(json.dumps({"sub": str(uuid.uuid4()), "iss": "lifytp-auth",
                                           "aud": "lifytp", "iat": 1, "exp": 9999999999}).encode()
                               ).decode().rstrip("=") + ".",
])
def test_requests_without_a_valid_token_are_401(api, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = api.get("/auth/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] in {"TOKEN_MISSING", "TOKEN_INVALID"}


def test_duplicate_email_and_username_are_409(api, ann):
    taken_email = {"email": ann["user"]["email"].upper(), "username": "fresh" + uuid.uuid4().hex[:8],
                   "password": "long enough"}
    response = api.post("/auth/register", json=taken_email)
    assert (response.status_code, response.json()["error"]["code"]) == (409, "EMAIL_TAKEN")
    taken_name = {"email": uuid.uuid4().hex + "@example.com", "username": ann["user"]["username"],
                  "password": "long enough"}
    response = api.post("/auth/register", json=taken_name)
    assert (response.status_code, response.json()["error"]["code"]) == (409, "USERNAME_TAKEN")


def test_login_by_email_or_username(api, ann):
    for login in (ann["user"]["email"].upper(), ann["user"]["username"]):
        response = api.post("/auth/login", json={"login": login, "password": ann["password"]})
        assert response.status_code == 200
        assert response.json()["token_type"] == "Bearer" and response.json()["expires_in"] == 900


def test_refresh_rotates_and_reuse_revokes_the_family(api):
    user = api.register()
    first = user["refresh_token"]
    rotated = api.post("/auth/refresh", json={"refresh_token": first})
    assert rotated.status_code == 200
    second = rotated.json()["refresh_token"]
    assert second != first

    reused = api.post("/auth/refresh", json={"refresh_token": first})
    assert (reused.status_code, reused.json()["error"]["code"]) == (401, "REFRESH_TOKEN_REUSED")
    # The thief's (or the client's) newer token is gone too.
    after = api.post("/auth/refresh", json={"refresh_token": second})
    assert after.status_code == 401


def test_logout_ends_the_session(api):
    user = api.register()
    assert api.post("/auth/logout", json={"refresh_token": user["refresh_token"]}).status_code == 204
    assert api.post("/auth/refresh", json={"refresh_token": user["refresh_token"]}).status_code == 401
    assert api.post("/auth/logout", json={"refresh_token": user["refresh_token"]}).status_code == 204


def test_repeated_login_failures_are_rate_limited(api):
    user = api.register()
    login = {"login": user["user"]["username"], "password": "wrong password"}
    statuses = [api.post("/auth/login", json=login).status_code for _ in range(5)]
    assert statuses == [401] * 5
    limited = api.post("/auth/login", json=dict(login, password=user["password"]))
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.json()["error"]["code"] == "RATE_LIMITED"


def test_profile_update_and_public_view(api, ann, bob):
    response = api.patch("/users/me", user=ann, json={"display_name": "Ann B.", "bio": "Runs\nclimbs"})
    assert response.status_code == 200 and response.json()["display_name"] == "Ann B."
    public = api.get("/users/{}".format(ann["id"]), user=bob).json()
    assert public["bio"] == "Runs\nclimbs"
    assert set(public) == {"id", "username", "display_name", "bio", "avatar_url",
                           "followers_count", "following_count", "is_following", "is_private", "follow_status"}


def test_search_is_a_case_insensitive_prefix_and_paginates(api):
    stem = "srch" + uuid.uuid4().hex[:6]
    users = [api.register(username=stem + str(i)) for i in range(3)]
    seen, cursor = [], None
    while True:
        params = {"q": stem.upper(), "limit": 2, **({"cursor": cursor} if cursor else {})}
        body = api.get("/users", user=users[0], params=params).json()
        seen += [item["username"] for item in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == [stem + "0", stem + "1", stem + "2"]
    # LIKE wildcards in q are literal characters, not patterns.
    assert api.get("/users", user=users[0], params={"q": "%"}).json()["items"] == []


def test_follow_unfollow_and_pages(api):
    star = api.register()
    fans = [api.register() for _ in range(3)]
    for fan in fans:
        assert api.post("/users/{}/follow".format(star["id"]), user=fan).status_code == 204
    page_one = api.get("/users/{}/followers".format(star["id"]), user=star, params={"limit": 2}).json()
    page_two = api.get("/users/{}/followers".format(star["id"]), user=star,
                       params={"limit": 2, "cursor": page_one["next_cursor"]}).json()
    listed = [user["id"] for user in page_one["items"] + page_two["items"]]
    assert listed == [fan["id"] for fan in reversed(fans)]  # newest first
    assert page_two["next_cursor"] is None

    assert api.delete("/users/{}/follow".format(star["id"]), user=fans[0]).status_code == 204
    assert api.delete("/users/{}/follow".format(star["id"]), user=fans[0]).status_code == 204
    following = api.get("/users/{}/following".format(fans[0]["id"]), user=fans[0]).json()
    assert following["items"] == []
    assert api.get("/users/{}".format(star["id"]), user=star).json()["followers_count"] == 2


def test_rpc_for_services_and_operators(api, config):
    from nameko.standalone.rpc import ClusterRpcProxy

    user = api.register()
    other = api.register()
    api.post("/users/{}/follow".format(other["id"]), user=user)
    with ClusterRpcProxy(config, timeout=10) as rpc:
        assert rpc.auth.get_user(user["id"])["username"] == user["user"]["username"]
        assert rpc.auth.get_user("junk") is None
        summaries = rpc.auth.get_users([user["id"], other["id"], str(uuid.uuid4()), "junk"])
        assert {summary["id"] for summary in summaries} == {user["id"], other["id"]}
        assert rpc.auth.get_following_ids(user["id"]) == [other["id"]]
        assert rpc.auth.deactivate_user(other["id"]) is True
        assert rpc.auth.deactivate_user(other["id"]) is False
    gone = api.post("/auth/login", json={"login": other["user"]["username"], "password": other["password"]})
    assert gone.status_code == 401
    assert api.post("/auth/refresh", json={"refresh_token": other["refresh_token"]}).status_code == 401
    assert api.get("/users/{}".format(other["id"]), user=user).status_code == 404


def test_operators_use_nameko_shell(api):
    user = api.register()
    script = 'print("FOUND", n.rpc.auth.find_user("{}")["id"])\n'.format(user["user"]["email"])
    shell = subprocess.run(
        [os.path.join(ROOT, ".venv", "bin", "nameko"), "shell", "--config", "config.yaml"],
        input=script, capture_output=True, text=True, cwd=ROOT, timeout=60, env=os.environ,
    )
    assert "FOUND " + user["id"] in shell.stdout, shell.stdout + shell.stderr


def test_health_ready_request_id_and_cors(api):
    assert api.get("/health").json()["status"] == "ok"
    assert api.get("/ready").status_code == 200
    traced = api.get("/auth/me", headers={"X-Request-ID": "trace-123"})
    assert traced.headers["X-Request-ID"] == "trace-123"
    generated = api.get("/auth/me", headers={"X-Request-ID": "bad id with spaces"}).headers["X-Request-ID"]
    assert generated != "bad id with spaces" and len(generated) == 32
    preflight = api.request("OPTIONS", "/auth/register", headers={"Origin": "https://app.example",
                                                                  "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    # Only the configured origins (CORS_ALLOWED_ORIGINS), never an echo of any.
    for origin in ("https://evil.example", "https://app.example.evil.example", "null"):
        refused = api.request("OPTIONS", "/auth/register", headers={"Origin": origin,
                                                                    "Access-Control-Request-Method": "POST"})
        assert "Access-Control-Allow-Origin" not in refused.headers, origin
    assert "Origin" in api.get("/auth/me", headers={"Origin": "https://evil.example"}).headers["Vary"]


def test_no_answer_lets_a_browser_sniff_its_type_and_the_docs_page_cannot_be_framed(api):
    for path in ("/health", "/auth/me", "/no/such/route", "/metrics", "/openapi.json", "/docs/", "/docs/start.js",
                 "/socket.io/?EIO=4&transport=polling"):
        assert api.get(path).headers.get("X-Content-Type-Options") == "nosniff", path
    docs = api.get("/docs/")
    policy = docs.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy and "unsafe-inline" not in \
        policy.split("script-src")[1].split(";")[0]
    assert docs.headers["X-Frame-Options"] == "DENY"


def test_wrong_method_names_the_allowed_ones(api, bob):
    response = api.request("PUT", "/users/{}/follow".format(bob["id"]))
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"POST", "DELETE", "OPTIONS"}


def test_behind_a_proxy_one_guesser_locks_out_nobody_else_and_concurrent_guesses_cost_five_checks():
    """Behind the ingress every connection comes from the proxy: the limits
    must key on the client address it forwards (TRUSTED_PROXY_HOPS=1)."""
    from concurrent.futures import ThreadPoolExecutor

    with lone_auth("proxied", 103, TRUSTED_PROXY_HOPS="1", LOGIN_MAX_FAILURES_PER_ADDRESS="30") as running:
        api = Api(running.base_url)
        ann, bob, carol = api.register(), api.register(), api.register()

        def login(user, password, client):
            return api.post("/auth/login", json={"login": user["user"]["username"], "password": password},
                            headers={"X-Forwarded-For": client}).status_code

        guesses = [login(user, "wrong password", "203.0.113.7") for user in [ann, bob] * 15]
        assert guesses.count(401) <= 10 and set(guesses) <= {401, 429}
        assert login(bob, bob["password"], "198.51.100.9") == 200  # another client of the same proxy
        assert login(ann, ann["password"], "198.51.100.10") == 200  # the owner, though guessed at
        assert login(ann, ann["password"], "203.0.113.7") == 429  # the guesser stays shut out

        with ThreadPoolExecutor(max_workers=25) as pool:
            answers = list(pool.map(lambda _: login(carol, "wrong password", "192.0.2.44"), range(50)))
        assert answers.count(401) <= 5 and answers.count(429) >= 45, answers  # bcrypt ran at most 5 times
        assert login(carol, carol["password"], "192.0.2.45") == 200
