from services.shared.errors import Conflict, Forbidden, InvalidInput, NotFound, RateLimited


class EventNotFound(NotFound):
    code = "EVENT_NOT_FOUND"
    message = "No such event."


class NotOrganizer(Forbidden):
    code = "NOT_ORGANIZER"
    message = "Only the organizer may change this event."


class EventCancelled(Conflict):
    code = "EVENT_CANCELLED"
    message = "The event is cancelled."


class EventFull(Conflict):
    code = "EVENT_FULL"
    message = "The event is full."


class CapacityBelowParticipants(Conflict):
    code = "CAPACITY_BELOW_PARTICIPANTS"
    message = "More people have already joined than that capacity allows."


class MediaNotFound(NotFound):
    code = "MEDIA_NOT_FOUND"
    message = "No such media."


class InvalidMediaReference(InvalidInput):
    code = "INVALID_MEDIA"
    message = "Media must be files you uploaded."


class InvalidEventReference(InvalidInput):
    code = "INVALID_EVENT"
    message = "No such event."


class PostNotFound(NotFound):
    code = "POST_NOT_FOUND"
    message = "No such post."


class NotAuthor(Forbidden):
    code = "NOT_AUTHOR"
    message = "Only the author may delete this post."


class InvalidCalendar(InvalidInput):
    code = "INVALID_CALENDAR"
    message = "The calendar could not be imported."


class UrlNotAllowed(InvalidInput):
    code = "URL_NOT_ALLOWED"
    message = "That URL may not be fetched."


class UrlFetchFailed(InvalidInput):
    code = "URL_FETCH_FAILED"
    message = "The calendar could not be fetched from that URL."


class CalendarImportsBusy(RateLimited):
    code = "CALENDAR_IMPORTS_BUSY"
    message = "Other calendar imports are being read; try again shortly."
