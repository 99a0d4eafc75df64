"""One policy for every string a person writes and others read, whatever its source.

Names, bios, titles, posts and messages are shown to other people on a phone,
so text that renders as something other than what it says is refused:

- Control characters (C0, DEL, C1): they serve no purpose in a title and
  some (ESC, BEL) act on terminals and logs. Multi-line fields keep tab and
  line breaks; CR LF, CR, U+2028 and U+2029 are stored as LF there.
- Bidirectional embedding, override and isolate controls (U+202A-202E,
  U+2066-2069) and the deprecated format controls next to them (U+206A-206F):
  `abc\u202egnp.exe` reads as `abcexe.png`. The marks (LRM, RLM, ALM), which
  cannot reorder text, are kept: Arabic and Hebrew text needs them.
- Interlinear annotation controls (U+FFF9-FFFB), which can hide the text
  between them.
- A value with nothing visible: only spaces, zero-width and other default
  ignorable characters (U+200B, U+3164 HANGUL FILLER...), the blank braille
  pattern, or combining marks with nothing to sit on.
- More than MAX_COMBINING_MARKS combining marks on one character ("Zalgo"
  text that spills over the lines around it), or a value that starts with
  one (it would sit on whatever the app draws before it).
- Unpaired surrogates (they cannot be stored as UTF-8).

Everything else is text: every script, emoji with their joiners, variation
selectors, skin tones and tag sequences, private-use characters, and code
points newer than this Python's Unicode tables (tomorrow's emoji).

`check` is for input from the API: it returns the normalised text or raises
Refused, which says what is wrong. `clean` is for foreign data (imported
calendars): it removes what `check` would refuse, so what it returns always
passes `check`. `schema` states the policy in an OpenAPI/JSON Schema
fragment: a `pattern` with what a regular expression can say (the refused
characters, something visible), and a description of the rest.
"""
import re
import unicodedata
from collections.abc import Iterable

# Inclusive ranges of code points.
Ranges = Iterable[tuple[int, int]]

MAX_COMBINING_MARKS = 8  # Tibetan stacks reach 5 or 6; Zalgo uses dozens

_LINE_BREAKS = re.compile("\r\n|[\r\u2028\u2029]")
_ONE_LINE_BREAKS = re.compile("\r\n|[\t\n\r\u2028\u2029]")
_FOREIGN_BREAKS = re.compile("[\x0b\x0c\x85]")

# Character ranges, as code points.
_ALWAYS_REFUSED = (
    (0x00, 0x08), (0x0B, 0x0C), (0x0E, 0x1F), (0x7F, 0x9F),  # C0 but tab, LF and CR; DEL; C1
    (0x202A, 0x202E), (0x2066, 0x206F),  # bidi embedding, override, isolate; deprecated format controls
    (0xFFF9, 0xFFFB),  # interlinear annotation
)
_ONE_LINE_REFUSED = (*_ALWAYS_REFUSED, (0x09, 0x0A), (0x0D, 0x0D), (0x2028, 0x2029))
_SURROGATES = ((0xD800, 0xDFFF),)  # refused, but not named in the document's pattern (JSON tools choke on them)
# What str.strip() removes; then Unicode's Default_Ignorable_Code_Point (but
# what is refused anyway) and the blank braille pattern: none of it shows.
_WHITESPACE = ((0x09, 0x0D), (0x1C, 0x20), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
               (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000))
_IGNORABLE_BMP = ((0xAD, 0xAD), (0x34F, 0x34F), (0x61C, 0x61C), (0x115F, 0x1160), (0x17B4, 0x17B5),
                  (0x180B, 0x180F), (0x200B, 0x200F), (0x2060, 0x2065), (0x2800, 0x2800), (0x3164, 0x3164),
                  (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8))
# Not in the document's pattern either: a JavaScript pattern without the `u`
# flag cannot name characters past U+FFFF.
_IGNORABLE_ASTRAL = ((0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF))
_BIDI = ((0x202A, 0x202E), (0x2066, 0x2069))


def _char_class(*range_lists: Ranges) -> str:
    """The inside of a regular expression character class, spelled with
    escapes that Python, JavaScript and JSON Schema tools all read."""
    def spell(code: int) -> str:
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return "".join(spell(low) if low == high else f"{spell(low)}-{spell(high)}"
                   for ranges in range_lists for low, high in ranges)


def _without(ranges: Ranges, removed: Ranges) -> list[tuple[int, int]]:
    """The code points of `ranges` that are not in `removed`, as ranges."""
    gone = {code for low, high in removed for code in range(low, high + 1)}
    kept = sorted(code for low, high in ranges for code in range(low, high + 1) if code not in gone)
    merged: list[tuple[int, int]] = []
    for code in kept:
        if merged and merged[-1][1] == code - 1:
            merged[-1] = (merged[-1][0], code)
        else:
            merged.append((code, code))
    return merged


_REFUSED = {False: re.compile(f"[{_char_class(_ONE_LINE_REFUSED, _SURROGATES)}]"),
            True: re.compile(f"[{_char_class(_ALWAYS_REFUSED, _SURROGATES)}]")}
