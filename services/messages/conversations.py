"""The messages domain: conversations, messages, reactions and read state.

Functions take the unit of work (services.shared.unit_of_work: its session,
and `record` for domain events) and plain values, and return rows or plain
dicts of values; they know nothing of HTTP or AMQP, and the entrypoint's unit
of work commits or rolls back. Every event names the members who should hear of
it (`recipient_ids`), so realtime can deliver it without a database.
"""
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert

from services.messages import exceptions, safety
from services.messages.models import Conversation, Member, Message, Reaction
from services.shared import clock, contracts
from services.shared.unit_of_work import UnitOfWork, table_of

# Rules (the request schemas state them to clients) ----------------------------------

CONVERSATION_KINDS = ("direct", "group")
MAX_MEMBERS = 100
MAX_TITLE_CHARS = 120
MAX_BODY_CHARS = 4000
MAX_CLIENT_ID_CHARS = 64
PREVIEW_CHARS = 140

# A reaction is a short run of emoji, stated as one regular expression that
# is both the rule and the API document's `pattern`, so what a generated client
# or a fuzzer takes as valid is exactly what is accepted. An emoji is a
# pictograph or symbol, with optional variation selector, skin tone and tag
# characters (subdivision flags such as England's), joined to more by zero-width
# joiners (families, professions); or a keycap (1️⃣). Flags are two regional
# indicators, which the pictograph block includes. The characters are written
# as themselves, not as escapes, so the pattern reads the same in any regex
# dialect (ECMA-262's included). The pattern has no room for controls, bidi
# overrides or combining marks (a Zalgo thumbs-up), which the text policy refuses too.
MAX_EMOJI_CODEPOINTS = 16
_PICTOGRAPH = (
    "\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u21ff\u231a-\u2328\u232b-\u23ff\u24c2"
    "\u25a0-\u27bf\u2900-\u297f\u2b00-\u2bff\u3030\u303d\u3297\u3299\U0001f000-\U0001faff"
)
_MODIFIER = "\ufe0e\ufe0f\U0001f3fb-\U0001f3ff"
_TAG = "\U000e0020-\U000e007f"
_ELEMENT = f"(?:[{_PICTOGRAPH}][{_MODIFIER}]*[{_TAG}]*|[0-9#*]\ufe0f?\u20e3)"
EMOJI_PATTERN = f"^(?:{_ELEMENT}(?:\u200d{_ELEMENT})*)+$"
_EMOJI = re.compile(EMOJI_PATTERN)

# A user as auth's get_users describes them ({"id", "username", ...}).
UserSummary = dict[str, Any]
# auth's get_users: the summaries of the active users among the ids given.
Users = Callable[[list[str]], list[UserSummary]]
# auth's group_invite_refusals(inviter_id, user_ids): the ids among user_ids
# whose group_invites setting refuses being added to a group by the inviter.
InviteRefusals = Callable[[str, list[str]], list[str]]
# A message (message_values) or a conversation (conversation_details) as the API answers it.
Values = dict[str, Any]
# A keyset position in a newest-first list of conversations: (last_activity_at, id).
After = tuple[datetime, str]


def is_emoji(value: str) -> bool:
    """True for the text of a reaction: the emoji pattern, whole (length is checked apart)."""
    return _EMOJI.fullmatch(value) is not None


def preview(body: str) -> str:
    return body if len(body) <= PREVIEW_CHARS else body[:PREVIEW_CHARS - 1] + "…"


# Membership ---------------------------------------------------------------------

def member_ids(uow: UnitOfWork, conversation_id: str) -> list[str]:
    return list(uow.session.execute(
        select(Member.user_id).where(Member.conversation_id == conversation_id).order_by(Member.joined_at)
    ).scalars())


def live_member_ids(uow: UnitOfWork, conversation_id: str) -> list[str]:
    """The members who hear each other live (typing): none in a 1:1 across a
    block, where neither may reach the other."""
    if safety.blocked_direct(uow.session, conversation_id):
        return []
    return member_ids(uow, conversation_id)


def is_member(uow: UnitOfWork, conversation_id: str, user_id: str) -> bool:
    return uow.session.get(Member, (conversation_id, user_id)) is not None


