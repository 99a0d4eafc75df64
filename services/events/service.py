"""The events service: events and calendars, media, posts and the feed."""
import logging

import eventlet
from eventlet import tpool
from eventlet.semaphore import Semaphore
from nameko.dependency_providers import Config
from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from http_edge import health
from http_edge.entrypoint import http
from http_edge.pagination import BY_TIME, PageArgs, page, page_of
from http_edge.uploads import read_upload
from http_edge.validation import json_body, path_id
from services.events import calendars, media, schedule, schemas, social
from services.events.dependencies import CalendarFetcher, MediaStorage
from services.events.exceptions import CalendarImportsBusy, EventNotFound, MediaNotFound, PostNotFound
from services.events.models import Base
from services.events.models import Outbox as OutboxTable
from services.events.people import record_follow
from services.events.storage import S3Storage
from services.events.user_removal import forget_user
from services.shared import outbox as shared_outbox
from services.shared.database import Database
from services.shared.events import durable_handler
from services.shared.ids import parse_uuid
from services.shared.observability import Observability
from services.shared.outbox import Outbox
from services.shared.rpc import BoundedRpcProxy, rpc

log = logging.getLogger(__name__)

DEFAULT_MEDIA_MAX_BYTES = 10 * 1024 * 1024
# Calendar files are read one at a time per process (each in slices, up to a
# second of CPU): a crowd of imports waits its turn instead of sharing the
# event loop with every other request, and after a while is told to retry.
CALENDAR_READS = Semaphore(1)
CALENDAR_READ_WAIT_SECONDS = 10