_INVISIBLE = re.compile(f"[{_char_class(_WHITESPACE, _IGNORABLE_BMP, _IGNORABLE_ASTRAL)}]")
_BIDI_CONTROL = re.compile(f"[{_char_class(_BIDI)}]")
_MARKS = ("Mn", "Me")  # marks drawn on their base character, stacking


class Refused(ValueError):
    """The text breaks the policy; the message says how, for the person who wrote it."""


def check(value: str, multiline: bool = False, strip: bool = True) -> str:
    """The text as it is stored (NFC, line breaks as LF, trimmed), or Refused."""
    value = _normalise(value, multiline)
    # Before trimming: "Title\n" is refused as the document's pattern says,
    # not stored as "Title".
    found = _REFUSED[multiline].search(value)
    if found:
        raise Refused(why_refused(found.group()))
    if strip:
        value = value.strip()
    if value and not _has_visible(value):
        raise Refused("Has nothing visible (only spaces or invisible characters).")
    if value and _is_mark(value[0]):
        raise Refused("Starts with a combining mark.")
    if _without_excess_marks(value) != value:
        raise Refused(f"More than {MAX_COMBINING_MARKS} combining marks on one character.")
    return value


def clean(value: str, multiline: bool = False) -> str:
    """Foreign text made to pass `check`: refused characters dropped (line
    breaks, vertical tabs and form feeds kept as LF, or as spaces with tabs in
    a one-line field), marks past the limit or with nothing to sit on dropped,
    trimmed; "" if nothing visible is left."""
    value = _FOREIGN_BREAKS.sub("\n", _normalise(value, multiline))  # vertical tab, form feed, NEL
    if not multiline:
        value = _ONE_LINE_BREAKS.sub(" ", value)
    value = _REFUSED[multiline].sub("", value)
    # Composed again: a removed character may have stood between a letter
    # and its accent.
    value = unicodedata.normalize("NFC", _without_excess_marks(value)).strip()
    while value and _is_mark(value[0]):
        value = value[1:].lstrip()
    return value if _has_visible(value) else ""


def schema(multiline: bool = False, required: bool = False) -> dict[str, str]:
    """JSON Schema keywords that state the policy for a text field: a value
    the pattern refuses is refused; the description says what it cannot."""
    refused_ranges = _ALWAYS_REFUSED if multiline else _ONE_LINE_REFUSED
    refused = _char_class(refused_ranges)
    whitespace = _char_class(_without(_WHITESPACE, refused_ranges))
    visible = f"[^{refused}{whitespace}{_char_class(_IGNORABLE_BMP)}]"
    anything = f"[^{refused}]*"
    pattern = f"{anything}{visible}{anything}" if required else f"(?:[{whitespace}]*|{anything}{visible}{anything})"
    return {"pattern": f"^{pattern}$", "description": _DESCRIPTION[multiline]}


_SHARED_RULES = (
    "no bidirectional embedding, override or isolate controls (U+202A-202E, U+2066-2069, U+206A-206F), "
    "no interlinear annotation (U+FFF9-FFFB); something visible, not only spaces or zero-width "
    f"characters; at most {MAX_COMBINING_MARKS} combining marks on a character, and not one first. "
    "Stored NFC-normalised and trimmed; lengths count characters after that. Every script and emoji is text."
)
_DESCRIPTION = {
    False: "One line: no control characters or line breaks; " + _SHARED_RULES,
    True: "Multi-line: no control characters but tab and line breaks (CR LF, CR, U+2028 and U+2029 are "
          "stored as LF); " + _SHARED_RULES,
}


def _normalise(value: str, multiline: bool) -> str:
    value = unicodedata.normalize("NFC", value)
    return _LINE_BREAKS.sub("\n", value) if multiline else value


def why_refused(char: str) -> str:
    code = f"U+{ord(char):04X}"
    if _BIDI_CONTROL.match(char):
        return f"Contains a bidirectional control character ({code})."
    if char in "\t\n\r\u2028\u2029":
        return f"Contains a line break or tab ({code}); this field is one line."
    if 0xD800 <= ord(char) <= 0xDFFF:
        return "Contains unpaired surrogates."
    return f"Contains control characters ({code})."


def _has_visible(value: str) -> bool:
    return any(not _INVISIBLE.match(char) and not _is_mark(char) for char in value)


def _is_mark(char: str) -> bool:
    return unicodedata.category(char) in ("Mn", "Me", "Mc")


def _stacks(char: str) -> bool:
    return unicodedata.category(char) in _MARKS


def _without_excess_marks(value: str) -> str:
    """The value with the nonspacing or enclosing marks past MAX_COMBINING_MARKS
    on one base character left out. Invisible characters between marks (a
    zero-width joiner) do not start a new base."""
    kept: list[str] = []
    run = 0
    for char in value:
        if _stacks(char):
            run += 1
            if run > MAX_COMBINING_MARKS:
                continue
        elif not _INVISIBLE.match(char) or char in " \t\n":
            run = 0
        kept.append(char)
    return "".join(kept)