def _membership(uow: UnitOfWork, conversation_id: str, user_id: str) -> Member:
    """The caller's membership; a conversation they are not in does not exist to them."""
    member = uow.session.get(Member, (conversation_id, user_id))
    if member is None:
        raise exceptions.ConversationNotFound()
    return member


def _visible_message(uow: UnitOfWork, message_id: str, user_id: str) -> Message:
    """A message of one of the user's conversations that is not removed."""
    message = uow.session.get(Message, message_id)
    if message is None or message.deleted_at is not None or not is_member(uow, message.conversation_id, user_id):
        raise exceptions.MessageNotFound()
    return message


# Conversations --------------------------------------------------------------------

def create_conversation(uow: UnitOfWork, users: Users, creator_id: str, member_ids_requested: Iterable[str],
                        title: str | None = None, *, invite_refusals: InviteRefusals) -> tuple[bool, Values]:
    """Create a conversation; return (created, conversation) (see conversation_details).
    A 1:1 (one other member, no title) that exists already is answered as it is.
    A group takes only members whose group_invites setting lets the creator
    add them (GroupInvitesRefused names the others, and nothing is made)."""
    others = [user_id for user_id in dict.fromkeys(member_ids_requested) if user_id != creator_id]
    if not others:
        raise exceptions.NoOtherMembers(details={"member_ids": ["Name at least one other user."]})
    summaries = {user["id"]: user for user in users([creator_id, *others])}
    unknown = [user_id for user_id in others if user_id not in summaries]
    if unknown:
        raise exceptions.UnknownMembers(details={"member_ids": unknown})
    direct_key = ":".join(sorted([creator_id, others[0]])) if len(others) == 1 and not title else None
    if direct_key is None:
        _check_group_invites(invite_refusals, creator_id, others)
    if direct_key:
        # Neither opens a 1:1 with someone they block or who blocks them, nor
        # finds one they had: a group with them stays possible.
        safety.refuse_if_blocked(uow.session, creator_id, others[0])
        existing = _direct_conversation(uow, direct_key)
        if existing:
            return False, _details_of_one(uow, users, creator_id, existing, summaries)
    conversation_id = uow.session.execute(
        insert(Conversation)
        .values(kind="direct" if direct_key else "group", title=title, direct_key=direct_key,
                created_by=creator_id)
        .on_conflict_do_nothing(index_elements=["direct_key"])
        .returning(Conversation.id)
    ).scalar()
    if conversation_id is None:
        # Both people opened the 1:1 at the same moment and the other one won.
        # The insert waited for that transaction to commit, and under READ
        # COMMITTED the next statement sees its row: no rollback is needed.
        assert direct_key is not None, "only a 1:1 can meet a conflict"
        existing = _direct_conversation(uow, direct_key)
        assert existing is not None, "the conflicting row is committed"
        return False, _details_of_one(uow, users, creator_id, existing, summaries)
    uow.session.add_all(Member(conversation_id=conversation_id, user_id=user_id) for user_id in [creator_id, *others])
    uow.session.flush()
    conversation = uow.session.get(Conversation, conversation_id)
    assert conversation is not None, "inserted above"
    return True, _details_of_one(uow, users, creator_id, conversation, summaries)


def _check_group_invites(invite_refusals: InviteRefusals, inviter_id: str, invitee_ids: list[str]) -> None:
    """Refuse the whole group if anyone's setting refuses the inviter: the
    creator learns whom to leave out, instead of a group that silently lacks them."""
    refused = set(invite_refusals(inviter_id, invitee_ids))
    if refused:
        raise exceptions.GroupInvitesRefused(
            details={"member_ids": [user_id for user_id in invitee_ids if user_id in refused]})


def _direct_conversation(uow: UnitOfWork, direct_key: str) -> Conversation | None:
    return uow.session.execute(
        select(Conversation).where(Conversation.direct_key == direct_key)
    ).scalar_one_or_none()


def get_conversation(uow: UnitOfWork, users: Users, user_id: str, conversation_id: str) -> Values:
    _membership(uow, conversation_id, user_id)
    conversation = uow.session.get(Conversation, conversation_id)
    assert conversation is not None, "a member's conversation exists"
    return _details_of_one(uow, users, user_id, conversation)


