"""The auth API over real HTTP, against the whole running system."""
import pytest

pytestmark = pytest.mark.integration


def test_register_login_me_and_follow(api):
    ann = api.register()
    bob = api.register()

    login = api.post("/auth/login", json={"login": ann["user"]["username"], "password": ann["password"]})
    assert login.status_code == 200
    token_user = dict(ann, access_token=login.json()["access_token"])

    me = api.get("/auth/me", user=token_user)
    assert me.status_code == 200
    assert me.json()["email"] == ann["user"]["email"]
    assert "password" not in me.text and "password_hash" not in me.text

    assert api.post("/users/{}/follow".format(bob["id"]), user=ann).status_code == 204
    assert api.post("/users/{}/follow".format(bob["id"]), user=ann).status_code == 204  # idempotent

    followers = api.get("/users/{}/followers".format(bob["id"]), user=bob).json()
    assert [user["id"] for user in followers["items"]] == [ann["id"]]
    profile = api.get("/users/{}".format(bob["id"]), user=ann).json()
    assert profile["followers_count"] == 1 and profile["is_following"] is True
