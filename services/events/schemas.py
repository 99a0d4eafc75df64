"""Request schemas of the events API, and the views it answers with."""
from datetime import UTC, datetime, timedelta
from zoneinfo import available_timezones

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates, validates_schema

from http_edge.fields import StrictBoolean, StrictInteger, Text, UUIDString
from http_edge.pagination import PageArgs
from services.events import recurrence

VISIBILITIES = ("public", "followers", "private")
MAX_EVENT_DURATION = timedelta(days=31)
DEFAULT_EVENT_DURATION = timedelta(hours=1)
MAX_RANGE = timedelta(days=366)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
MAX_MEDIA_PER_POST = 10
# What uploads may be, as their bytes say.
MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp", "video/mp4", "video/webm")


class Moment(fields.DateTime):
    """An ISO 8601 time with an offset (`2026-11-23T18:00:00Z`), handed on in UTC."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or len(value) > 40:
            raise ValidationError("Not an ISO 8601 time.")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError("Not an ISO 8601 time.") from None
        if moment.tzinfo is None:
            raise ValidationError("Give an offset or Z (times are UTC).")
        try:
            moment = moment.astimezone(UTC)
        except OverflowError:
            raise ValidationError("Out of range.") from None
        if not EARLIEST <= moment < LATEST:
            raise ValidationError("Out of range.")
        return moment


def _timezone_names():
    return sorted(name for name in available_timezones() | {"UTC"} if recurrence.valid_timezone(name))


class TimezoneName(fields.String):
    """An IANA zone name. The document lists them all, so a generated client
    offers exactly the names accepted."""

    def __init__(self, **kwargs):
        super().__init__(metadata={"enum": _timezone_names()}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if len(value) > 64 or not recurrence.valid_timezone(value):
            raise ValidationError("Not an IANA timezone name (e.g. Europe/Paris).")
        return value


class Rule(fields.String):
    """One RRULE line (RFC 5545), checked by services.events.recurrence."""

    def __init__(self, **kwargs):
        metadata = {"minLength": 1, "maxLength": recurrence.MAX_RULE_LENGTH + len("RRULE:"),
                    "example": "FREQ=WEEKLY;BYDAY=MO;COUNT=10",
                    "description": "FREQ is DAILY, WEEKLY, MONTHLY or YEARLY; the other parts allowed are INTERVAL "
                                   "(1-100), COUNT, UNTIL, BYDAY, BYMONTHDAY, BYMONTH and WKST, each once. A series "
                                   f"is cut at {recurrence.MAX_OCCURRENCES} occurrences or "
                                   f"{recurrence.MAX_SERIES_YEARS} years. null for a single event."}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        try:
            return recurrence.normalise_rule(value)
        except recurrence.InvalidRule as exc:
            raise ValidationError(str(exc)) from None


class EventFields(Schema):
    title = Text(min=1, max=200)
    description = Text(max=5000, multiline=True)
    starts_at = Moment()
    ends_at = Moment(allow_none=True)
    timezone = TimezoneName()
    location = Text(max=300)
    is_online = StrictBoolean()
    visibility = fields.String(validate=validate.OneOf(VISIBILITIES))
    capacity = StrictInteger(allow_none=True, validate=validate.Range(min=1, max=100_000))
    cover_media_id = UUIDString(allow_none=True)
    rrule = Rule(allow_none=True)

    @validates("title")
    def not_blank(self, value, **kwargs):
        if not value:
            raise ValidationError("Must not be blank.")


class EventCreate(EventFields):
    title = Text(min=1, max=200, required=True)
    starts_at = Moment(required=True)
    visibility = fields.String(required=True, validate=validate.OneOf(VISIBILITIES))


class EventUpdate(EventFields):
    pass


def check_times(starts_at, ends_at):
    """Field errors of an event's times, after defaults are applied."""
    if ends_at <= starts_at:
        return {"ends_at": ["Must be after starts_at."]}
    if ends_at - starts_at > MAX_EVENT_DURATION:
        return {"ends_at": [f"An event lasts at most {MAX_EVENT_DURATION.days} days."]}
    return {}


class RangeArgs(PageArgs):
    # `from` is a Python keyword: read it under another attribute name.
    range_from = Moment(data_key="from", required=True)
    range_to = Moment(data_key="to", required=True)

    @validates_schema
    def bounded(self, data, **kwargs):
        if "range_from" in data and "range_to" in data:
            if data["range_to"] <= data["range_from"]:
                raise ValidationError({"to": ["Must be after from."]})
            if data["range_to"] - data["range_from"] > MAX_RANGE:
                raise ValidationError({"to": [f"A range spans at most {MAX_RANGE.days} days."]})


class EventSearchArgs(RangeArgs):
    q = Text(min=1, max=100)
    organizer_id = UUIDString()


class PostCreate(Schema):
    body = Text(min=1, max=5000, multiline=True, required=True)
    event_id = UUIDString(allow_none=True)
    media_ids = fields.List(UUIDString(), validate=validate.Length(max=MAX_MEDIA_PER_POST), load_default=list)

    @validates("body")
    def not_blank(self, value, **kwargs):
        if not value:
            raise ValidationError("Must not be blank.")


class PostListArgs(PageArgs):
    author_id = UUIDString()
    event_id = UUIDString()


class CalendarUrl(Schema):
    url = fields.String(required=True, validate=[
        validate.Length(min=1, max=2000),
        validate.Regexp(r"^[Hh][Tt][Tt][Pp][Ss]?://\S+$", error="Must be an http or https URL."),
    ])


