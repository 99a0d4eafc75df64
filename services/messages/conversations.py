"""The messages domain: conversations, messages, reactions and read state.

Functions take a SQLAlchemy session and the collaborators they need (the outbox,
a `users(ids)` lookup of user summaries); they know nothing of HTTP or AMQP.
Each commits its own unit of work together with the events it records, and
every event names the members who should hear of it (`recipient_ids`), so
realtime can deliver it without a database.
"""
from collections import defaultdict

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert

from services.messages import exceptions
from services.messages.models import Conversation, Member, Message, Reaction
from services.messages.schemas import deleted_member, iso, message_view

PREVIEW_CHARS = 140


# Membership ---------------------------------------------------------------------

def member_ids(session, conversation_id):
    return list(session.execute(
        select(Member.user_id).where(Member.conversation_id == conversation_id).order_by(Member.joined_at)
    ).scalars())


def is_member(session, conversation_id, user_id):
    return session.get(Member, (conversation_id, user_id)) is not None


def _membership(session, conversation_id, user_id):
    """The caller's membership; a conversation they are not in does not exist to them."""
    member = session.get(Member, (conversation_id, user_id))
    if member is None:
        raise exceptions.ConversationNotFound()
    return member


def _visible_message(session, message_id, user_id):
    message = session.get(Message, message_id)
    if message is None or not is_member(session, message.conversation_id, user_id):
        raise exceptions.MessageNotFound()
    return message


# Conversations --------------------------------------------------------------------

def create_conversation(session, outbox, users, creator_id, member_ids_requested, title=None):
    """Create a conversation; return (created, view). A 1:1 (one other member,
    no title) that exists already is answered as it is."""
    others = [user_id for user_id in dict.fromkeys(member_ids_requested) if user_id != creator_id]
    if not others:
        raise exceptions.NoOtherMembers(details={"member_ids": ["Name at least one other user."]})
    summaries = {user["id"]: user for user in users([creator_id, *others])}
    unknown = [user_id for user_id in others if user_id not in summaries]
    if unknown:
        raise exceptions.UnknownMembers(details={"member_ids": unknown})
    direct_key = ":".join(sorted([creator_id, others[0]])) if len(others) == 1 and not title else None
    if direct_key:
        existing = _direct_conversation(session, direct_key)
        if existing:
            return False, conversation_views(session, users, creator_id, [existing], summaries)[existing.id]
    conversation_id = session.execute(
        insert(Conversation)
        .values(kind="direct" if direct_key else "group", title=title, direct_key=direct_key,
                created_by=creator_id)
        .on_conflict_do_nothing(index_elements=["direct_key"])
        .returning(Conversation.id)
    ).scalar()
    if conversation_id is None:
        # Both people opened the 1:1 at the same moment; the other one won.
        session.rollback()
        existing = _direct_conversation(session, direct_key)
        return False, conversation_views(session, users, creator_id, [existing], summaries)[existing.id]
    session.add_all(Member(conversation_id=conversation_id, user_id=user_id) for user_id in [creator_id, *others])
    session.commit()
    conversation = session.get(Conversation, conversation_id)
    return True, conversation_views(session, users, creator_id, [conversation], summaries)[conversation_id]


def _direct_conversation(session, direct_key):
    return session.execute(select(Conversation).where(Conversation.direct_key == direct_key)).scalar_one_or_none()


def get_conversation(session, users, user_id, conversation_id):
    _membership(session, conversation_id, user_id)
    conversation = session.get(Conversation, conversation_id)
    return conversation_views(session, users, user_id, [conversation])[conversation_id]


def conversation_page(session, users, user_id, limit, after):
    """The caller's conversations, latest activity first; (rows, views by id)."""
    query = (
        select(Conversation)
        .join(Member, Member.conversation_id == Conversation.id)
        .where(Member.user_id == user_id)
        .order_by(Conversation.last_activity_at.desc(), Conversation.id.desc())
        .limit(limit + 1)
    )
    if after:
        query = query.where(tuple_(Conversation.last_activity_at, Conversation.id) < tuple_(*after))
    rows = session.execute(query).scalars().all()
    return rows, conversation_views(session, users, user_id, rows[:limit])


