"""The events service: events and calendars, media, posts and the feed."""
import logging

from nameko.dependency_providers import Config
from nameko.events import event_handler
from nameko.rpc import rpc
from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from http_edge import health
from http_edge.entrypoint import http
from http_edge.pagination import PageArgs, as_time, as_uuid, decode_cursor, page
from http_edge.uploads import read_upload
from http_edge.validation import json_body, path_id, query_args
from services.events import calendars, media, schedule, schemas, social
from services.events.dependencies import CalendarFetcher, MediaStorage
from services.events.exceptions import EventNotFound, MediaNotFound, PostNotFound
from services.events.models import Base
from services.events.models import Outbox as OutboxTable
from services.events.people import record_follow
from services.events.storage import S3Storage
from services.events.user_removal import forget_user
from services.shared.database import Database
from services.shared.ids import parse_uuid
from services.shared.outbox import Outbox
from services.shared.rpc import BoundedRpcProxy

log = logging.getLogger(__name__)

DEFAULT_MEDIA_MAX_BYTES = 10 * 1024 * 1024


# The mixin is reached through its module: `nameko run` would take a bare
# imported class with entrypoints for a service of its own.
class EventsService(health.HealthEndpoints):
    name = "events"

    db = Database(Base)
    outbox = Outbox(OutboxTable)
    storage = MediaStorage()
    fetcher = CalendarFetcher()
    broker = health.BrokerProbe()
    config = Config()
    auth = BoundedRpcProxy("auth")

    def readiness_probes(self):
        probes = {"database": health.database_probe(self.db), "broker": self.broker}
        if isinstance(self.storage, S3Storage):
            probes["media_store"] = self.storage.ping
        return probes

    # Events ---------------------------------------------------------------------

    @http("POST", "/events")
    def create_event(self, request):
        data = json_body(request, schemas.EventCreate())
        return 201, schedule.create_event(self.db.session, self.outbox, self.auth, request.user_id, data)

    @http("GET", "/events/<string:id>")
    def get_event(self, request, id):
        return schedule.get_event(self.db.session, self.auth, request.user_id, _event_id(id))

    @http("PATCH", "/events/<string:id>")
    def update_event(self, request, id):
        event_id = _event_id(id)
        changes = json_body(request, schemas.EventUpdate())
        return schedule.update_event(self.db.session, self.outbox, self.auth, request.user_id, event_id, changes)

    @http("DELETE", "/events/<string:id>")
    def cancel_event(self, request, id):
        schedule.cancel_event(self.db.session, self.outbox, self.auth, request.user_id, _event_id(id))

    @http("GET", "/events")
    def search_events(self, request):
        args = query_args(request, schemas.EventSearchArgs())
        filters = schedule.search_filters(request.user_id, args.get("q"), args.get("organizer_id"))
        return self._range_page(request, args, filters)

    @http("GET", "/calendar")
    def calendar(self, request):
        args = query_args(request, schemas.RangeArgs())
        return self._range_page(request, args, schedule.calendar_filters(request.user_id))

    def _range_page(self, request, args, filters):
        after = decode_cursor(args["cursor"], as_time, as_uuid)
        found, items = schedule.range_page(self.db.session, self.auth, request.user_id, filters, args, after)
        rows = [(start, event, view) for (start, event), view in zip(found, items + [None], strict=False)]
        return page(rows, args["limit"], lambda row: (row[0], row[1].id), lambda row: row[2])

    # Participants -------------------------------------------------------------------

    @http("POST", "/events/<string:id>/participants")
    def join(self, request, id):
        return 201, schedule.join(self.db.session, self.outbox, self.auth, request.user_id, _event_id(id))

    @http("DELETE", "/events/<string:id>/participants/me")
    def leave(self, request, id):
        schedule.leave(self.db.session, self.auth, request.user_id, _event_id(id))

    @http("GET", "/events/<string:id>/participants")
    def participants(self, request, id):
        event_id = _event_id(id)
        args = query_args(request, PageArgs())
        after = decode_cursor(args["cursor"], as_time, as_uuid)
        rows, users = schedule.participants_page(
            self.db.session, self.auth, request.user_id, event_id, args["limit"], after,
        )
        return page(
            rows, args["limit"], lambda row: (row.joined_at, row.user_id),
            lambda row: dict(users.get(row.user_id) or schemas.deleted_user(row.user_id),
                             joined_at=schemas.iso(row.joined_at)),
        )

    # Calendars ----------------------------------------------------------------------

    @http("GET", "/calendar.ics")
    def calendar_file(self, request):
        body = calendars.export(self.db.session, request.user_id)
        return Response(body, mimetype="text/calendar", headers={
            "Content-Disposition": 'attachment; filename="lifytp.ics"', "Cache-Control": "private, no-store",
        })

    @http("POST", "/calendars/import")
    def import_calendar(self, request):
        if request.mimetype == "application/json":
            data = self.fetcher.fetch(json_body(request, schemas.CalendarUrl())["url"])
        else:
            data = read_upload(request, "file", calendars.MAX_ICS_BYTES)
        parsed, skipped = calendars.parse(data)
        return calendars.import_events(self.db.session, self.outbox, request.user_id, parsed, skipped)

    # Media ----------------------------------------------------------------------------

    @http("POST", "/media")
    def upload_media(self, request):
        max_bytes = int(self.config.get("MEDIA_MAX_BYTES", DEFAULT_MEDIA_MAX_BYTES))
        data = read_upload(request, "file", max_bytes)
        return 201, media.upload(self.db.session, self.storage, request.user_id, data)

    # Public: media ids are unguessable, and avatars and covers appear in
    # places (image tags) that cannot send a bearer token.
    @http("GET", "/media/<string:id>", public=True)
    def get_media_content(self, request, id):
        found, data, url = media.content(self.db.session, self.storage, path_id(id, MediaNotFound))
        if url:
            return redirect(url, code=302)
        return Response(data, mimetype=found.content_type, headers={
            "Cache-Control": "public, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": "inline",
        })

    # Posts and feed ------------------------------------------------------------------

    @http("POST", "/posts")
    def create_post(self, request):
        data = json_body(request, schemas.PostCreate())
        return 201, social.create_post(self.db.session, self.outbox, self.auth, request.user_id, data)

    @http("GET", "/posts/<string:id>")
    def get_post(self, request, id):
        return social.get_post(self.db.session, self.auth, request.user_id, _post_id(id))

    @http("DELETE", "/posts/<string:id>")
    def delete_post(self, request, id):
        social.delete_post(self.db.session, self.auth, request.user_id, _post_id(id))

    @http("GET", "/posts")
    def list_posts(self, request):
        args = query_args(request, schemas.PostListArgs())
        after = decode_cursor(args["cursor"], as_time, as_uuid)
        posts, users = social.posts_page(self.db.session, self.auth, request.user_id, args, after)
        return page(posts, args["limit"], lambda post: (post.created_at, post.id),
                    lambda post: schemas.post_view(post, users))

    @http("GET", "/feed")
    def feed(self, request):
        args = query_args(request, PageArgs())
        after = decode_cursor(args["cursor"], as_time, as_uuid)
        keys, items = social.feed_page(self.db.session, self.auth, request.user_id, args["limit"], after)
        rows = list(zip(keys, items + [None], strict=False))
        return page(rows, args["limit"], lambda row: (row[0][1], row[0][2]), lambda row: row[1])

    # Domain events from auth -------------------------------------------------------

    @event_handler("auth", "user_followed")
    def on_user_followed(self, payload):
        record_follow(self.db.session, payload, following=True)

    @event_handler("auth", "user_unfollowed")
    def on_user_unfollowed(self, payload):
        record_follow(self.db.session, payload, following=False)

    @event_handler("auth", "user_deleted")
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

    @rpc
    def outbox_backlog(self):
        """Events recorded but not yet published to RabbitMQ."""
        return self.outbox.pending_count()


def _event_id(value):
    return path_id(value, EventNotFound)


def _post_id(value):
    return path_id(value, PostNotFound)
