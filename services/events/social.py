"""Posts and the feed.

The feed is read, not precomputed: for each person the reader follows (from
the local follow replica) and does not mute (the local mute replica), and the
reader, PostgreSQL reads only their newest few posts and events from the
(author, created_at, id) indexes inside a LATERAL join, then keeps the newest
of those; visibility, blocks included, is checked on each of them. A page costs about
followees x page size index entries, whatever the total number of posts, and
a follow or unfollow shows in the very next page. Pages are keyset pages on
(created_at, id), so new items never shift the pages after the first.
"""
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    Subquery,
    and_,
    cast,
    exists,
    literal,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import InstrumentedAttribute, Session

from services.events import exceptions, media
from services.events.models import Event, Follow, Post
from services.events.people import Auth, UserSummary, either_blocks, ensure_follows, mutes, users_by_id
from services.events.schedule import SeenEvent, seen_by, visible_event, visible_to
from services.shared.unit_of_work import UnitOfWork

MAX_BODY_LENGTH = 5000
MAX_MEDIA_PER_POST = 10

# A keyset position in a newest-first list: (created_at, id).
After = tuple[datetime, str]
_Row = TypeVar("_Row", Post, Event)


@dataclass(frozen=True)
class SeenPost:
    """A post, with its author's summary from auth (None once the account is gone)."""
    post: Post
    author: UserSummary | None


@dataclass(frozen=True)
class FeedEntry:
    """One item of the feed, newest first by (created_at, id): a post or an event."""
    type: str
    created_at: datetime
    id: str
    item: SeenPost | SeenEvent


def post_visible_to(viewer_id: str) -> ColumnElement[bool]:
    """A post is seen by whoever sees its event (posts without one: everyone),
    unless its author and the viewer are blocked (either way)."""
    # Correlated per post (primary-key probes), never a scan of all visible events.
    return and_(
        or_(Post.event_id.is_(None), exists().where(Event.id == Post.event_id, visible_to(viewer_id))),
        ~either_blocks(viewer_id, Post.author_id),
    )


def create_post(uow: UnitOfWork, auth: Auth, author_id: str, body: str, event_id: str | None = None,
                media_ids: Iterable[str] = ()) -> SeenPost:
    """Post `body`, on an event the author sees (or none), with the author's uploads."""
    session = uow.session
    if event_id:
        try:
            visible_event(session, auth, author_id, event_id)
        except exceptions.EventNotFound:
            raise exceptions.InvalidEventReference(details={"event_id": ["No such event."]}) from None
    media_ids = list(dict.fromkeys(media_ids))
    if set(media_ids) - media.owned_ids(session, author_id, media_ids):
        raise exceptions.InvalidMediaReference(details={"media_ids": ["Must be files you uploaded."]})
    post = Post(author_id=author_id, body=body, event_id=event_id, media_ids=media_ids)
    session.add(post)
    session.flush()
    return SeenPost(post, users_by_id(auth, [author_id]).get(author_id))


def visible_post(session: Session, auth: Auth, viewer_id: str, post_id: str) -> Post:
    """The post, if the viewer may see it (PostNotFound otherwise)."""
    ensure_follows(session, auth, viewer_id)
    post = session.execute(select(Post).where(Post.id == post_id, post_visible_to(viewer_id))).scalar_one_or_none()
    if post is None:
        raise exceptions.PostNotFound()
    return post


def get_post(uow: UnitOfWork, auth: Auth, viewer_id: str, post_id: str) -> SeenPost:
    post = visible_post(uow.session, auth, viewer_id, post_id)
    return SeenPost(post, users_by_id(auth, [post.author_id]).get(post.author_id))


def delete_post(uow: UnitOfWork, auth: Auth, user_id: str, post_id: str) -> None:
    post = visible_post(uow.session, auth, user_id, post_id)
    if post.author_id != user_id:
        raise exceptions.NotAuthor()
    uow.session.delete(post)


