"""The rules a new password must meet (services.auth.password_policy), and the
form it is hashed and checked in."""
import unicodedata

import bcrypt
import pytest

from services.auth import password_policy
from services.auth.dependencies import Passwords
from services.auth.password_policy import BLANK, COMMON, CONTROL, PERSONAL, TOO_LONG, TOO_SHORT, UNPAIRED, problems

ANN = {"username": "ann_smith", "email": "ann.smith@example.com"}


@pytest.mark.parametrize("password", [
    "correct horse battery",   # what the suite registers with
    "Tr0ub4dor&3 again",
    "नमस्ते दुनिया 42",           # combining vowel signs are letters, not invisible
    "é" * 36,                  # 36 characters, 72 bytes: the most bcrypt reads
    "e\u0301" * 36,            # 72 code points as typed, 36 characters (72 bytes) after NFC
    "       x in the middle",
])
def test_good_passwords_pass(password):
    assert problems(password, **ANN) == []


@pytest.mark.parametrize("password, problem", [
    ("short", TOO_SHORT),
    ("e\u0301" * 7, TOO_SHORT),             # 14 code points, 7 characters after NFC
    ("é" * 37, TOO_LONG),                   # 37 characters, 74 bytes
    ("a" * 73, TOO_LONG),
    ("\ud800" * 10, UNPAIRED),
    ("tab\there ok!", CONTROL),
    ("line\nbreak ok", CONTROL),
    (" " * 8, BLANK),
    ("\t" * 8, CONTROL),
    ("\u200b" * 8, BLANK),                  # zero-width spaces
    ("\u200d\u200c\u2060\ufeff" * 2, BLANK),  # joiners, word joiner, BOM
    ("\u3164" * 8, BLANK),                  # Hangul filler: a "letter" that shows nothing
    ("\u0301" * 8, BLANK),                  # combining marks on nothing
    ("\u00a0\u2003" * 4, BLANK),            # no-break and em spaces
])
def test_structural_rules(password, problem):
    assert problems(password, **ANN) == [problem]


@pytest.mark.parametrize("password", [
    "password", "PASSWORD", "Password1", "iloveyou", "qwertyuiop", "12345678",
    "pass\u200bword",        # a zero-width space does not make it another password
    "ｐａｓｓｗｏｒｄ",          # nor does full width
    "i love you",
    "dragon12345",           # from the long list (10 characters or more)
    "ThisIsMyPassword",
    "correcthorsebatterystaple",
])
def test_common_passwords_are_refused(password):
    assert COMMON in problems(password, **ANN)


@pytest.mark.parametrize("password", [
    "ann_smith", "ANN_SMITH", "Ann_Smith!2024", "my ann.smith pw",
    "ann.smith@example.com", "ANN.SMITH@EXAMPLE.COM", "xann.smith@example.comx",
    "smith@example",           # part of the email
])
def test_the_username_or_email_in_any_case_is_refused(password):
    assert PERSONAL in problems(password, **ANN)


def test_spaces_do_not_hide_the_username():
    assert PERSONAL in problems("Ann Smith 2024", username="annsmith", email="a@example.com")


def test_a_short_username_inside_a_longer_password_is_no_hint():
    assert problems("cannonball runs far", username="ann", email="a.b@example.com") == []
    assert PERSONAL in problems("ann_ann_ann", username="ann_ann_ann", email="x@example.com")


def test_every_message_is_a_sentence_a_client_can_show():
    for message in (TOO_SHORT, TOO_LONG, CONTROL, BLANK, COMMON, PERSONAL, UNPAIRED):
        assert message.endswith(".") and len(message) < 120


def test_the_document_states_lengths_in_characters():
    assert password_policy.MIN_CHARACTERS == 8 and password_policy.MAX_CHARACTERS == 72
    assert "NFC" in password_policy.DESCRIPTION and "72 bytes" in password_policy.DESCRIPTION


def test_a_password_is_hashed_in_nfc_so_any_keyboard_logs_in():
    passwords = Passwords(rounds=4)
    composed, decomposed = "caf\u00e9 au lait", "cafe\u0301 au lait"
    stored = passwords.hash(decomposed)
    assert bcrypt.checkpw(composed.encode(), stored.encode())
    assert passwords.verify(composed, stored) and passwords.verify(decomposed, stored)


def test_a_password_set_before_nfc_hashing_still_logs_in():
    passwords = Passwords(rounds=4)
    decomposed = "cafe\u0301 au lait"
    legacy = bcrypt.hashpw(decomposed.encode(), bcrypt.gensalt(4)).decode()  # hashed as typed
    assert unicodedata.normalize("NFC", decomposed) != decomposed
    assert passwords.verify(decomposed, legacy)
    assert not passwords.verify("cafe au lait", legacy)
