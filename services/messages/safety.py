"""Blocks and mutes as the messages service enforces them, from its own
replica of auth's (services.shared.safety), kept by auth's events.

A 1:1 between two users where either blocks the other cannot be opened or
written to. In a group both stay members, but whoever blocks or mutes the
sender is not notified of their messages, and a block silences every other
notification the blocked user's actions would make for the blocker.
"""
from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.messages.models import Blocks, Conversation, Member, Mutes
from services.shared import contracts, safety
from services.shared.unit_of_work import UnitOfWork


def change_block(uow: UnitOfWork, change: contracts.RelationChanged, active: bool) -> None:
    """Apply auth's user_blocked (active) or user_unblocked."""
    safety.apply_change(uow.session, Blocks, change, active)


def change_mute(uow: UnitOfWork, change: contracts.RelationChanged, active: bool) -> None:
    """Apply auth's user_muted (active) or user_unmuted."""
    safety.apply_change(uow.session, Mutes, change, active)


def forget_user(uow: UnitOfWork, user_id: str) -> None:
    """A deleted account's blocks and mutes, both ways, go with it."""
    for table in (Blocks, Mutes):
        safety.forget(uow.session, table, user_id)


def refuse_if_blocked(session: Session, user_id: str, other_id: str) -> None:
    """Blocked (403 BLOCKED) if either of the two blocks the other."""
    if session.scalar(select(safety.either_blocks(Blocks, user_id, other_id))):
        raise safety.Blocked()


def refuse_direct_if_blocked(session: Session, conversation_id: str, sender_id: str) -> None:
    """Blocked if the conversation is a 1:1 whose other member and the sender are blocked."""
    other = session.scalar(
        select(Member.user_id).join(Conversation, Conversation.id == Member.conversation_id).where(
            Member.conversation_id == conversation_id, Conversation.kind == "direct", Member.user_id != sender_id,
            safety.either_blocks(Blocks, sender_id, Member.user_id),
        ).limit(1)
    )
    if other is not None:
        raise safety.Blocked()


def blocked_direct(session: Session, conversation_id: str) -> bool:
    """Whether the conversation is a 1:1 whose two members are blocked (either way)."""
    pair = session.execute(
        select(Member.user_id).join(Conversation, Conversation.id == Member.conversation_id)
        .where(Member.conversation_id == conversation_id, Conversation.kind == "direct")
    ).scalars().all()
    return len(pair) == 2 and bool(session.scalar(select(safety.either_blocks(Blocks, pair[0], pair[1]))))


def not_to_notify(session: Session, actor_id: str, recipient_ids: Collection[str], mutes_count: bool) -> set[str]:
    """Those of recipient_ids who block actor_id (or, with mutes_count, mute
    them): nothing actor_id does makes a notification for them."""
    if not recipient_ids:
        return set()
    tables = (Blocks, Mutes) if mutes_count else (Blocks,)
    silenced: set[str] = set()
    for table in tables:
        silenced.update(session.execute(
            select(table.c.user_id).where(
                table.c.target_id == actor_id, table.c.user_id.in_(list(recipient_ids)), table.c.active,
            )
        ).scalars())
    return silenced