def _newest_first(query: Select[Any], model: type[Post] | type[Event], after: After | None, limit: int) -> Select[Any]:
    query = query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)
    if after:
        query = query.where(tuple_(model.created_at, model.id) < tuple_(*map(literal, after)))
    return query


def posts_page(uow: UnitOfWork, auth: Auth, viewer_id: str, after: After | None, limit: int,
               author_id: str | None = None, event_id: str | None = None) -> list[SeenPost]:
    """Up to limit + 1 SeenPosts the viewer may see, newest first, by author
    or on an event (EventNotFound if the viewer may not see that event)."""
    session = uow.session
    ensure_follows(session, auth, viewer_id)
    query = select(Post).where(post_visible_to(viewer_id))
    if author_id:
        query = query.where(Post.author_id == author_id)
    if event_id:
        visible_event(session, auth, viewer_id, event_id)
        query = query.where(Post.event_id == event_id)
    posts = session.execute(_newest_first(query, Post, after, limit)).scalars().all()
    users = users_by_id(auth, [post.author_id for post in posts[:limit]])
    return [SeenPost(post, users.get(post.author_id)) for post in posts]
# Feed ----------------------------------------------------------------------------

def _authors(user_id: str) -> Subquery:
    # Whom I mute leaves my feed here, once per followee rather than per item.
    followees = (
        select(Follow.followee_id.label("author_id"))
        .where(Follow.follower_id == user_id, ~mutes(user_id, Follow.followee_id))
    )
    return union_all(followees, select(cast(literal(user_id), UUID(as_uuid=False)).label("author_id"))).subquery()


def _newest_per_author(model: type[Post] | type[Event], author_column: InstrumentedAttribute[str],
                       conditions: Sequence[ColumnElement[bool]], user_id: str, after: After | None,
                       limit: int) -> Select[Any]:
    """Ids and times of the newest rows of each author, newest first overall."""
    authors = _authors(user_id)
    newest = _newest_first(
        select(model.id, model.created_at).where(author_column == authors.c.author_id, *conditions),
        model, after, limit,
    ).lateral()
    return (
        select(newest.c.id, newest.c.created_at)
        .select_from(authors.join(newest, true()))
        .order_by(newest.c.created_at.desc(), newest.c.id.desc())
        .limit(limit + 1)
    )


def feed_page(uow: UnitOfWork, auth: Auth, user_id: str, after: After | None, limit: int) -> list[FeedEntry]:
    """Up to limit + 1 FeedEntries, newest first."""
    session = uow.session
    ensure_follows(session, auth, user_id)
    post_query = _newest_per_author(Post, Post.author_id, [post_visible_to(user_id)], user_id, after, limit)
    event_query = _newest_per_author(
        Event, Event.organizer_id, [visible_to(user_id), Event.status == "active"], user_id, after, limit,
    )
    keys = [("post", row.created_at, row.id) for row in session.execute(post_query)]
    keys += [("event", row.created_at, row.id) for row in session.execute(event_query)]
    keys.sort(key=lambda key: (key[1], key[2]), reverse=True)
    keys = keys[: limit + 1]
    posts = _by_id(session, Post, [key[2] for key in keys if key[0] == "post"])
    events = _by_id(session, Event, [key[2] for key in keys if key[0] == "event"])
    # The entry past the page only says there is a next one: nobody is looked up for it.
    shown = keys[:limit]
    users = users_by_id(auth, [posts[key[2]].author_id for key in shown if key[0] == "post"]
                        + [events[key[2]].organizer_id for key in shown if key[0] == "event"])
    seen_events = {seen.event.id: seen for seen in seen_by(
        session, auth, user_id, [(event, None) for event in events.values()], users)}
    return [
        FeedEntry(kind, created_at, item_id,
                  SeenPost(posts[item_id], users.get(posts[item_id].author_id)) if kind == "post"
                  else seen_events[item_id])
        for kind, created_at, item_id in keys
    ]


def _by_id(session: Session, model: type[_Row], ids: list[str]) -> dict[str, _Row]:
    if not ids:
        return {}
    return {row.id: row for row in session.execute(select(model).where(model.id.in_(ids))).scalars()}
