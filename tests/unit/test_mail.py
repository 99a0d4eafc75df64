"""Mail without a server: SMTP_URL, the MIME message, what auth's mails say,
and the lifetimes of the tokens they carry."""
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest

from services.auth import account_tokens, letters, outgoing
from services.shared.mail import Letter, SmtpSettings, message_of

NOW = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)


# SMTP_URL ---------------------------------------------------------------------------

def test_smtp_url_names_the_security_port_and_credentials():
    assert SmtpSettings.from_url("smtp://127.0.0.1:1025") == SmtpSettings("127.0.0.1", 1025, "none")
    assert SmtpSettings.from_url("smtps://mailer:p%40ss%3Aword@smtp.example.com") == SmtpSettings(
        "smtp.example.com", 465, "tls", "mailer", "p@ss:word")
    starttls = SmtpSettings.from_url("smtp+starttls://user%40example.com:secret@smtp.example.com")
    assert (starttls.port, starttls.security, starttls.username) == (587, "starttls", "user@example.com")


@pytest.mark.parametrize("url", ["http://smtp.example.com", "smtp://", "smtp:///nohost", "127.0.0.1:25"])
def test_a_bad_smtp_url_is_refused(url):
    with pytest.raises(ValueError):
        SmtpSettings.from_url(url)


# The message ---------------------------------------------------------------------------

def test_every_mail_has_a_text_and_an_html_part_and_a_stable_message_id():
    letter = Letter("ann@example.com", "Subject", "plain words\n", "<p>html words</p>\n")
    mail_id = "5c1a9e3e-54c1-4d3b-9d0e-0a6f8a0f2b11"
    sender = "LifyTP <no-reply@lifytp.example>"
    message = message_of(letter, sender, outgoing.message_id(mail_id, sender))
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert message.get_body(("plain",)).get_content() == "plain words\n"
    assert message["Message-ID"] == f"<{mail_id}@lifytp.example>"
    assert message["To"] == "ann@example.com" and message["From"] == sender


# What auth's mails say ---------------------------------------------------------------

def test_a_link_ends_with_its_token():
    url = letters.link("https://app.example/", "verify-email", "abc_-123")
    assert url == "https://app.example/verify-email?token=abc_-123"
    assert parse_qsl(urlsplit(url).query)[-1] == ("token", "abc_-123")


def test_user_text_is_escaped_in_the_html_part_only():
    url = letters.link("https://app.example", "reset-password", "tok")
    letter = letters.password_reset("ann@example.com", '<script>alert("x")</script>', url, 60)
    assert '<script>alert("x")</script>' in letter.text and url in letter.text
    assert "<script>" not in letter.html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in letter.html
    assert f'href="{url}"' in letter.html and "60 minutes" in letter.text


def test_the_change_notice_names_both_addresses_and_carries_no_link():
    letter = letters.email_changed("old@example.com", "Ann", "new@example.com")
    assert "old@example.com" in letter.text and "new@example.com" in letter.text
    assert "http" not in letter.text and "href" not in letter.html


# Tokens ------------------------------------------------------------------------------------

def test_only_a_hash_of_a_token_is_kept_and_tokens_differ():
    (raw, stored), (other, _) = account_tokens.new_token(), account_tokens.new_token()
    assert raw != other and stored == account_tokens.hash_token(raw) and raw not in stored
    assert len(stored) == 64


@pytest.mark.parametrize("purpose, lifetime", [("verify_email", timedelta(hours=48)),
                                               ("password_reset", timedelta(minutes=60))])
def test_a_token_is_good_once_within_its_lifetime(purpose, lifetime):
    created = NOW - lifetime + timedelta(seconds=1)
    assert account_tokens.is_usable(purpose, created, created + lifetime, None, NOW)
    assert not account_tokens.is_usable(purpose, created, created + lifetime, NOW, NOW)  # used
    old = NOW - lifetime
    assert not account_tokens.is_usable(purpose, old, old + lifetime, None, NOW)  # expired
    five_years = NOW - timedelta(days=5 * 365)
    assert not account_tokens.is_usable(purpose, five_years, five_years + lifetime, None, NOW)


def test_a_stored_expiry_beyond_the_lifetime_in_force_does_not_extend_it():
    created = NOW - timedelta(minutes=61)
    assert not account_tokens.is_usable("password_reset", created, NOW + timedelta(days=1), None, NOW)
