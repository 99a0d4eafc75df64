"""Authentication hardening, each attack against the real system:

- weak passwords (common, the user's own name, blank or invisible) are
  refused with 422 and nothing is created.
"""
import json
import uuid

import pytest

from tests.integration.test_auth_api import fingerprint

pytestmark = pytest.mark.integration

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


def test_a_login_with_a_password_that_has_no_utf8_form_is_422_not_500(api, someone):
    response = api.post("/auth/login", data=json.dumps({"login": someone["user"]["username"], "password": "\ud800"}),
                        headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and "password" in response.json()["error"]["details"]


def test_the_document_states_the_password_rules_and_the_registration_limit(api):
    document = api.get("/openapi.json").json()
    password = document["components"]["schemas"]["RegisterRequest"]["properties"]["password"]
    assert (password["minLength"], password["maxLength"]) == (8, 72)
    assert "NFC" in password["description"] and "commonly used" in password["description"]
    assert "429" in document["paths"]["/auth/register"]["post"]["responses"]