# The mixin is reached through its module: `nameko run` would take a bare
# imported class with entrypoints for a service of its own.
class EventsService(health.HealthEndpoints, shared_outbox.OutboxOperations):
    name = "events"

    db = Database(Base)
    outbox = Outbox(OutboxTable)
    storage = MediaStorage()
    fetcher = CalendarFetcher()
    broker = health.BrokerProbe()
    config = Config()
    observability = Observability()
    auth = BoundedRpcProxy("auth")

    def readiness_probes(self):
        probes = {"database": health.database_probe(self.db), "broker": self.broker}
        if isinstance(self.storage, S3Storage):
            probes["media_store"] = self.storage.ping
        return probes

    # Events ---------------------------------------------------------------------

    @http("POST", "/events", body=schemas.EventCreate, responses={201: schemas.EventAnswer})
    def create_event(self, request):
        """Create an event; I am its organizer."""
        return 201, schedule.create_event(self.db.session, self.outbox, self.auth, request.user_id, request.body)

    @http("GET", "/events/<string:id>", responses={200: schemas.EventAnswer})
    def get_event(self, request, id):
        """An event, with its organizer and my status; 404 if I may not see it."""
        return schedule.get_event(self.db.session, self.auth, request.user_id, _event_id(id))

    @http("PATCH", "/events/<string:id>", body=schemas.EventUpdate, responses={200: schemas.EventAnswer},
          errors=(403, 409))
    def update_event(self, request, id):
        """Change an event (organizer only)."""
        event_id = _event_id(id)
        return schedule.update_event(
            self.db.session, self.outbox, self.auth, request.user_id, event_id, request.body,
        )

    @http("DELETE", "/events/<string:id>", responses={204: None}, errors=(403,))
    def cancel_event(self, request, id):
        """Cancel an event (organizer only); it stays, with status cancelled."""
        schedule.cancel_event(self.db.session, self.outbox, self.auth, request.user_id, _event_id(id))

    @http("GET", "/events", query=schemas.EventSearchArgs, responses={200: page_of(schemas.EventAnswer)})
    def search_events(self, request):
        """Active events I may see with an occurrence starting in [from, to), by starts_at."""
        args = request.query
        filters = schedule.search_filters(request.user_id, args.get("q"), args.get("organizer_id"))
        return self._range_page(request, args, filters, needs_follows=True)

    @http("GET", "/calendar", query=schemas.RangeArgs, responses={200: page_of(schemas.EventAnswer)})
    def calendar(self, request):
        """Occurrences of events I organize or joined starting in [from, to), by starts_at."""
        args = request.query
        # What I organize or joined: no follow list involved.
        return self._range_page(request, args, schedule.calendar_filters(request.user_id), needs_follows=False)

    def _range_page(self, request, args, filters, needs_follows):
        after = BY_TIME.decode(args["cursor"])
        found, items = schedule.range_page(
            self.db.session, self.auth, request.user_id, filters, args, after, needs_follows,
        )
        rows = [(start, event, view) for (start, event), view in zip(found, items + [None], strict=False)]
        return page(rows, args["limit"], lambda row: (row[0], row[1].id), lambda row: row[2])

    # Participants -------------------------------------------------------------------

    @http("POST", "/events/<string:id>/participants", responses={201: schemas.EventAnswer}, errors=(409,))
    def join(self, request, id):
        """Join an event (idempotent); 409 EVENT_FULL or EVENT_CANCELLED."""
        return 201, schedule.join(self.db.session, self.outbox, self.auth, request.user_id, _event_id(id))

    @http("DELETE", "/events/<string:id>/participants/me", responses={204: None})
    def leave(self, request, id):
        """Leave an event (idempotent)."""
        schedule.leave(self.db.session, self.auth, request.user_id, _event_id(id))

    @http("GET", "/events/<string:id>/participants", query=PageArgs,
          responses={200: page_of(schemas.Participant)})
    def participants(self, request, id):
        """Who joined an event, in the order they joined."""
        event_id = _event_id(id)
        args = request.query
        after = BY_TIME.decode(args["cursor"])
        rows, users = schedule.participants_page(
            self.db.session, self.auth, request.user_id, event_id, args["limit"], after,
        )
        return page(
            rows, args["limit"], lambda row: (row.joined_at, row.user_id),
            lambda row: dict(users.get(row.user_id) or schemas.deleted_user(row.user_id),
                             joined_at=schemas.iso(row.joined_at)),
        )

    # Calendars ----------------------------------------------------------------------

    @http("GET", "/calendar.ics", responses={200: schemas.CALENDAR_FILE_ANSWER})
    def calendar_file(self, request):
        """My calendar as an iCalendar file."""
        body = calendars.export(self.db.session, request.user_id)
        return Response(body, mimetype="text/calendar", headers={
            "Content-Disposition": 'attachment; filename="lifytp.ics"', "Cache-Control": "private, no-store",
        })

    @http("POST", "/calendars/import", body=schemas.CALENDAR_IMPORT_BODY, responses={200: schemas.ImportAnswer},
          errors=(400, 409, 413, 415, 422, 429))
    def import_calendar(self, request):
        """Import an .ics file or URL; events are matched by UID, so a re-import updates."""
        if request.mimetype == "application/json":
            data = self.fetcher.fetch(json_body(request, schemas.CalendarUrl())["url"])
        else:
            data = read_upload(request, "file", calendars.MAX_ICS_BYTES)
        if not CALENDAR_READS.acquire(timeout=CALENDAR_READ_WAIT_SECONDS):
            raise CalendarImportsBusy(retry_after=5)
        try:
            # In slices, with the event loop serving other requests between any two.
            parsed, skipped = calendars.parse(data, pause=eventlet.sleep)
        finally:
            CALENDAR_READS.release()
        return calendars.import_events(self.db.session, self.outbox, request.user_id, parsed, skipped)

    # Media ----------------------------------------------------------------------------

    @http("POST", "/media", body=schemas.multipart_file("A JPEG, PNG, GIF or WebP image, or an MP4 or WebM video."),
          responses={201: schemas.MediaAnswer}, errors=(400, 413, 415, 422))
    def upload_media(self, request):
        """Upload a picture or a short video; its type is read from its bytes."""
        max_bytes = int(self.config.get("MEDIA_MAX_BYTES", DEFAULT_MEDIA_MAX_BYTES))
        data = read_upload(request, "file", max_bytes)
        # Re-encoding a photo takes a core for a moment: off the event loop.
        content_type, data = tpool.execute(media.prepare, data)
        return 201, media.store(self.db.session, self.storage, request.user_id, content_type, data)

    # Public: media ids are unguessable, and avatars and covers appear in
    # places (image tags) that cannot send a bearer token.
    @http("GET", "/media/<string:id>", public=True,
          responses={200: schemas.MEDIA_CONTENT_ANSWER, 302: schemas.MEDIA_REDIRECT_ANSWER})
    def get_media_content(self, request, id):
        """The bytes of an upload, or a redirect to them."""
        found, data, url = media.content(self.db.session, self.storage, path_id(id, MediaNotFound))
        if url:
            return redirect(url, code=302)
        return Response(data, mimetype=found.content_type, headers={
            "Cache-Control": "public, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": "inline",
        })

    # Posts and feed ------------------------------------------------------------------

    @http("POST", "/posts", body=schemas.PostCreate, responses={201: schemas.PostAnswer})
    def create_post(self, request):
        """Post, on an event I can see or on its own, with my uploads."""
        return 201, social.create_post(self.db.session, self.outbox, self.auth, request.user_id, request.body)

    @http("GET", "/posts/<string:id>", responses={200: schemas.PostAnswer})
    def get_post(self, request, id):
        """A post; 404 if it is on an event I may not see."""
        return social.get_post(self.db.session, self.auth, request.user_id, _post_id(id))

    @http("DELETE", "/posts/<string:id>", responses={204: None}, errors=(403,))
    def delete_post(self, request, id):
        """Delete a post (author only)."""
        social.delete_post(self.db.session, self.auth, request.user_id, _post_id(id))

    @http("GET", "/posts", query=schemas.PostListArgs, responses={200: page_of(schemas.PostAnswer)}, errors=(404,))
    def list_posts(self, request):
        """Posts I may see, by author or event, newest first."""
        args = request.query
        after = BY_TIME.decode(args["cursor"])
        posts, users = social.posts_page(self.db.session, self.auth, request.user_id, args, after)
        return page(posts, args["limit"], lambda post: (post.created_at, post.id),
                    lambda post: schemas.post_view(post, users))

    @http("GET", "/feed", query=PageArgs, responses={200: page_of(schemas.FeedItem)})
    def feed(self, request):
        """Posts and events of people I follow and mine, newest first."""
        args = request.query
        after = BY_TIME.decode(args["cursor"])
        keys, items = social.feed_page(self.db.session, self.auth, request.user_id, args["limit"], after)
        rows = list(zip(keys, items + [None], strict=False))
        return page(rows, args["limit"], lambda row: (row[0][1], row[0][2]), lambda row: row[1])

    # Domain events from auth -------------------------------------------------------

    @durable_handler("auth", "user_followed")
    def on_user_followed(self, payload):
        record_follow(self.db.session, payload, following=True)

    @durable_handler("auth", "user_unfollowed")
    def on_user_unfollowed(self, payload):
        record_follow(self.db.session, payload, following=False)

    @durable_handler("auth", "user_deleted")
    def on_user_deleted(self, payload):
        for media_id in forget_user(self.db.session, self.outbox, payload):
            try:
                self.storage.delete(media_id)
            except Exception:  # the rows are gone; a stray file harms no one
                log.warning("could not delete media %s from storage", media_id, exc_info=True)

    # RPC: for the other services and for operators (`nameko shell`) -----------

    @rpc
    def get_media(self, media_id):
        """{id, owner_id, url, content_type, size} of an upload, or None."""
        media_id = parse_uuid(media_id)
        found = media.find(self.db.session, media_id) if media_id else None
        return schemas.media_view(found) if found else None

    @rpc
    def counts(self):
        return schedule.counts(self.db.session)


def _event_id(value):
    return path_id(value, EventNotFound)


def _post_id(value):
    return path_id(value, PostNotFound)
