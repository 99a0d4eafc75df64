"""Request schemas of the events API, and the answers it gives (each one
schema that both serializes and documents it). The rules they apply (limits,
defaults, allowed values) are the domain's: schedule, social and media.
"""
from datetime import UTC, datetime
from zoneinfo import available_timezones

from marshmallow import INCLUDE, Schema, ValidationError, fields, post_dump, validate, validates, validates_schema
from marshmallow.utils import get_value, missing

from http_edge import answers
from http_edge.answers import Time
from http_edge.fields import StrictBoolean, StrictInteger, Text, UUIDString
from http_edge.pagination import PageArgs
from services.events import recurrence
from services.events.media import MEDIA_TYPES
from services.events.schedule import (
    EARLIEST,
    LATEST,
    MAX_CAPACITY,
    MAX_DESCRIPTION_LENGTH,
    MAX_LOCATION_LENGTH,
    MAX_SEARCH_LENGTH,
    MAX_TITLE_LENGTH,
    STATUSES,
    VISIBILITIES,
    check_range,
)
from services.events.social import MAX_BODY_LENGTH, MAX_MEDIA_PER_POST


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
    title = Text(min=1, max=MAX_TITLE_LENGTH)
    description = Text(max=MAX_DESCRIPTION_LENGTH, multiline=True)
    starts_at = Moment()
    ends_at = Moment(allow_none=True)
    timezone = TimezoneName()
    location = Text(max=MAX_LOCATION_LENGTH)
    is_online = StrictBoolean()
    visibility = fields.String(validate=validate.OneOf(VISIBILITIES))
    capacity = StrictInteger(allow_none=True, validate=validate.Range(min=1, max=MAX_CAPACITY))
    cover_media_id = UUIDString(allow_none=True)
    rrule = Rule(allow_none=True)

    @validates("title")
    def not_blank(self, value, **kwargs):
        if not value:
            raise ValidationError("Must not be blank.")


class EventCreate(EventFields):
    title = Text(min=1, max=MAX_TITLE_LENGTH, required=True)
    starts_at = Moment(required=True)
    visibility = fields.String(required=True, validate=validate.OneOf(VISIBILITIES))


class EventUpdate(EventFields):
    pass


class RangeArgs(PageArgs):
    # `from` is a Python keyword: read it under another attribute name.
    range_from = Moment(data_key="from", required=True)
    range_to = Moment(data_key="to", required=True)

    @validates_schema
    def bounded(self, data, **kwargs):
        if "range_from" in data and "range_to" in data:
            errors = check_range(data["range_from"], data["range_to"])
            if errors:
                raise ValidationError(errors)


class EventSearchArgs(RangeArgs):
    q = Text(min=1, max=MAX_SEARCH_LENGTH)
    organizer_id = UUIDString()


class PostCreate(Schema):
    body = Text(min=1, max=MAX_BODY_LENGTH, multiline=True, required=True)
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

def media_url(media_id):
    return f"/media/{media_id}"


class MediaUrl(fields.String):
    """The URL of an upload, written from its id (null for no upload), which
    is read where `id_from` says (by default, where the field's name says)."""

    def __init__(self, id_from=None, **kwargs):
        super().__init__(**kwargs)
        self.id_from = id_from

    def get_value(self, obj, attr, accessor=None, default=missing):
        return super().get_value(obj, self.id_from or attr, accessor, default)

    def _serialize(self, value, attr, obj, **kwargs):
        return media_url(value) if value else None


class Person(fields.Nested):
    """A user's summary (answers.UserSummary), read from the summary auth gave,
    or the deleted user's when it gave none: `id_from` names where the id is."""

    def __init__(self, id_from, **kwargs):
        super().__init__(answers.UserSummary, required=True, **kwargs)
        self.id_from = id_from

    # marshmallow names the first parameter `value` in Field and `nested_obj`
    # in Nested, so an override matches one of them only.
    def _serialize(self, value, attr, obj, **kwargs):  # type: ignore[override]
        user_id = get_value(obj, self.id_from)
        return super()._serialize(value or answers.deleted_user(user_id), attr, obj, **kwargs)


