"""Field types for request schemas, strict about what reaches the database."""
from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields, validate

from services.shared import text


class Text(fields.String):
    """A string of `min`..`max` characters under the text policy
    (services.shared.text): NFC-normalised, trimmed, without control, bidi or
    invisible-only spoofing. The OpenAPI document states the policy from
    here, so every text field of every service says it the same way."""

    def __init__(self, min: int = 0, max: int = 255, multiline: bool = False, strip: bool = True,
                 **kwargs: Any) -> None:
        self.multiline = multiline
        self.strip = strip
        self.max = max
        metadata = {**text.schema(multiline=multiline, required=min >= 1), **kwargs.pop("metadata", {})}
        super().__init__(validate=validate.Length(min=min, max=max), metadata=metadata, **kwargs)

    def _deserialize(self, value: object, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError("Not a string.")
        # As sent, as the document's maxLength counts; after normalising too
        # (the Length validator), as the column counts.
        if len(value) > self.max:
            raise ValidationError(f"Longer than maximum length {self.max}.")
        try:
            return text.check(value, multiline=self.multiline, strip=self.strip)
        except text.Refused as exc:
            raise ValidationError(str(exc)) from None


class StrictInteger(fields.Integer):
    """An integer that must arrive as a JSON number, not a string or a bool."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(
        self, value: object, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any,
    ) -> int | None:
        if isinstance(value, bool):
            raise ValidationError("Not a valid integer.")
        return super()._deserialize(value, attr, data, **kwargs)


class StrictBoolean(fields.Boolean):
    """true or false only (marshmallow would also take "yes", 1, "on"...)."""

    truthy = {True}
    falsy = {False}

    def _deserialize(
        self, value: object, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any,
    ) -> bool | None:
        # 1 and 0 equal True and False, so the sets above alone would take them.
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class UUIDString(fields.UUID):
    """A UUID, handed on as its canonical string."""

    # A str where fields.UUID gives a uuid.UUID: changing that type is the point.
    def _deserialize(  # type: ignore[override]
        self, value: object, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any,
    ) -> str:
        return str(super()._deserialize(value, attr, data, **kwargs))
