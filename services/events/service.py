"""The events service: events and calendars, media, posts and the feed.

Each entrypoint turns the request (or event) into plain arguments, runs one
domain call in a unit of work, and writes the answer with its schema. The
answer is written inside the unit of work: leaving it commits, which expires
the rows, and reading them after would load each again.
"""
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
from http_edge.validation import json_body
from services.events import calendars, export, media, moderation, people, schedule, schemas, social, user_removal
from services.events.dependencies import CalendarFetcher, MediaStorage
from services.events.exceptions import CalendarImportsBusy, EventNotFound, MediaNotFound, PostNotFound
from services.events.models import Base, ProcessedEvent
from services.events.models import Outbox as OutboxTable
from services.events.storage import S3Storage
from services.shared import contracts, relation_replica
from services.shared import outbox as shared_outbox
from services.shared.database import Database
from services.shared.errors import InvalidInput
from services.shared.events import consumes
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


def _by_occurrence(seen):
    """The keyset of range pages: (occurrence start, event id)."""
    return seen.occurrence.starts_at, seen.event.id


# The mixins are reached through their module: `nameko run` would take a bare
# imported class with entrypoints for a service of its own.
class EventsService(health.HealthEndpoints, shared_outbox.OutboxOperations, shared_outbox.UnitsOfWork,
                    relation_replica.RelationReplicaConsumers):
    name = "events"
    # Auth's blocks and mutes, replicated here (relation_replica).
    relation_changes = people

    db = Database(Base)
    outbox = Outbox(OutboxTable, ProcessedEvent)
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
        with self.uow as uow:
            seen = schedule.create_event(uow, self.auth, request.user_id, dict(request.body))
            return 201, schemas.EVENT_ANSWER.dump(seen)

    @http("GET", "/events/<uuid:id>", responses={200: schemas.EventAnswer}, not_found=EventNotFound)
    def get_event(self, request, id):
        """An event, with its organizer and my status; 404 if I may not see it."""
        with self.uow as uow:
            return schemas.EVENT_ANSWER.dump(schedule.get_event(uow, self.auth, request.user_id, id))

    @http("PATCH", "/events/<uuid:id>", body=schemas.EventUpdate, responses={200: schemas.EventAnswer},
          errors=(403, 409), not_found=EventNotFound)
    def update_event(self, request, id):
        """Change an event (organizer only)."""
        with self.uow as uow:
            seen = schedule.update_event(uow, self.auth, request.user_id, id, dict(request.body))
            return schemas.EVENT_ANSWER.dump(seen)

    @http("DELETE", "/events/<uuid:id>", responses={204: None}, errors=(403,), not_found=EventNotFound)
    def cancel_event(self, request, id):
        """Cancel an event (organizer only); it stays, with status cancelled."""
        with self.uow as uow:
            schedule.cancel_event(uow, self.auth, request.user_id, id)

    @http("GET", "/events", query=schemas.EventSearchArgs, responses={200: page_of(schemas.EventAnswer)})
    def search_events(self, request):
        """Active events I may see with an occurrence starting in [from, to), by starts_at."""
        args = request.query
        with self.uow as uow:
            found = schedule.search_events(
                uow, self.auth, request.user_id, (args["range_from"], args["range_to"]),
                BY_TIME.decode(args["cursor"]), args["limit"], q=args.get("q"), organizer_id=args.get("organizer_id"),
            )
            return page(found, args["limit"], _by_occurrence, schemas.EVENT_ANSWER.dump)

    @http("GET", "/calendar", query=schemas.RangeArgs, responses={200: page_of(schemas.EventAnswer)})
    def calendar(self, request):
        """Occurrences of events I organize or joined starting in [from, to), by starts_at."""
        args = request.query
        with self.uow as uow:
            found = schedule.calendar(uow, self.auth, request.user_id, (args["range_from"], args["range_to"]),
                                      BY_TIME.decode(args["cursor"]), args["limit"])
            return page(found, args["limit"], _by_occurrence, schemas.EVENT_ANSWER.dump)

    # Participants -------------------------------------------------------------------

    @http("POST", "/events/<uuid:id>/participants", responses={201: schemas.EventAnswer}, errors=(409,),
          not_found=EventNotFound)
    def join(self, request, id):
        """Join an event (idempotent); 409 EVENT_FULL or EVENT_CANCELLED."""
        with self.uow as uow:
            return 201, schemas.EVENT_ANSWER.dump(schedule.join(uow, self.auth, request.user_id, id))

    @http("DELETE", "/events/<uuid:id>/participants/me", responses={204: None}, not_found=EventNotFound)
    def leave(self, request, id):
        """Leave an event (idempotent)."""
        with self.uow as uow:
            schedule.leave(uow, self.auth, request.user_id, id)

    @http("GET", "/events/<uuid:id>/participants", query=PageArgs,
          responses={200: page_of(schemas.Participant)}, not_found=EventNotFound)
    def participants(self, request, id):
        """Who joined an event, in the order they joined."""
        args = request.query
        with self.uow as uow:
            attendees = schedule.participants_page(
                uow, self.auth, request.user_id, id, BY_TIME.decode(args["cursor"]), args["limit"],
            )
            return page(attendees, args["limit"], lambda attendee: (attendee.joined_at, attendee.user_id),
                        schemas.PARTICIPANT.dump)

    # Calendars ----------------------------------------------------------------------

    @http("GET", "/calendar.ics", responses={200: schemas.CALENDAR_FILE_ANSWER})
    def calendar_file(self, request):
        """My calendar as an iCalendar file."""
        with self.uow as uow:
            body = calendars.export(uow, request.user_id)
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
        with self.uow as uow:
            counts = calendars.import_events(uow, request.user_id, parsed, skipped)
        return schemas.IMPORT_ANSWER.dump(counts)

    # Media ----------------------------------------------------------------------------

    @http("POST", "/media", body=schemas.multipart_file("A JPEG, PNG, GIF or WebP image, or an MP4 or WebM video."),
          responses={201: schemas.MediaAnswer}, errors=(400, 413, 415, 422))
    def upload_media(self, request):
        """Upload a picture or a short video; its type is read from its bytes."""
        max_bytes = int(self.config.get("MEDIA_MAX_BYTES", DEFAULT_MEDIA_MAX_BYTES))
        data = read_upload(request, "file", max_bytes)
        # Re-encoding a photo takes a core for a moment: off the event loop.
        content_type, data = tpool.execute(media.prepare, data)
        with self.uow as uow:
            stored = media.store(uow, self.storage, request.user_id, content_type, data)
            return 201, schemas.MEDIA_ANSWER.dump(stored)

    # Public: media ids are unguessable, and avatars and covers appear in
    # places (image tags) that cannot send a bearer token.
    @http("GET", "/media/<uuid:id>", public=True, not_found=MediaNotFound,
          responses={200: schemas.MEDIA_CONTENT_ANSWER, 302: schemas.MEDIA_REDIRECT_ANSWER})
    def get_media_content(self, request, id):
        """The bytes of an upload, or a redirect to them."""
        with self.uow as uow:
            found, data, url = media.content(uow, self.storage, id)
            content_type = found.content_type
        if url:
            return redirect(url, code=302)
        return Response(data, mimetype=content_type, headers={
            "Cache-Control": "public, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": "inline",
        })

    # Posts and feed ------------------------------------------------------------------

    @http("POST", "/posts", body=schemas.PostCreate, responses={201: schemas.PostAnswer})
    def create_post(self, request):
        """Post, on an event I can see or on its own, with my uploads."""
        with self.uow as uow:
            return 201, schemas.POST_ANSWER.dump(social.create_post(uow, self.auth, request.user_id, **request.body))

    @http("GET", "/posts/<uuid:id>", responses={200: schemas.PostAnswer}, not_found=PostNotFound)
    def get_post(self, request, id):
        """A post; 404 if it is on an event I may not see."""
        with self.uow as uow:
            return schemas.POST_ANSWER.dump(social.get_post(uow, self.auth, request.user_id, id))

    @http("DELETE", "/posts/<uuid:id>", responses={204: None}, errors=(403,), not_found=PostNotFound)
    def delete_post(self, request, id):
        """Delete a post (author only)."""
        with self.uow as uow:
            social.delete_post(uow, self.auth, request.user_id, id)

    @http("GET", "/posts", query=schemas.PostListArgs, responses={200: page_of(schemas.PostAnswer)}, errors=(404,))
    def list_posts(self, request):
        """Posts I may see, by author or event, newest first."""
        args = request.query
        with self.uow as uow:
            posts = social.posts_page(uow, self.auth, request.user_id, BY_TIME.decode(args["cursor"]), args["limit"],
                                      author_id=args.get("author_id"), event_id=args.get("event_id"))
            return page(posts, args["limit"], lambda seen: (seen.post.created_at, seen.post.id),
                        schemas.POST_ANSWER.dump)

    @http("GET", "/feed", query=PageArgs, responses={200: page_of(schemas.FeedItem)})
    def feed(self, request):
        """Posts and events of people I follow and mine, newest first."""
        args = request.query
        with self.uow as uow:
            entries = social.feed_page(uow, self.auth, request.user_id, BY_TIME.decode(args["cursor"]), args["limit"])
            return page(entries, args["limit"], lambda entry: (entry.created_at, entry.id), schemas.FEED_ITEM.dump)

    # Domain events from auth (the handler names are the ids of their claims) --------

    @consumes(contracts.UserFollowed)
    def on_user_followed(self, event):
        with self.uow as uow:
            if uow.first_delivery(event, "user_followed"):
                people.follow(uow, event.follower_id, event.followee_id)

    @consumes(contracts.UserUnfollowed)
    def on_user_unfollowed(self, event):
        with self.uow as uow:
            if uow.first_delivery(event, "user_unfollowed"):
                people.unfollow(uow, event.follower_id, event.followee_id)

    @consumes(contracts.UserDeleted)
    def on_user_deleted(self, event):
        removed_media = []
        with self.uow as uow:
            if uow.first_delivery(event, "user_deleted"):
                removed_media = user_removal.forget_user(uow, event.user_id)
        self._delete_stored(removed_media)

    @consumes(contracts.ContentRemoved)
    def on_content_removed(self, event):
        """A moderator removed a post, event or media item (messages are not ours)."""
        if event.target_type not in contracts.REMOVABLE_IN_EVENTS:
            return
        removed_media = []
        with self.uow as uow:
            if uow.first_delivery(event, "content_removed"):
                removed_media = moderation.remove(uow, event.target_type, event.target_id)
        self._delete_stored(removed_media)

    def _delete_stored(self, media_ids):
        # The bytes go once their rows are gone for good, never before.
        for media_id in media_ids:
            try:
                self.storage.delete(media_id)
            except Exception:  # a stray file without a row harms no one
                log.warning("could not delete media %s from storage", media_id, exc_info=True)

    # RPC: for the other services and for operators (`nameko shell`) -----------

    @rpc
    def get_media(self, media_id):
        """{id, owner_id, url, content_type, size} of an upload, or None."""
        media_id = parse_uuid(media_id)
        if media_id is None:
            return None
        with self.uow as uow:
            found = media.find(uow, media_id)
            return schemas.MEDIA_ANSWER.dump(found) if found else None

    @rpc
    def report_snapshot(self, viewer_id, target_type, target_id):
        """What viewer_id reports (a post, event or media item): {author_id,
        text, media_urls, ...}, or None if they may not see it (auth's reports)."""
        viewer_id, target_id = parse_uuid(viewer_id), parse_uuid(target_id)
        if not (viewer_id and target_id) or target_type not in contracts.REMOVABLE_IN_EVENTS:
            return None
        with self.uow as uow:
            return moderation.snapshot(uow, self.auth, viewer_id, target_type, target_id)

    @rpc
    def export_user(self, user_id):
        """The account's events, posts and uploads for its data export (services.events.export)."""
        user_id = parse_uuid(user_id)
        if user_id is None:
            raise InvalidInput(details={"user_id": ["Not a UUID."]})
        with self.uow as uow:
            return export.export_user(uow, user_id, schemas.media_url)

    @rpc
    def counts(self):
        with self.uow as uow:
            return schedule.counts(uow)
