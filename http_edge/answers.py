"""What every service's answers share: how a time is written, and how a user is shown.

Each answer is one marshmallow schema that both serializes it (`dump`) and
describes it in the API document, so the two cannot drift apart. The
services' schemas build on the fields here.
"""
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from marshmallow import Schema, fields

from services.shared import clock


class Time(fields.DateTime):
    """A time in an answer: ISO 8601 UTC to the second (`2026-11-23T18:00:00Z`),
    the one format of every answer (services.shared.clock.iso)."""

    def _serialize(self, value: str | datetime | None, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if isinstance(value, str):  # already written, e.g. carried by an event
            return value
        return clock.iso(value)


class UserSummary(Schema):
    """A user as other people see them beside what they made or joined."""

    id = fields.UUID(required=True)
    username = fields.String(required=True, allow_none=True, metadata={"description": "null for a deleted user"})
    display_name = fields.String(required=True)
    avatar_url = fields.String(required=True, allow_none=True)


DELETED_USER_NAME = "Deleted user"


def deleted_user(user_id: str) -> dict[str, Any]:
    """How a user whose account is gone is shown, wherever they appear."""
    return {"id": user_id, "username": None, "display_name": DELETED_USER_NAME, "avatar_url": None}


def user_or_deleted(users: Mapping[str, dict[str, Any]], user_id: str) -> dict[str, Any]:
    """The summary of user_id among `users` ({id: summary}), or the deleted user's."""
    return users.get(user_id) or deleted_user(user_id)