def _details_of_one(uow: UnitOfWork, users: Users, viewer_id: str, conversation: Conversation,
                    known_users: Mapping[str, UserSummary] | None = None) -> Values:
    return conversation_details(uow, users, viewer_id, [conversation], known_users)[conversation.id]


def conversation_page(uow: UnitOfWork, users: Users, user_id: str, limit: int,
                      after: After | None) -> tuple[Sequence[Conversation], dict[str, Values]]:
    """The caller's conversations, latest activity first: up to limit + 1 rows
    (the extra one says there is a next page), and the details of the first
    `limit` by id."""
    query = (
        select(Conversation)
        .join(Member, Member.conversation_id == Conversation.id)
        .where(Member.user_id == user_id)
        .order_by(Conversation.last_activity_at.desc(), Conversation.id.desc())
        .limit(limit + 1)
    )
    if after:
        query = query.where(tuple_(Conversation.last_activity_at, Conversation.id) < tuple_(*map(literal, after)))
    rows = uow.session.execute(query).scalars().all()
    return rows, conversation_details(uow, users, user_id, rows[:limit])


def conversation_details(uow: UnitOfWork, users: Users, viewer_id: str, conversations: Sequence[Conversation],
                         known_users: Mapping[str, UserSummary] | None = None) -> dict[str, Values]:
    """Conversations as viewer_id sees them, by id, in a fixed number of queries
    and one call to auth: each a dict of its columns, `member_ids`, `users`
    (the summaries auth has of them: a closed account has none), `last_message`
    (message_values) and the viewer's `unread_count`."""
    ids = [conversation.id for conversation in conversations]
    if not ids:
        return {}
    members: defaultdict[str, list[str]] = defaultdict(list)
    for conversation_id, user_id in uow.session.execute(
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
        for message in uow.session.execute(select(Message).where(Message.id.in_(last_ids))).scalars()
    } if last_ids else {}
    unread = _unread_counts(uow, viewer_id, ids)
    return {
        conversation.id: {
            "id": conversation.id,
            "kind": conversation.kind,
            "title": conversation.title,
            "member_ids": members[conversation.id],
            "users": {user_id: summaries[user_id] for user_id in members[conversation.id] if user_id in summaries},
            "created_at": conversation.created_at,
            "last_activity_at": conversation.last_activity_at,
            "last_message": message_values(last_messages[conversation.last_message_id])
            if conversation.last_message_id in last_messages else None,
            "unread_count": unread.get(conversation.id, 0),
        }
        for conversation in conversations
    }


def _unread_counts(uow: UnitOfWork, user_id: str, conversation_ids: list[str]) -> dict[str, int]:
    return dict(uow.session.execute(
        select(Message.conversation_id, func.count())
        .join(Member, (Member.conversation_id == Message.conversation_id) & (Member.user_id == user_id))
        .where(
            Message.conversation_id.in_(conversation_ids),
            Message.seq > Member.last_read_seq,
            Message.sender_id != user_id,
        )
        .group_by(Message.conversation_id)
    ).tuples().all())


# Messages -----------------------------------------------------------------------

def message_values(message: Message, reactions: Iterable[dict[str, Any]] = ()) -> Values:
    """A message as its members see it: what the API answers and MessageSent
    carries. A removed message is its placeholder: deleted, with no body."""
    deleted = message.deleted_at is not None
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "seq": message.seq,
        "sender_id": message.sender_id,
        "body": None if deleted else message.body,
        "deleted": deleted,
        "client_id": message.client_id,
        "created_at": message.created_at,
        "reactions": [] if deleted else list(reactions),
    }


def message_summary(values: Values) -> contracts.MessageSummary:
    """message_values as the contract of the events that carry a message."""
    return contracts.MessageSummary(**dict(
        values,
        created_at=clock.iso(values["created_at"]),
        reactions=[contracts.ReactionSummary(**reaction) for reaction in values["reactions"]],
    ))


