"""Posts and the feed.

The feed is read, not precomputed: for each person the reader follows (from
the local follow replica) and the reader, PostgreSQL reads only their newest
few posts and events from the (author, created_at, id) indexes inside a
LATERAL join, then keeps the newest of those. A page costs about
followees x page size index entries, whatever the total number of posts, and
a follow or unfollow shows in the very next page. Pages are keyset pages on
(created_at, id), so new items never shift the pages after the first.
"""
from sqlalchemy import Select, cast, exists, literal, or_, select, true, tuple_, union_all
from sqlalchemy.dialects.postgresql import UUID

from services.events import exceptions, media, schemas
from services.events.models import Event, Follow, Post
from services.events.people import ensure_follows, users_by_id
from services.events.schedule import statuses_of, visible_event, visible_to


def post_visible_to(viewer_id):
    """A post is seen by whoever sees its event (posts without one: everyone)."""
    # Correlated per post (one primary-key probe), never a scan of all visible events.
    return or_(Post.event_id.is_(None), exists().where(Event.id == Post.event_id, visible_to(viewer_id)))


def create_post(session, outbox, auth, author_id, data):
    if data.get("event_id"):
        try:
            visible_event(session, auth, author_id, data["event_id"])
        except exceptions.EventNotFound:
            raise exceptions.InvalidEventReference(details={"event_id": ["No such event."]}) from None
    media_ids = list(dict.fromkeys(data.get("media_ids") or []))
    if set(media_ids) - media.owned_ids(session, author_id, media_ids):
        session.rollback()
        raise exceptions.InvalidMediaReference(details={"media_ids": ["Must be files you uploaded."]})
    post = Post(author_id=author_id, body=data["body"], event_id=data.get("event_id"), media_ids=media_ids)
    session.add(post)
    session.commit()
    return schemas.post_view(post, users_by_id(auth, [author_id]))


def _visible_post(session, auth, viewer_id, post_id):
    ensure_follows(session, auth, viewer_id)
    post = session.execute(select(Post).where(Post.id == post_id, post_visible_to(viewer_id))).scalar_one_or_none()
    if post is None:
        session.rollback()
        raise exceptions.PostNotFound()
    return post


def get_post(session, auth, viewer_id, post_id):
    post = _visible_post(session, auth, viewer_id, post_id)  # a read: nothing to commit
    return schemas.post_view(post, users_by_id(auth, [post.author_id]))


def delete_post(session, auth, user_id, post_id):
    post = _visible_post(session, auth, user_id, post_id)
    if post.author_id != user_id:
        session.rollback()
        raise exceptions.NotAuthor()
    session.delete(post)
    session.commit()


def _newest_first(query: Select, model, after, limit):
    query = query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)
    if after:
        query = query.where(tuple_(model.created_at, model.id) < tuple_(*after))
    return query


def posts_page(session, auth, viewer_id, args, after):
    ensure_follows(session, auth, viewer_id)
    query = select(Post).where(post_visible_to(viewer_id))
    if args.get("author_id"):
        query = query.where(Post.author_id == args["author_id"])
    if args.get("event_id"):
        visible_event(session, auth, viewer_id, args["event_id"])
        query = query.where(Post.event_id == args["event_id"])
    posts = session.execute(_newest_first(query, Post, after, args["limit"])).scalars().all()
    # No commit: this reads only (ensure_follows commits its own writes), and a
    # commit would expire every post, reloading each with its own SELECT.
    users = users_by_id(auth, [post.author_id for post in posts[: args["limit"]]])
    return posts, users


# Feed ----------------------------------------------------------------------------

def _authors(user_id):
    followees = select(Follow.followee_id.label("author_id")).where(Follow.follower_id == user_id)
    return union_all(followees, select(cast(literal(user_id), UUID(as_uuid=False)).label("author_id"))).subquery()


def _newest_per_author(model, author_column, conditions, user_id, after, limit):
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


def feed_page(session, auth, user_id, limit, after):
    """Up to limit + 1 items (type, created_at, id, object), newest first."""
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
    shown = keys[:limit]
    users = users_by_id(auth, [posts[key[2]].author_id for key in shown if key[0] == "post"]
                        + [events[key[2]].organizer_id for key in shown if key[0] == "event"])
    shown_events = [events[key[2]] for key in shown if key[0] == "event"]
    statuses = statuses_of(session, user_id, shown_events)
    event_items = {event.id: schemas.event_view(event, users, statuses[event.id]) for event in shown_events}
    items = [
        dict(schemas.post_view(posts[key[2]], users), type="post") if key[0] == "post"
        else dict(event_items[key[2]], type="event")
        for key in shown
    ]
    session.commit()
    return keys, items


def _by_id(session, model, ids):
    if not ids:
        return {}
    return {row.id: row for row in session.execute(select(model).where(model.id.in_(ids))).scalars()}
