"""Field types for request schemas, strict about what reaches the database."""
import re
import unicodedata

from marshmallow import ValidationError, fields, validate

# PostgreSQL cannot store NUL, and other control characters in names and titles
# only serve spoofing. Bodies may keep newlines and tabs.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x1f\x7f]")


class Text(fields.String):
    """A string of `min`..`max` characters, NFC-normalised, without control characters."""

    def __init__(self, min=0, max=255, multiline=False, strip=True, **kwargs):
        self.multiline = multiline
        self.strip = strip
        super().__init__(validate=validate.Length(min=min, max=max), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("Not a string.")
        value = unicodedata.normalize("NFC", value)
        if self.strip:
            value = value.strip()
        forbidden = _CONTROL if self.multiline else _CONTROL_OR_NEWLINE
        if forbidden.search(value):
            raise ValidationError("Contains control characters.")
        if any(0xD800 <= ord(char) <= 0xDFFF for char in value):
            raise ValidationError("Contains unpaired surrogates.")
        return value


class StrictInteger(fields.Integer):
    """An integer that must arrive as a JSON number, not a string or a bool."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise ValidationError("Not a valid integer.")
        return super()._deserialize(value, attr, data, **kwargs)


class StrictBoolean(fields.Boolean):
    """true or false only (marshmallow would also take "yes", 1, "on"...)."""

    truthy = {True}
    falsy = {False}


class UUIDString(fields.UUID):
    """A UUID, handed on as its canonical string."""

    def _deserialize(self, value, attr, data, **kwargs):
        return str(super()._deserialize(value, attr, data, **kwargs))