def send_message(uow: UnitOfWork, sender_id: str, conversation_id: str, body: str,
                 client_id: str | None = None) -> tuple[bool, Values]:
    """Post a message; return (created, message_values). A retried send (same
    client_id from the same sender) answers the message the first attempt
    created. Nothing goes into a 1:1 while either member blocks the other."""
    _membership(uow, conversation_id, sender_id)
    safety.refuse_direct_if_blocked(uow.session, conversation_id, sender_id)
    if client_id:
        existing = _sent_before(uow, sender_id, client_id, conversation_id, body)
        if existing:
            return False, _values_with_reactions(uow, existing)
    message = uow.session.execute(
        insert(Message)
        .values(conversation_id=conversation_id, sender_id=sender_id, body=body, client_id=client_id)
        .on_conflict_do_nothing(constraint="uq_messages_sender_client_id")
        .returning(Message.id, Message.seq, Message.created_at)
    ).first()
    if message is None:
        # A concurrent retry with the same client_id won. The insert waited
        # for it to commit, and under READ COMMITTED the next statement sees
        # its row: no rollback is needed.
        existing = _sent_before(uow, sender_id, client_id, conversation_id, body)
        assert existing is not None, "the conflicting row is committed"
        return False, _values_with_reactions(uow, existing)
    uow.session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id, Conversation.last_message_seq < message.seq)
        .values(last_activity_at=func.greatest(Conversation.last_activity_at, message.created_at),
                last_message_id=message.id, last_message_seq=message.seq)
    )
    # Whoever writes has read everything before their own message.
    uow.session.execute(
        update(Member)
        .where(Member.conversation_id == conversation_id, Member.user_id == sender_id,
               Member.last_read_seq < message.seq)
        .values(last_read_seq=message.seq, last_read_message_id=message.id)
    )
    values = message_values(Message(
        id=message.id, conversation_id=conversation_id, seq=message.seq, sender_id=sender_id, body=body,
        client_id=client_id, created_at=message.created_at,
    ))
    uow.record(contracts.MessageSent(
        message=message_summary(values),
        conversation_id=conversation_id,
        sender_id=sender_id,
        recipient_ids=member_ids(uow, conversation_id),
    ))
    return True, values


def _values_with_reactions(uow: UnitOfWork, message: Message) -> Values:
    return message_values(message, reactions_of(uow, [message.id])[message.id])


def _sent_before(uow: UnitOfWork, sender_id: str, client_id: str | None, conversation_id: str,
                 body: str) -> Message | None:
    existing = uow.session.execute(
        select(Message).where(Message.sender_id == sender_id, Message.client_id == client_id)
    ).scalar_one_or_none()
    if existing is not None and (existing.conversation_id != conversation_id or existing.body != body):
        raise exceptions.ClientIdReused(details={"client_id": ["Already used for another message."]})
    return existing


def message_page(uow: UnitOfWork, user_id: str, conversation_id: str, limit: int, before_seq: int | None = None,
                 before_id: str | None = None,
                 after_id: str | None = None) -> tuple[Sequence[Message], dict[str, Values]]:
    """Messages newest first (by seq): older than `before` (a cursor's seq or a
    message id), newer than `after` (a message id). Returns up to limit + 1 rows
    and, for the first `limit`, their message_values by id."""
    _membership(uow, conversation_id, user_id)
    query = (
        select(Message).where(Message.conversation_id == conversation_id)
        .order_by(Message.seq.desc()).limit(limit + 1)
    )
    upper_bounds = [seq for seq in (before_seq, before_id and _seq_in(uow, conversation_id, before_id)) if seq]
    if upper_bounds:
        query = query.where(Message.seq < min(upper_bounds))
    if after_id:
        query = query.where(Message.seq > _seq_in(uow, conversation_id, after_id))
    rows = uow.session.execute(query).scalars().all()
    reactions = reactions_of(uow, [row.id for row in rows[:limit]])
    return rows, {row.id: message_values(row, reactions[row.id]) for row in rows[:limit]}


def _seq_in(uow: UnitOfWork, conversation_id: str, message_id: str) -> int:
    seq = uow.session.execute(
        select(Message.seq).where(Message.id == message_id, Message.conversation_id == conversation_id)
    ).scalar()
    if seq is None:
        raise exceptions.MessageNotFound(details={"message_id": ["Not a message of this conversation."]})
    return seq