def conversation_views(session, users, viewer_id, conversations, known_users=None):
    """Views of conversations with members, last message and the viewer's
    unread count, in a fixed number of queries and one call to auth."""
    ids = [conversation.id for conversation in conversations]
    if not ids:
        return {}
    members = defaultdict(list)
    for conversation_id, user_id in session.execute(
        select(Member.conversation_id, Member.user_id)
        .where(Member.conversation_id.in_(ids)).order_by(Member.joined_at, Member.user_id)
    ):
        members[conversation_id].append(user_id)
    summaries = dict(known_users or {})
    missing = {user_id for user_ids in members.values() for user_id in user_ids} - summaries.keys()
    if missing:
        summaries.update((user["id"], user) for user in users(sorted(missing)))
    last_ids = [conversation.last_message_id for conversation in conversations if conversation.last_message_id]
    last_messages = {
        message.id: message
        for message in session.execute(select(Message).where(Message.id.in_(last_ids))).scalars()
    } if last_ids else {}
    unread = _unread_counts(session, viewer_id, ids)
    return {
        conversation.id: {
            "id": conversation.id,
            "kind": conversation.kind,
            "title": conversation.title,
            # A member who has since been deactivated is shown by id alone.
            "members": [summaries.get(user_id) or deleted_member(user_id) for user_id in members[conversation.id]],
            "created_at": iso(conversation.created_at),
            "last_activity_at": iso(conversation.last_activity_at),
            "last_message": message_view(last_messages[conversation.last_message_id])
            if conversation.last_message_id in last_messages else None,
            "unread_count": unread.get(conversation.id, 0),
        }
        for conversation in conversations
    }


def _unread_counts(session, user_id, conversation_ids):
    return dict(session.execute(
        select(Message.conversation_id, func.count())
        .join(Member, (Member.conversation_id == Message.conversation_id) & (Member.user_id == user_id))
        .where(
            Message.conversation_id.in_(conversation_ids),
            Message.seq > Member.last_read_seq,
            Message.sender_id != user_id,
        )
        .group_by(Message.conversation_id)
    ).all())


# Messages -----------------------------------------------------------------------

def send_message(session, outbox, sender_id, conversation_id, body, client_id=None):
    """Post a message; return (created, view). A retried send (same client_id
    from the same sender) answers the message the first attempt created."""
    _membership(session, conversation_id, sender_id)
    if client_id:
        existing = _sent_before(session, sender_id, client_id, conversation_id, body)
        if existing:
            return False, message_view(existing, _reactions(session, [existing.id])[existing.id])
    message = session.execute(
        insert(Message)
        .values(conversation_id=conversation_id, sender_id=sender_id, body=body, client_id=client_id)
        .on_conflict_do_nothing(constraint="uq_messages_sender_client_id")
        .returning(Message.id, Message.seq, Message.created_at)
    ).first()
    if message is None:
        # A concurrent retry with the same client_id committed first.
        session.rollback()
        existing = _sent_before(session, sender_id, client_id, conversation_id, body)
        return False, message_view(existing, _reactions(session, [existing.id])[existing.id])
    session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id, Conversation.last_message_seq < message.seq)
        .values(last_activity_at=func.greatest(Conversation.last_activity_at, message.created_at),
                last_message_id=message.id, last_message_seq=message.seq)
    )
    # Whoever writes has read everything before their own message.
    session.execute(
        update(Member)
        .where(Member.conversation_id == conversation_id, Member.user_id == sender_id,
               Member.last_read_seq < message.seq)
        .values(last_read_seq=message.seq, last_read_message_id=message.id)
    )
    view = message_view(Message(
        id=message.id, conversation_id=conversation_id, seq=message.seq, sender_id=sender_id, body=body,
        client_id=client_id, created_at=message.created_at,
    ))
    outbox.add(session, "message_sent", {
        "message": view,
        "conversation_id": conversation_id,
        "sender_id": sender_id,
        "recipient_ids": member_ids(session, conversation_id),
    })
    session.commit()
    return True, view


def _sent_before(session, sender_id, client_id, conversation_id, body):
    existing = session.execute(
        select(Message).where(Message.sender_id == sender_id, Message.client_id == client_id)
    ).scalar_one_or_none()
    if existing is not None and (existing.conversation_id != conversation_id or existing.body != body):
        raise exceptions.ClientIdReused(details={"client_id": ["Already used for another message."]})
    return existing


