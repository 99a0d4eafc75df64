"""The auth service in a container against the real PostgreSQL, with events
replaced: sign-in and token families, the follow graph and the events it
records, profiles, and the RPC other services and operators call."""
import uuid

import pytest
from nameko.testing.services import entrypoint_hook
from sqlalchemy import create_engine, select

from services.auth import accounts, sessions
from services.auth.models import Outbox, RefreshToken
from services.auth.service import AuthService
from services.shared import contracts
from tests.conftest import eventually

PASSWORD = "correct horse battery"


@pytest.fixture
def auth(run_service):
    return run_service(AuthService, "events")


@pytest.fixture(scope="module")
def database(interface_config):
    engine = create_engine(interface_config["DB_URIS"]["auth:Base"])
    yield engine
    engine.dispose()


def recorded(database, event_type, **about):
    """The payloads of the outbox rows of event_type whose payload has these values, in order."""
    query = select(Outbox.c.payload).where(Outbox.c.event_type == event_type).order_by(Outbox.c.id)
    for key, value in about.items():
        query = query.where(Outbox.c.payload[key].astext == value)
    with database.connect() as connection:
        return list(connection.execute(query).scalars())


def new_name():
    return "u" + uuid.uuid4().hex[:12]


def register(auth, username=None):
    username = username or new_name()
    answer = auth.api.post("/auth/register", json={
        "email": username + "@example.com", "username": username, "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    return answer.json()


def refresh(auth, token):
    return auth.api.post("/auth/refresh", json={"refresh_token": token})


# Sign-in and sessions ---------------------------------------------------------------

def test_register_login_and_refresh_rotate_the_tokens(auth, database):
    registered = register(auth)
    user = registered["user"]
    assert registered["token_type"] == "Bearer" and user["followers_count"] == 0
    assert user["created_at"].endswith("Z") and len(user["created_at"]) == len("2026-11-23T18:00:00Z")
    assert auth.api.get("/auth/me", user=registered).json() == user
    (event,) = recorded(database, "user_registered", user_id=user["id"])
    assert contracts.UserRegistered.from_payload(event).username == user["username"]
    assert event[contracts.ENVELOPE_ID]

    wrong = auth.api.post("/auth/login", json={"login": user["email"], "password": "not the password"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "INVALID_CREDENTIALS"
    logged_in = auth.api.post("/auth/login", json={"login": user["username"].upper(), "password": PASSWORD})
    assert logged_in.status_code == 200 and logged_in.json()["user"] == user

    rotated = refresh(auth, logged_in.json()["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["refresh_token"] != logged_in.json()["refresh_token"]
    assert refresh(auth, rotated.json()["refresh_token"]).status_code == 200
    # The session of the registration is another family, untouched by all this.
    assert refresh(auth, registered["refresh_token"]).status_code == 200


def test_a_reused_refresh_token_revokes_its_whole_family(auth, database):
    first = register(auth)["refresh_token"]
    second = refresh(auth, first).json()["refresh_token"]

    reused = refresh(auth, first)
    assert reused.status_code == 401 and reused.json()["error"]["code"] == "REFRESH_TOKEN_REUSED"
    # The revocation was committed although the request was refused.
    after = refresh(auth, second)
    assert after.status_code == 401 and after.json()["error"]["code"] == "INVALID_REFRESH_TOKEN"
    with database.connect() as connection:
        family = connection.execute(select(RefreshToken.revoked_at).where(
            RefreshToken.family_id == select(RefreshToken.family_id).where(
                RefreshToken.token_hash == sessions.hash_refresh_token(first)).scalar_subquery())).all()
    assert len(family) == 2 and all(row.revoked_at is not None for row in family)


def test_logout_ends_the_session(auth):
    registered = register(auth)
    assert auth.api.post("/auth/logout", json={"refresh_token": registered["refresh_token"]}).status_code == 204
    assert refresh(auth, registered["refresh_token"]).json()["error"]["code"] == "INVALID_REFRESH_TOKEN"
    # An unknown token ends nothing, and says nothing either.
    assert auth.api.post("/auth/logout", json={"refresh_token": "unknown"}).status_code == 204


def test_a_name_taken_by_a_concurrent_registration_is_a_409_not_a_500(auth, database, monkeypatch):
    taken = register(auth)["user"]
    check = accounts._raise_if_taken
    checks = []

    def first_check_misses_it(session, email, username):
        # As if the other registration committed between the check and the insert.
        checks.append(username)
        if len(checks) > 1:
            check(session, email, username)

    monkeypatch.setattr(accounts, "_raise_if_taken", first_check_misses_it)
    answer = auth.api.post("/auth/register", json={
        "email": new_name() + "@example.com", "username": taken["username"], "password": PASSWORD})
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "USERNAME_TAKEN"
    assert len(checks) == 2
    assert len(recorded(database, "user_registered", username=taken["username"])) == 1


# The follow graph --------------------------------------------------------------------

def test_follow_and_unfollow_record_their_events_once(auth, database):
    ann, bob = register(auth), register(auth)
    about = {"follower_id": ann["user"]["id"], "followee_id": bob["user"]["id"]}
    for _ in range(2):  # idempotent: the second follow changes and records nothing
        assert auth.api.post(f"/users/{bob['user']['id']}/follow", user=ann).status_code == 204
    (followed,) = recorded(database, "user_followed", **about)
    event = contracts.UserFollowed.from_payload(followed)
    assert (event.follower_id, event.followee_id) == (about["follower_id"], about["followee_id"])
    assert event.envelope_id == followed[contracts.ENVELOPE_ID]

    profile = auth.api.get(f"/users/{bob['user']['id']}", user=ann).json()
    assert profile["followers_count"] == 1 and profile["is_following"] is True and "email" not in profile
    followers = auth.api.get(f"/users/{bob['user']['id']}/followers", user=bob).json()
    assert [item["id"] for item in followers["items"]] == [ann["user"]["id"]]
    assert followers["items"][0]["is_following"] is False and followers["next_cursor"] is None

    for _ in range(2):
        assert auth.api.delete(f"/users/{bob['user']['id']}/follow", user=ann).status_code == 204
    (unfollowed,) = recorded(database, "user_unfollowed", **about)
    assert contracts.UserUnfollowed.from_payload(unfollowed).followee_id == about["followee_id"]
    assert auth.api.get(f"/users/{ann['user']['id']}", user=ann).json()["following_count"] == 0


def test_following_nobody_or_oneself_records_nothing(auth, database):
    ann = register(auth)
    unknown = auth.api.post(f"/users/{uuid.uuid4()}/follow", user=ann)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "USER_NOT_FOUND"
    malformed = auth.api.get("/users/not-a-uuid/followers", user=ann)
    assert malformed.status_code == 404 and malformed.json()["error"]["code"] == "USER_NOT_FOUND"
    oneself = auth.api.post(f"/users/{ann['user']['id']}/follow", user=ann)
    assert oneself.status_code == 422 and oneself.json()["error"]["code"] == "CANNOT_FOLLOW_YOURSELF"
    assert recorded(database, "user_followed", follower_id=ann["user"]["id"]) == []


def test_blocking_records_the_follows_it_ends_and_numbers_each_change(auth, database):
    ann, bob = register(auth), register(auth)
    ann_id, bob_id = ann["user"]["id"], bob["user"]["id"]
    for user, other in ((ann, bob), (bob, ann)):
        assert auth.api.post(f"/users/{other['user']['id']}/follow", user=user).status_code == 204
    for _ in range(2):  # idempotent: the second block changes and records nothing
        assert auth.api.post(f"/users/{bob_id}/block", user=ann).status_code == 204
    ended = {(event["follower_id"], event["followee_id"])
             for event in recorded(database, "user_unfollowed") if {ann_id, bob_id} == {
                 event["follower_id"], event["followee_id"]}}
    assert ended == {(ann_id, bob_id), (bob_id, ann_id)}
    (blocked,) = recorded(database, "user_blocked", user_id=ann_id)
    assert contracts.UserBlocked.from_payload(blocked).target_id == bob_id
    for _ in range(2):
        assert auth.api.delete(f"/users/{bob_id}/block", user=ann).status_code == 204
    assert auth.api.post(f"/users/{bob_id}/block", user=ann).status_code == 204
    changes = recorded(database, "user_unblocked", user_id=ann_id) + recorded(database, "user_blocked", user_id=ann_id)
    assert len(changes) == 3
    # The block, the unblock and the block again, in the order they happened.
    versions = [blocked["version"], changes[0]["version"], changes[2]["version"]]
    assert versions == sorted(versions) and len(set(versions)) == 3
    # A mute records its own event.
    assert auth.api.post(f"/users/{ann_id}/mute", user=bob).status_code == 204
    (muted,) = recorded(database, "user_muted", user_id=bob["user"]["id"])
    assert contracts.UserMuted.from_payload(muted).target_id == ann_id


# Profiles ----------------------------------------------------------------------------

def test_an_avatar_must_be_an_image_one_uploaded(auth):
    ann = register(auth)
    media_id = str(uuid.uuid4())
    get_media = auth.peers["events"].get_media
    get_media.return_value = {"id": media_id, "owner_id": ann["user"]["id"], "content_type": "image/png"}
    answer = auth.api.patch("/users/me", user=ann, json={"avatar_media_id": media_id, "bio": "Climber"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["avatar_url"] == "/media/" + media_id and answer.json()["bio"] == "Climber"
    get_media.assert_called_once_with(media_id)

    get_media.return_value = {"id": media_id, "owner_id": str(uuid.uuid4()), "content_type": "image/png"}
    refused = auth.api.patch("/users/me", user=ann, json={"avatar_media_id": media_id, "bio": "Someone else"})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "INVALID_AVATAR"
    assert auth.api.get("/auth/me", user=ann).json()["bio"] == "Climber"  # nothing of it was kept


def test_search_pages_by_username(auth):
    prefix = "s" + uuid.uuid4().hex[:8]
    names = sorted(register(auth, prefix + suffix)["user"]["username"] for suffix in ("a", "b", "c"))
    viewer = register(auth)
    first = auth.api.get("/users", user=viewer, params={"q": prefix.upper(), "limit": 2}).json()
    assert [item["username"] for item in first["items"]] == names[:2]
    rest = auth.api.get("/users", user=viewer, params={"q": prefix, "limit": 2, "cursor": first["next_cursor"]})
    assert [item["username"] for item in rest.json()["items"]] == names[2:]


# RPC ---------------------------------------------------------------------------------

def test_other_services_get_user_summaries(auth):
    ann = register(auth)["user"]
    with entrypoint_hook(auth.container, "get_users") as get_users:
        assert get_users([ann["id"], "not an id", str(uuid.uuid4())]) == [
            {"id": ann["id"], "username": ann["username"], "display_name": ann["username"], "avatar_url": None}]
    with entrypoint_hook(auth.container, "get_user") as get_user:
        assert get_user(ann["id"])["username"] == ann["username"]
        assert get_user(str(uuid.uuid4())) is None


def test_deactivate_user_signs_out_hides_and_records_the_deletion(auth, database):
    registered = register(auth)
    user = registered["user"]
    with entrypoint_hook(auth.container, "deactivate_user") as deactivate_user:
        assert deactivate_user(user["id"]) is True
        assert deactivate_user(user["id"]) is False  # already closed: nothing recorded twice
        assert deactivate_user("not an id") is False
    (deleted,) = recorded(database, "user_deleted", user_id=user["id"])
    assert contracts.UserDeleted.from_payload(deleted).user_id == user["id"]
    assert refresh(auth, registered["refresh_token"]).json()["error"]["code"] == "INVALID_REFRESH_TOKEN"
    assert auth.api.get(f"/users/{user['id']}", user=register(auth)).status_code == 404
    # Its own access token is refused too, once the revocation is written (at once).
    assert eventually(lambda: auth.api.get("/auth/me", user=registered).status_code == 401, timeout=5)
    with entrypoint_hook(auth.container, "find_user") as find_user:
        found = find_user(user["email"])
    assert found["is_active"] is False and found["id"] == user["id"]


# Revocations (sessions_revoked, services.shared.revocation) ---------------------------

def revoked(database, user_id):
    return [contracts.SessionsRevoked.from_payload(payload)
            for payload in recorded(database, "sessions_revoked", user_id=user_id)]


def session_of(token):
    from services.shared.tokens import verifier_from_file
    return verifier_from_file(auth_public_key()).verify_token(token).session_id


def auth_public_key():
    from tests.conftest import TEST_ENV
    return TEST_ENV["JWT_PUBLIC_KEY_PATH"]


def login(auth, user):
    answer = auth.api.post("/auth/login", json={"login": user["user"]["username"], "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_each_sign_in_is_a_session_its_tokens_name_and_refresh_keeps(auth):
    registered = register(auth)
    session = session_of(registered["access_token"])
    assert session is not None and session != session_of(login(auth, registered)["access_token"])
    assert session_of(refresh(auth, registered["refresh_token"]).json()["access_token"]) == session


def test_signing_out_and_a_reused_refresh_token_revoke_their_session(auth, database):
    ann, bob = register(auth), register(auth)
    assert auth.api.post("/auth/logout", json={"refresh_token": ann["refresh_token"]}).status_code == 204
    assert [(event.session_ids, event.not_before) for event in revoked(database, ann["user"]["id"])] == [
        ([session_of(ann["access_token"])], None)]
    refresh(auth, bob["refresh_token"])
    assert refresh(auth, bob["refresh_token"]).status_code == 401
    assert [event.session_ids for event in revoked(database, bob["user"]["id"])] == [
        [session_of(bob["access_token"])]]


def test_a_password_change_revokes_the_other_sessions_and_records_nothing_when_refused(auth, database):
    ann = register(auth)
    other = login(auth, ann)
    wrong = auth.api.post("/auth/password", user=ann,
                          json={"current_password": "not it", "new_password": "a brand new secret phrase"})
    assert wrong.status_code == 401 and revoked(database, ann["user"]["id"]) == []
    changed = auth.api.post("/auth/password", user=ann,
                            json={"current_password": PASSWORD, "new_password": "a brand new secret phrase"})
    assert changed.status_code == 204
    (event,) = revoked(database, ann["user"]["id"])
    assert event.session_ids == [session_of(other["access_token"])] and event.not_before is None
    assert refresh(auth, ann["refresh_token"]).status_code == 200
    assert refresh(auth, other["refresh_token"]).status_code == 401


def test_deleting_the_account_scrubs_the_row_and_revokes_every_token(auth, database):
    import time

    ann = register(auth)
    other = login(auth, ann)
    refused = auth.api.delete("/auth/me", user=ann, json={"password": "not it"})
    assert refused.status_code == 401 and revoked(database, ann["user"]["id"]) == []
    before = int(time.time())
    assert auth.api.delete("/auth/me", user=ann, json={"password": PASSWORD}).status_code == 204
    (event,) = revoked(database, ann["user"]["id"])
    assert sorted(event.session_ids) == sorted([session_of(ann["access_token"]), session_of(other["access_token"])])
    # Tokens of this very second are refused too: a deleted account gets no new ones.
    assert event.not_before > before
    assert len(recorded(database, "user_deleted", user_id=ann["user"]["id"])) == 1
    with entrypoint_hook(auth.container, "find_user") as find_user:
        assert find_user(ann["user"]["email"]) is None and find_user(ann["user"]["username"]) is None
    with entrypoint_hook(auth.container, "counts") as counts:
        assert counts()["deleted_users"] >= 1