class Participant(answers.UserSummary):
    """Someone who joined (a schedule.Attendee)."""

    joined_at = Time(required=True)

    def get_attribute(self, attendee, attr, default):
        if attr == "joined_at":
            return attendee.joined_at
        return (attendee.user or answers.deleted_user(attendee.user_id))[attr]


class EventAnswer(Schema):
    """An event at one of its occurrences, as the viewer sees it (a schedule.SeenEvent)."""

    id = fields.UUID(required=True, attribute="event.id")
    occurrence_id = fields.String(required=True, allow_none=True, attribute="occurrence.occurrence_id", metadata={
        "description": "`<id>:<starts_at>` for an occurrence of a recurring event, else null"})
    title = fields.String(required=True, attribute="event.title")
    description = fields.String(required=True, attribute="event.description")
    starts_at = Time(required=True, attribute="occurrence.starts_at")
    ends_at = Time(required=True, attribute="occurrence.ends_at")
    timezone = fields.String(required=True, attribute="event.timezone")
    location = fields.String(required=True, attribute="event.location")
    is_online = fields.Boolean(required=True, attribute="event.is_online")
    visibility = fields.String(required=True, attribute="event.visibility", metadata={"enum": list(VISIBILITIES)})
    status = fields.String(required=True, attribute="event.status", metadata={"enum": list(STATUSES)})
    capacity = fields.Integer(required=True, allow_none=True, attribute="event.capacity")
    participants_count = fields.Integer(required=True, attribute="event.participants_count")
    cover_media_id = fields.UUID(required=True, allow_none=True, attribute="event.cover_media_id")
    cover_url = MediaUrl(required=True, allow_none=True, id_from="event.cover_media_id")
    rrule = fields.String(required=True, allow_none=True, attribute="event.rrule")
    series_starts_at = Time(required=True, attribute="event.starts_at")
    organizer = Person("event.organizer_id")
    my_status = fields.String(required=True, allow_none=True, metadata={"enum": ["organizer", "joined", None]})
    created_at = Time(required=True, attribute="event.created_at")
    updated_at = Time(required=True, attribute="event.updated_at")


class MediaRef(Schema):
    """An upload a post shows, written from its id alone."""

    id = fields.UUID(required=True)
    url = MediaUrl(required=True)

    def get_attribute(self, media_id, attr, default):
        return media_id


class PostAnswer(Schema):
    """A post with its author (a social.SeenPost)."""

    id = fields.UUID(required=True, attribute="post.id")
    body = fields.String(required=True, attribute="post.body")
    event_id = fields.UUID(required=True, allow_none=True, attribute="post.event_id")
    media = fields.List(fields.Nested(MediaRef), required=True, attribute="post.media_ids")
    author = Person("post.author_id")
    created_at = Time(required=True, attribute="post.created_at")


class FeedItem(Schema):
    """A post (the fields of PostAnswer) or an event (those of EventAnswer)."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True, metadata={"enum": ["post", "event"]})
    id = fields.UUID(required=True)
    created_at = Time(required=True)

    @post_dump(pass_original=True)
    def with_the_item(self, data, entry, **kwargs):
        answer = POST_ANSWER if entry.type == "post" else EVENT_ANSWER
        return dict(answer.dump(entry.item), **data)


class MediaAnswer(Schema):
    id = fields.UUID(required=True)
    owner_id = fields.UUID(required=True)
    url = MediaUrl(required=True, id_from="id")
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


# Built once: a schema instance serves any number of dumps.
EVENT_ANSWER = EventAnswer()
POST_ANSWER = PostAnswer()
FEED_ITEM = FeedItem()
MEDIA_ANSWER = MediaAnswer()
PARTICIPANT = Participant()
IMPORT_ANSWER = ImportAnswer()
