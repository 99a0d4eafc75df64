"""Email verification, email change and password reset over real HTTP, with
the mail read from the development SMTP sink the system sends to."""
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import text

from services.auth.account_tokens import hash_token
from tests.conftest import Api, eventually, lone_auth
from tests.support.mail import link_token, parts

pytestmark = pytest.mark.integration


def me(api, user):
    response = api.get("/auth/me", user=user)
    assert response.status_code == 200, response.text
    return response.json()


def settled(db_engine):
    """Whether the mail worker has settled every mail queued so far."""
    with db_engine.connect() as connection:
        return connection.scalar(text("SELECT count(*) FROM auth.outgoing_mail WHERE settled_at IS NULL")) == 0


def stored_token(db_engine, user_id, purpose, email, age):
    """A token of the user as if mailed `age` ago (with the lifetime it had then); returns it raw."""
    raw = secrets.token_urlsafe(32)
    created = datetime.now(UTC) - age
    lifetime = timedelta(hours=48) if purpose == "verify_email" else timedelta(minutes=60)
    with db_engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO auth.account_tokens (id, token_hash, purpose, user_id, email, created_at, expires_at) "
            "VALUES (:id, :hash, :purpose, :user_id, :email, :created, :expires)"
        ), {"id": str(uuid.uuid4()), "hash": hash_token(raw), "purpose": purpose, "user_id": user_id,
            "email": email, "created": created, "expires": created + lifetime})
    return raw


def forgot(api, email):
    return api.post("/auth/password/forgot", json={"email": email})


def reset_token(api, mail_sink, email, count=1):
    assert forgot(api, email).status_code == 202
    return link_token(mail_sink.wait_for(email, count)[-1])


# Verification ------------------------------------------------------------------------

def test_registration_mails_a_verification_link_that_works_once(api, mail_sink, db_engine):
    ann = api.register(display_name="Ann <b>&</b>")
    email = ann["user"]["email"]
    assert ann["user"]["email_verified"] is False

    (mail,) = mail_sink.wait_for(email)
    assert mail["Subject"] == "Confirm your email for LifyTP"
    assert mail["From"] == "LifyTP <no-reply@lifytp.localhost>"
    assert mail["Message-ID"].endswith("@lifytp.localhost>")
    text_part, html_part = parts(mail)
    assert "Hello Ann <b>&</b>," in text_part
    # The display name is the user's text: escaped in the HTML part.
    assert "Ann &lt;b&gt;&amp;&lt;/b&gt;" in html_part and "<b>&</b>" not in html_part
    token = link_token(mail)
    assert f"https://app.example/verify-email?token={token}" in text_part
    assert f'href="https://app.example/verify-email?token={token}"' in html_part
    # Only the mail's id went through the broker, and only a hash is stored.
    with db_engine.connect() as connection:
        payloads = connection.scalars(text(
            "SELECT payload FROM auth.outbox WHERE event_type = 'mail_queued'")).all()
        stored = connection.scalars(text("SELECT token_hash FROM auth.account_tokens")).all()
    assert payloads and all(set(payload) == {"mail_id", "domain_event_id"} for payload in payloads)
    assert hash_token(token) in stored and token not in stored

    assert api.post("/auth/email/verify", json={"token": token}).status_code == 204
    assert me(api, ann)["email_verified"] is True

    again = api.post("/auth/email/verify", json={"token": token})
    assert again.status_code == 422 and again.json()["error"]["code"] == "INVALID_TOKEN"


def test_unknown_expired_and_malformed_verification_tokens_are_refused(api, db_engine):
    ann = api.register()
    expired = stored_token(db_engine, ann["id"], "verify_email", ann["user"]["email"], timedelta(hours=49))
    for token in (expired, secrets.token_urlsafe(32)):
        refused = api.post("/auth/email/verify", json={"token": token})
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "INVALID_TOKEN"
    for body in ({"token": "not a token!"}, {"token": 5}, {}):
        refused = api.post("/auth/email/verify", json=body)
        assert refused.status_code == 422 and refused.json()["error"]["details"].get("token"), refused.text
    assert me(api, ann)["email_verified"] is False


def test_asking_for_another_verification_mail_is_rate_limited(api, mail_sink):
    ann = api.register()
    email = ann["user"]["email"]
    for _ in range(3):
        assert api.post("/auth/email/verify/resend", user=ann).status_code == 202
    limited = api.post("/auth/email/verify/resend", user=ann)
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "RATE_LIMITED"
    assert 0 < int(limited.headers["Retry-After"]) <= 3600
    mails = mail_sink.wait_for(email, 4)  # the registration's and three more
    tokens = {link_token(mail) for mail in mails}
    assert len(tokens) == 4
    # Any of them verifies.
    assert api.post("/auth/email/verify", json={"token": tokens.pop()}).status_code == 204
    assert api.post("/auth/email/verify/resend").status_code == 401


# Email change ------------------------------------------------------------------------