def message_page(session, user_id, conversation_id, limit, before_seq=None, before_id=None, after_id=None):
    """Messages newest first: older than `before` (a cursor's seq or a message
    id), newer than `after` (a message id). Returns (rows, reactions by id)."""
    _membership(session, conversation_id, user_id)
    query = (
        select(Message).where(Message.conversation_id == conversation_id)
        .order_by(Message.seq.desc()).limit(limit + 1)
    )
    upper_bounds = [seq for seq in (before_seq, before_id and _seq_in(session, conversation_id, before_id)) if seq]
    if upper_bounds:
        query = query.where(Message.seq < min(upper_bounds))
    if after_id:
        query = query.where(Message.seq > _seq_in(session, conversation_id, after_id))
    rows = session.execute(query).scalars().all()
    return rows, _reactions(session, [row.id for row in rows[:limit]])


def _seq_in(session, conversation_id, message_id):
    seq = session.execute(
        select(Message.seq).where(Message.id == message_id, Message.conversation_id == conversation_id)
    ).scalar()
    if seq is None:
        raise exceptions.MessageNotFound(details={"message_id": ["Not a message of this conversation."]})
    return seq


def _reactions(session, message_ids):
    """Per message: [{emoji, count, user_ids}] in order of first use."""
    grouped = {message_id: {} for message_id in message_ids}
    if not message_ids:
        return grouped
    for message_id, emoji, user_id in session.execute(
        select(Reaction.message_id, Reaction.emoji, Reaction.user_id)
        .where(Reaction.message_id.in_(message_ids)).order_by(Reaction.created_at, Reaction.user_id)
    ):
        grouped[message_id].setdefault(emoji, []).append(user_id)
    return {
        message_id: [{"emoji": emoji, "count": len(users), "user_ids": users} for emoji, users in by_emoji.items()]
        for message_id, by_emoji in grouped.items()
    }


# Reactions and read state -----------------------------------------------------------

def add_reaction(session, outbox, user_id, message_id, emoji):
    """True if added, False if the user had already reacted with that emoji."""
    message = _visible_message(session, message_id, user_id)
    added = session.execute(
        insert(Reaction).values(message_id=message_id, user_id=user_id, emoji=emoji)
        .on_conflict_do_nothing().returning(Reaction.message_id)
    ).first()
    if added:
        _record_reaction(session, outbox, "reaction_added", message, user_id, emoji)
    session.commit()
    return added is not None


def remove_reaction(session, outbox, user_id, message_id, emoji):
    message = _visible_message(session, message_id, user_id)
    removed = session.execute(
        Reaction.__table__.delete()
        .where(Reaction.message_id == message_id, Reaction.user_id == user_id, Reaction.emoji == emoji)
        .returning(Reaction.message_id)
    ).first()
    if removed:
        _record_reaction(session, outbox, "reaction_removed", message, user_id, emoji)
    session.commit()


def _record_reaction(session, outbox, event_type, message, user_id, emoji):
    outbox.add(session, event_type, {
        "message_id": message.id,
        "conversation_id": message.conversation_id,
        "user_id": user_id,
        "emoji": emoji,
        "action": "added" if event_type == "reaction_added" else "removed",
        "recipient_ids": member_ids(session, message.conversation_id),
    })


def mark_read(session, outbox, user_id, conversation_id, message_id):
    """Move the caller's read mark forward to message_id (never back)."""
    _membership(session, conversation_id, user_id)
    seq = _seq_in(session, conversation_id, message_id)
    moved = session.execute(
        update(Member)
        .where(Member.conversation_id == conversation_id, Member.user_id == user_id, Member.last_read_seq < seq)
        .values(last_read_seq=seq, last_read_message_id=message_id)
        .returning(Member.user_id)
    ).first()
    if moved:
        outbox.add(session, "conversation_read", {
            "conversation_id": conversation_id,
            "user_id": user_id,
            "message_id": message_id,
            "recipient_ids": member_ids(session, conversation_id),
        })
    session.commit()


# For operators ------------------------------------------------------------------------

def counts(session):
    return {
        "conversations": session.scalar(select(func.count()).select_from(Conversation)),
        "messages": session.scalar(select(func.count()).select_from(Message)),
        "reactions": session.scalar(select(func.count()).select_from(Reaction)),
    }


def preview(body):
    return body if len(body) <= PREVIEW_CHARS else body[:PREVIEW_CHARS - 1] + "…"
