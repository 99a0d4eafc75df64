"""The text policy on its own: what it refuses and why, what every script and
emoji keeps, what `clean` makes of foreign text, and that the pattern the
OpenAPI document states agrees with what the policy does."""
import random
import re
import unicodedata

import pytest

from http_edge.fields import Text
from services.shared import text
from tests.fixtures.text_samples import ONE_LINE_ONLY, REAL_TEXT, SPOOFS, ZALGO


@pytest.mark.parametrize("name, value, reason", SPOOFS + ONE_LINE_ONLY, ids=[c[0] for c in SPOOFS + ONE_LINE_ONLY])
def test_one_line_text_refuses_spoofing(name, value, reason):
    with pytest.raises(text.Refused, match=re.escape(reason)):
        text.check(value)


@pytest.mark.parametrize("name, value, reason", SPOOFS, ids=[case[0] for case in SPOOFS])
def test_multi_line_text_refuses_the_same_spoofing(name, value, reason):
    with pytest.raises(text.Refused, match=re.escape(reason)):
        text.check(value, multiline=True)


@pytest.mark.parametrize("name, value", REAL_TEXT, ids=[case[0] for case in REAL_TEXT])
def test_every_script_and_emoji_is_text(name, value):
    assert text.check(value) == unicodedata.normalize("NFC", value)
    assert text.check(value, multiline=True) == unicodedata.normalize("NFC", value)


def test_text_is_stored_nfc_and_trimmed():
    assert text.check("  Cafe\u0301  ") == "Café"
    assert text.check("   ") == ""


def test_multi_line_text_keeps_tabs_and_stores_every_line_break_as_lf():
    assert text.check("a\r\nb\rc\u2028d\u2029e\tf", multiline=True) == "a\nb\nc\nd\ne\tf"


@pytest.mark.parametrize("name, value, reason", SPOOFS + ONE_LINE_ONLY, ids=[c[0] for c in SPOOFS + ONE_LINE_ONLY])
def test_clean_makes_foreign_text_pass_the_policy(name, value, reason):
    for multiline in (False, True):
        cleaned = text.clean(value, multiline=multiline)
        assert text.check(cleaned, multiline=multiline) == cleaned


def test_clean_keeps_what_can_be_kept():
    assert text.clean("Meet\x1b[31m \u202eup\u202c") == "Meet[31m up"
    assert text.clean("two\nlines\tand a tab") == "two lines and a tab"
    assert text.clean("two\r\nlines", multiline=True) == "two\nlines"
    assert len(text.clean(ZALGO)) == 1 + text.MAX_COMBINING_MARKS  # the ninth mark goes
    assert text.clean("\u0301\u0308 accent first") == "accent first"
    assert text.clean("\u200b\u3164 \u2800") == ""
    for _, value in REAL_TEXT:
        assert text.clean(value) == unicodedata.normalize("NFC", value)


# Random text from an alphabet weighted towards what the policy is about.
ALPHABET = (
    list("abc XYZ 09.-_") + ["\t", "\n", "\r", "\r\n", "\x00", "\x1b", "\x07", "\x1f", "\x7f", "\x85", "\x9b",
                             "\u00a0", "\u2003", "\u3000", "\u2028", "\u2029", "\u202a", "\u202e", "\u2066", "\u2069",
                             "\u206f", "\ufff9", "\u200b", "\u200c", "\u200d", "\u200f", "\u2060", "\ufeff", "\xad",
                             "\u3164", "\u2800", "\ufe0f", "\U000e0041", "\u0301", "\u0336", "\u20e3", "\u093c",
                             "\u093f", "e\u0301", "東", "ع", "ह", "🎉", "👍", "🏽", "\U0001faea"]
)


def random_strings(count, seed):
    rng = random.Random(seed)
    for _ in range(count):
        yield "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 14)))


def test_clean_output_always_passes_check():
    for value in random_strings(5000, seed=1):
        for multiline in (False, True):
            cleaned = text.clean(value, multiline=multiline)
            assert text.check(cleaned, multiline=multiline) == cleaned, repr(value)


def _known_gap(value):
    """What a JSON Schema pattern cannot say, and the description does:
    combining marks counted or first (after trimming), invisible characters
    past U+FFFF."""
    stripped = unicodedata.normalize("NFC", value).strip()
    return bool(stripped) and (
        text._is_mark(stripped[0]) or text._without_excess_marks(stripped) != stripped
        or not text._has_visible(stripped))


@pytest.mark.parametrize("multiline", [False, True])
@pytest.mark.parametrize("required", [False, True])
def test_the_documented_pattern_agrees_with_the_policy(multiline, required):
    """Refused by the pattern: refused by the API (schemathesis' negative data
    rejection). Allowed by the pattern: accepted, but for what only the
    description can state (positive data acceptance)."""
    field = Text(min=1 if required else 0, max=50, multiline=multiline)
    pattern = re.compile(field.metadata["pattern"])
    for value in random_strings(4000, seed=2):
        try:
            field.deserialize(value)
            accepted = True
        except Exception:  # noqa: BLE001 - marshmallow's ValidationError, whichever rule refused
            accepted = False
        # fullmatch: JSON Schema's `$` (ECMA-262) is the end, where Python's
        # also matches before a final line feed.
        if not pattern.fullmatch(value):
            assert not accepted, repr(value)
        elif not accepted:
            assert _known_gap(value), repr(value)


def test_the_field_states_the_policy_in_the_document():
    one_line, multi_line = Text(min=1, max=80).metadata, Text(max=500, multiline=True).metadata
    assert "no control characters or line breaks" in one_line["description"]
    assert "tab and line breaks" in multi_line["description"]
    assert "U+202A-202E" in one_line["description"] and "combining marks" in one_line["description"]
    assert "\\u202e" in one_line["pattern"] and "\\u000a" in one_line["pattern"]
    assert not re.search(multi_line["pattern"], "\u200b") and re.search(multi_line["pattern"], "two\nlines")