def test_changing_the_email_needs_the_password_and_verifies_the_new_address(api, mail_sink, db_engine):
    ann, bob = api.register(), api.register()
    old_email = ann["user"]["email"]
    registration_token = link_token(mail_sink.wait_for(old_email)[0])
    new_email = "new-" + old_email

    wrong = api.post("/auth/email", user=ann, json={"email": new_email, "password": "not the password"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "INVALID_CREDENTIALS"
    taken = api.post("/auth/email", user=ann, json={"email": bob["user"]["email"].upper(),
                                                      "password": ann["password"]})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "EMAIL_TAKEN"
    bad = api.post("/auth/email", user=ann, json={"email": "nope", "password": ann["password"]})
    assert bad.status_code == 422 and "email" in bad.json()["error"]["details"]
    assert me(api, ann)["email"] == old_email

    changed = api.post("/auth/email", user=ann, json={"email": " " + new_email.upper(), "password": ann["password"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["email"] == new_email and changed.json()["email_verified"] is False

    (notice,) = [mail for mail in mail_sink.wait_for(old_email, 2) if "changed" in mail["Subject"]]
    assert new_email in parts(notice)[0]
    (verification,) = mail_sink.wait_for(new_email)
    # The link mailed to the old address no longer verifies anything.
    stale = api.post("/auth/email/verify", json={"token": registration_token})
    assert stale.status_code == 422 and stale.json()["error"]["code"] == "INVALID_TOKEN"
    assert api.post("/auth/email/verify", json={"token": link_token(verification)}).status_code == 204
    assert me(api, ann)["email_verified"] is True
    login = api.post("/auth/login", json={"login": new_email, "password": ann["password"]})
    assert login.status_code == 200


# Password reset ------------------------------------------------------------------------

def test_forgot_answers_the_same_for_any_address_and_mails_only_an_account(api, mail_sink, db_engine):
    ann = api.register()
    unknown = "nobody-" + uuid.uuid4().hex[:10] + "@example.com"

    def work_done():
        with db_engine.connect() as connection:
            return (connection.scalar(text("SELECT count(*) FROM auth.outgoing_mail WHERE kind = 'password_reset'")),
                    connection.scalar(text("SELECT count(*) FROM auth.outbox")))

    answers = []
    for address in (unknown, ann["user"]["email"].upper()):
        before = work_done()
        answers.append(forgot(api, address))
        # The same writes for either address: one mail queued, one event.
        assert [after - was for after, was in zip(work_done(), before, strict=True)] == [1, 1]
    assert [answer.status_code for answer in answers] == [202, 202]
    assert answers[0].content == answers[1].content == b""
    varying = {"date", "x-request-id"}
    assert ({k.lower(): v for k, v in answers[0].headers.items() if k.lower() not in varying}
            == {k.lower(): v for k, v in answers[1].headers.items() if k.lower() not in varying})

    (mail,) = mail_sink.wait_for(ann["user"]["email"], 2)[1:]
    assert mail["Subject"] == "Reset your LifyTP password"
    assert "https://app.example/reset-password?token=" in parts(mail)[0]
    eventually(lambda: settled(db_engine))
    assert mail_sink.messages(unknown) == []


def test_a_reset_sets_the_password_once_and_signs_out_every_session(api, mail_sink):
    ann = api.register()
    email = ann["user"]["email"]
    second_session = api.post("/auth/login", json={"login": email, "password": ann["password"]}).json()
    token = reset_token(api, mail_sink, email, count=2)

    weak = api.post("/auth/password/reset", json={"token": token, "password": "short"})
    assert weak.status_code == 422 and weak.json()["error"]["details"]["password"]
    personal = api.post("/auth/password/reset", json={"token": token, "password": "x" + ann["user"]["username"]})
    assert personal.status_code == 422
    assert personal.json()["error"]["details"] == {"password": ["Must not be or contain your username or email."]}

    new_password = "a brand new secret 42"
    assert api.post("/auth/password/reset", json={"token": token, "password": new_password}).status_code == 204

    for session in (ann, second_session):
        refused = api.post("/auth/refresh", json={"refresh_token": session["refresh_token"]})
        assert refused.status_code == 401
    assert api.post("/auth/login", json={"login": email, "password": ann["password"]}).status_code == 401
    signed_in = api.post("/auth/login", json={"login": email, "password": new_password})
    assert signed_in.status_code == 200
    # The link came to the address: it counts as verified.
    assert signed_in.json()["user"]["email_verified"] is True

    reused = api.post("/auth/password/reset", json={"token": token, "password": "yet another secret 43"})
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "INVALID_TOKEN"
    assert api.post("/auth/login", json={"login": email, "password": new_password}).status_code == 200


def test_an_old_or_unknown_reset_token_changes_nothing(api, db_engine):
    ann = api.register()
    email = ann["user"]["email"]
    five_years = stored_token(db_engine, ann["id"], "password_reset", email, timedelta(days=5 * 365))
    an_hour = stored_token(db_engine, ann["id"], "password_reset", email, timedelta(minutes=61))
    for token in (five_years, an_hour, secrets.token_urlsafe(32)):
        refused = api.post("/auth/password/reset", json={"token": token, "password": "a brand new secret 42"})
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "INVALID_TOKEN"
    assert api.post("/auth/login", json={"login": email, "password": ann["password"]}).status_code == 200
    assert api.post("/auth/refresh", json={"refresh_token": ann["refresh_token"]}).status_code == 200


def test_a_reset_link_dies_with_a_newer_reset(api, mail_sink):
    ann = api.register()
    email = ann["user"]["email"]
    first = reset_token(api, mail_sink, email, count=2)
    second = reset_token(api, mail_sink, email, count=3)
    assert api.post("/auth/password/reset", json={"token": second, "password": "a brand new secret 42"}) \
        .status_code == 204
    stale = api.post("/auth/password/reset", json={"token": first, "password": "yet another secret 43"})
    assert stale.status_code == 422


def test_forgot_is_rate_limited_per_address_mailed(api, mail_sink):
    ann = api.register()
    for _ in range(3):
        assert forgot(api, ann["user"]["email"]).status_code == 202
    limited = forgot(api, ann["user"]["email"])
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert limited.json()["error"]["details"] == {"scope": "email"}
    # An unknown address is limited alike: the answer tells nothing.
    unknown = "nobody-" + uuid.uuid4().hex[:10] + "@example.com"
    assert [forgot(api, unknown).status_code for _ in range(4)] == [202, 202, 202, 429]
    assert forgot(api, "not an address").status_code == 422


def test_forgot_is_rate_limited_per_client_address(config):
    with lone_auth("forgot_limits", 106, TRUSTED_PROXY_HOPS="1", PASSWORD_FORGOT_MAX_PER_ADDRESS="2") as running:
        api = Api(running.base_url)

        def forgot_from(address):
            email = "someone-" + uuid.uuid4().hex[:10] + "@example.com"
            return api.post("/auth/password/forgot", json={"email": email}, headers={"X-Forwarded-For": address})

        assert [forgot_from("198.51.100.7").status_code for _ in range(2)] == [202, 202]
        limited = forgot_from("198.51.100.7")
        assert limited.status_code == 429 and limited.json()["error"]["details"] == {"scope": "address"}
        assert int(limited.headers["Retry-After"]) > 0
        assert forgot_from("198.51.100.8").status_code == 202


# Mail through an SMTP outage ------------------------------------------------------------

def test_mail_waits_out_an_smtp_outage_and_is_sent_once(api, mail_sink, db_engine, config):
    ann = api.register()
    email = ann["user"]["email"]
    mail_sink.wait_for(email)
    eventually(lambda: settled(db_engine))

    mail_sink.stop()
    try:
        assert forgot(api, email).status_code == 202
        # Several attempts fail meanwhile (one a second), and the mail waits.
        time.sleep(3)
        assert not settled(db_engine)
        with ClusterRpcProxy(config, timeout=15) as rpc:
            backlog = rpc.auth.mail_backlog()
        assert backlog["waiting"] == 1 and backlog["oldest_queued_at"].endswith("Z")
    finally:
        mail_sink.start()
    mails = mail_sink.wait_for(email, 2, timeout=20)
    eventually(lambda: settled(db_engine))
    time.sleep(2)  # a second copy would have come by now
    assert len(mail_sink.messages(email)) == len(mails) == 2
    token = link_token(mails[1])
    assert api.post("/auth/password/reset", json={"token": token, "password": "a brand new secret 42"}) \
        .status_code == 204


def test_a_replayed_outbox_sends_no_mail_twice(api, mail_sink, db_engine, config):
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    ann = api.register()
    email = ann["user"]["email"]
    mail_sink.wait_for(email)
    eventually(lambda: settled(db_engine))
    with ClusterRpcProxy(config, timeout=15) as rpc:
        assert rpc.auth.replay_outbox(since) >= 2  # the registration and its mail, at least
        eventually(lambda: rpc.auth.outbox_backlog() == 0)
        time.sleep(2)  # the mail worker has had the event again by now
        assert rpc.auth.mail_backlog()["waiting"] == 0
    assert len(mail_sink.messages(email)) == 1


def test_the_newest_mail_as_readme_shows_it_carries_a_token_that_verifies(api, mail_sink, tmp_path):
    """README's way to read a mail in make run (`mail_sink --show-newest`):
    the link comes out whole, decoded, and its token works."""
    ann = api.register()
    mail_sink.wait_for(ann["user"]["email"])
    # Ann's mail alone in a directory: the suite's sink gets other tests' mail too.
    (ann_file,) = [name for name in os.listdir(mail_sink.directory) if name.endswith(".eml")
                   and ann["user"]["email"].encode() in open(os.path.join(mail_sink.directory, name), "rb").read()]
    shutil.copy(os.path.join(mail_sink.directory, ann_file), tmp_path)
    shown = subprocess.run([sys.executable, "-m", "services.shared.mail_sink", "--show-newest", "--dir", str(tmp_path)],
                           capture_output=True, text=True, check=True).stdout
    assert f"To: {ann['user']['email']}" in shown
    token = re.search(r"verify-email\?token=(\S+)", shown).group(1)
    assert api.post("/auth/email/verify", json={"token": token}).status_code == 204
    assert me(api, ann)["email_verified"] is True