def reactions_of(uow: UnitOfWork, message_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Per message: [{emoji, count, user_ids}] in order of first use."""
    grouped: dict[str, dict[str, list[str]]] = {message_id: {} for message_id in message_ids}
    if not message_ids:
        return {}
    for message_id, emoji, user_id in uow.session.execute(
        select(Reaction.message_id, Reaction.emoji, Reaction.user_id)
        .where(Reaction.message_id.in_(message_ids)).order_by(Reaction.created_at, Reaction.user_id)
    ):
        grouped[message_id].setdefault(emoji, []).append(user_id)
    return {
        message_id: [{"emoji": emoji, "count": len(users), "user_ids": users} for emoji, users in by_emoji.items()]
        for message_id, by_emoji in grouped.items()
    }


# Reports and removal (auth keeps the reports: services.auth.moderation) -------------

def report_snapshot(uow: UnitOfWork, viewer_id: str, message_id: str) -> Values | None:
    """What a member reports of a message ({author_id, text, conversation_id}),
    or None if the viewer is not a member of its conversation or it is removed."""
    try:
        message = _visible_message(uow, message_id, viewer_id)
    except exceptions.MessageNotFound:
        return None
    return {"author_id": message.sender_id, "text": message.body, "conversation_id": message.conversation_id,
            "media_urls": []}


def remove_message(uow: UnitOfWork, message_id: str) -> bool:
    """Replace a message with its placeholder: the body is gone for good, and
    its reactions with it; it keeps its place (id, seq, sender) in the
    conversation. False if it is gone already."""
    message = uow.session.execute(
        select(Message).where(Message.id == message_id).with_for_update()
    ).scalar_one_or_none()
    if message is None or message.deleted_at is not None:
        return False
    message.deleted_at = clock.now()
    message.body = ""
    uow.session.execute(table_of(Reaction).delete().where(Reaction.message_id == message_id))
    uow.session.flush()
    uow.record(contracts.MessageRemoved(message_id=message.id, conversation_id=message.conversation_id,
                                        recipient_ids=member_ids(uow, message.conversation_id)))
    return True


# Reactions and read state -----------------------------------------------------------

def add_reaction(uow: UnitOfWork, user_id: str, message_id: str, emoji: str) -> bool:
    """True if added, False if the user had already reacted with that emoji."""
    message = _visible_message(uow, message_id, user_id)
    added = uow.session.execute(
        insert(Reaction).values(message_id=message_id, user_id=user_id, emoji=emoji)
        .on_conflict_do_nothing().returning(Reaction.message_id)
    ).first()
    if added:
        uow.record(contracts.ReactionAdded(**_reaction_change(uow, message, user_id, emoji)))
    return added is not None


def remove_reaction(uow: UnitOfWork, user_id: str, message_id: str, emoji: str) -> None:
    message = _visible_message(uow, message_id, user_id)
    removed = uow.session.execute(
        table_of(Reaction).delete()
        .where(Reaction.message_id == message_id, Reaction.user_id == user_id, Reaction.emoji == emoji)
        .returning(Reaction.message_id)
    ).first()
    if removed:
        uow.record(contracts.ReactionRemoved(**_reaction_change(uow, message, user_id, emoji)))


def _reaction_change(uow: UnitOfWork, message: Message, user_id: str, emoji: str) -> dict[str, Any]:
    return {
        "message_id": message.id,
        "conversation_id": message.conversation_id,
        "user_id": user_id,
        "emoji": emoji,
        "recipient_ids": member_ids(uow, message.conversation_id),
    }


def mark_read(uow: UnitOfWork, user_id: str, conversation_id: str, message_id: str) -> None:
    """Move the caller's read mark forward to message_id (never back)."""
    _membership(uow, conversation_id, user_id)
    seq = _seq_in(uow, conversation_id, message_id)
    moved = uow.session.execute(
        update(Member)
        .where(Member.conversation_id == conversation_id, Member.user_id == user_id, Member.last_read_seq < seq)
        .values(last_read_seq=seq, last_read_message_id=message_id)
        .returning(Member.user_id)
    ).first()
    if moved:
        uow.record(contracts.ConversationRead(
            conversation_id=conversation_id,
            user_id=user_id,
            message_id=message_id,
            recipient_ids=member_ids(uow, conversation_id),
        ))


# For operators ------------------------------------------------------------------------

def counts(uow: UnitOfWork) -> dict[str, int | None]:
    session = uow.session
    return {
        "conversations": session.scalar(select(func.count()).select_from(Conversation)),
        "messages": session.scalar(select(func.count()).select_from(Message)),
        "reactions": session.scalar(select(func.count()).select_from(Reaction)),
    }
