"""What auth's mails say, in plain text and in HTML.

Every value put into the HTML is escaped (a display name is whatever its
owner typed). Links end in `?token=<token>`: the app opens them, takes the
token and calls the API with it.
"""
from html import escape
from urllib.parse import urlencode

from services.shared.mail import Letter

PRODUCT = "LifyTP"


def link(base_url: str, path: str, token: str) -> str:
    """`<base>/<path>?token=<token>`: the token is the last query parameter."""
    return f"{base_url.rstrip('/')}/{path}?{urlencode({'token': token})}"


def _html(greeting: str, paragraphs: list[str], button: tuple[str, str] | None = None) -> str:
    """A plain HTML page; every argument is text, escaped here."""
    body = [f"<p>{escape(greeting)}</p>"]
    for paragraph in paragraphs:
        body.append(f"<p>{escape(paragraph)}</p>")
    if button is not None:
        label, href = button
        body.append(f'<p><a href="{escape(href, quote=True)}">{escape(label)}</a></p>'
                    f"<p>Or open this link: {escape(href)}</p>")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>"
            "<body style=\"font-family: sans-serif\">\n" + "\n".join(body) + "\n</body></html>\n")


def verify_email(recipient: str, display_name: str, url: str, valid_hours: int) -> Letter:
    greeting = f"Hello {display_name},"
    paragraphs = [f"Please confirm that {recipient} is your email address for {PRODUCT}.",
                  f"The link works once, for {valid_hours} hours. If you did not ask for it, ignore this mail."]
    text = "\n\n".join([greeting, paragraphs[0], f"Confirm your email: {url}", paragraphs[1]]) + "\n"
    return Letter(recipient, f"Confirm your email for {PRODUCT}", text,
                  _html(greeting, paragraphs, ("Confirm your email", url)))


def password_reset(recipient: str, display_name: str, url: str, valid_minutes: int) -> Letter:
    greeting = f"Hello {display_name},"
    paragraphs = [f"Someone asked to reset the password of your {PRODUCT} account.",
                  f"The link works once, for {valid_minutes} minutes, and signs you out everywhere. "
                  "If you did not ask for it, ignore this mail: your password stays as it is."]
    text = "\n\n".join([greeting, paragraphs[0], f"Choose a new password: {url}", paragraphs[1]]) + "\n"
    return Letter(recipient, f"Reset your {PRODUCT} password", text,
                  _html(greeting, paragraphs, ("Choose a new password", url)))


def email_changed(recipient: str, display_name: str, new_email: str) -> Letter:
    greeting = f"Hello {display_name},"
    paragraphs = [f"The email address of your {PRODUCT} account was changed from {recipient} to {new_email}.",
                  f"If you did not do this, contact {PRODUCT} support at once: this address no longer "
                  "receives mail for the account."]
    text = "\n\n".join([greeting, *paragraphs]) + "\n"
    return Letter(recipient, f"Your {PRODUCT} email address was changed", text, _html(greeting, paragraphs))