# Answers (what the API document says each call returns) --------------------------

class UserSummary(Schema):
    id = fields.UUID(required=True)
    username = fields.String(required=True, allow_none=True, metadata={"description": "null for a deleted user"})
    display_name = fields.String(required=True)
    avatar_url = fields.String(required=True, allow_none=True)


class Participant(UserSummary):
    joined_at = fields.DateTime(required=True)


class EventAnswer(Schema):
    id = fields.UUID(required=True)
    occurrence_id = fields.String(required=True, allow_none=True, metadata={
        "description": "`<id>:<starts_at>` for an occurrence of a recurring event, else null"})
    title = fields.String(required=True)
    description = fields.String(required=True)
    starts_at = fields.DateTime(required=True)
    ends_at = fields.DateTime(required=True)
    timezone = fields.String(required=True)
    location = fields.String(required=True)
    is_online = fields.Boolean(required=True)
    visibility = fields.String(required=True, metadata={"enum": list(VISIBILITIES)})
    status = fields.String(required=True, metadata={"enum": ["active", "cancelled"]})
    capacity = fields.Integer(required=True, allow_none=True)
    participants_count = fields.Integer(required=True)
    cover_media_id = fields.UUID(required=True, allow_none=True)
    cover_url = fields.String(required=True, allow_none=True)
    rrule = fields.String(required=True, allow_none=True)
    series_starts_at = fields.DateTime(required=True)
    organizer = fields.Nested(UserSummary, required=True)
    my_status = fields.String(required=True, allow_none=True, metadata={"enum": ["organizer", "joined", None]})
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class MediaRef(Schema):
    id = fields.UUID(required=True)
    url = fields.String(required=True)


class PostAnswer(Schema):
    id = fields.UUID(required=True)
    body = fields.String(required=True)
    event_id = fields.UUID(required=True, allow_none=True)
    media = fields.List(fields.Nested(MediaRef), required=True)
    author = fields.Nested(UserSummary, required=True)
    created_at = fields.DateTime(required=True)


class FeedItem(Schema):
    """A post (the fields of PostAnswer) or an event (those of EventAnswer)."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True, metadata={"enum": ["post", "event"]})
    id = fields.UUID(required=True)
    created_at = fields.DateTime(required=True)


class MediaAnswer(Schema):
    id = fields.UUID(required=True)
    owner_id = fields.UUID(required=True)
    url = fields.String(required=True)
    content_type = fields.String(required=True)
    size = fields.Integer(required=True)


class ImportAnswer(Schema):
    imported = fields.Integer(required=True)
    updated = fields.Integer(required=True)
    skipped = fields.Integer(required=True)
    errors = fields.List(fields.Dict(), required=True)


def multipart_file(description):
    """A raw OpenAPI request body: one file in the multipart field `file`."""
    return {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary", "description": description}},
    }}}}


CALENDAR_IMPORT_BODY = {"required": True, "content": {
    "multipart/form-data": multipart_file("An .ics file of at most 1 MiB.")["content"]["multipart/form-data"],
    "application/json": {"schema": CalendarUrl},
}}
CALENDAR_FILE_ANSWER = {"description": "My calendar (organized or joined) as iCalendar.",
                        "content": {"text/calendar": {"schema": {"type": "string"}}}}
MEDIA_CONTENT_ANSWER = {"description": "The bytes, with their type.", "content": {
    content_type: {"schema": {"type": "string", "format": "binary"}}
    for content_type in MEDIA_TYPES
}}
MEDIA_REDIRECT_ANSWER = {"description": "Stored in S3: a redirect to a short-lived URL of the bytes."}


# Views -------------------------------------------------------------------------

def iso(moment):
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def deleted_user(user_id):
    return {"id": user_id, "username": None, "display_name": "Deleted user", "avatar_url": None}


def media_url(media_id):
    return f"/media/{media_id}"


def event_view(event, users, my_status, occurrence_start=None):
    duration = event.ends_at - event.starts_at
    starts_at = occurrence_start or event.starts_at
    return {
        "id": event.id,
        # Occurrences of a recurring event share the event id; the pair
        # (id, starts_at) names one of them.
        "occurrence_id": f"{event.id}:{iso(starts_at)}" if event.rrule else None,
        "title": event.title,
        "description": event.description,
        "starts_at": iso(starts_at),
        "ends_at": iso(starts_at + duration),
        "timezone": event.timezone,
        "location": event.location,
        "is_online": event.is_online,
        "visibility": event.visibility,
        "status": event.status,
        "capacity": event.capacity,
        "participants_count": event.participants_count,
        "cover_media_id": event.cover_media_id,
        "cover_url": media_url(event.cover_media_id) if event.cover_media_id else None,
        "rrule": event.rrule,
        "series_starts_at": iso(event.starts_at),
        "organizer": users.get(event.organizer_id) or deleted_user(event.organizer_id),
        "my_status": my_status,
        "created_at": iso(event.created_at),
        "updated_at": iso(event.updated_at),
    }


def post_view(post, users):
    return {
        "id": post.id,
        "body": post.body,
        "event_id": post.event_id,
        "media": [{"id": media_id, "url": media_url(media_id)} for media_id in post.media_ids],
        "author": users.get(post.author_id) or deleted_user(post.author_id),
        "created_at": iso(post.created_at),
    }


def media_view(media):
    return {
        "id": media.id,
        "owner_id": media.owner_id,
        "url": media_url(media.id),
        "content_type": media.content_type,
        "size": media.size,
    }
