"""Identifiers are UUIDs; anything else names nothing."""
import uuid


def parse_uuid(value: object) -> str | None:
    """The canonical string form of a UUID, or None if value is not one."""
    if not isinstance(value, (str, uuid.UUID)):
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def valid_uuids(values: object) -> list[str]:
    """The UUIDs among values (a list), in order, without duplicates."""
    if not isinstance(values, (list, tuple)):
        return []
    parsed = (parse_uuid(value) for value in values)
    return list(dict.fromkeys(value for value in parsed if value))
