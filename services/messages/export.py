"""An account's part of its data export held by messages: the messages it sent,
the conversations it is in or sent into, and its notifications (services.shared.export)."""
from typing import Any

from sqlalchemy import or_, select

from services.messages.models import Conversation, Member, Message, Notification
from services.shared.clock import iso
from services.shared.export import Sections
from services.shared.unit_of_work import UnitOfWork


def export_user(uow: UnitOfWork, user_id: str) -> dict[str, Any]:
    """{"sections": {conversations, messages_sent, notifications}, "truncated": [...]}, oldest first."""
    session = uow.session
    sections = Sections()
    member_ids: dict[str, list[str]] = {}

    def conversation(row: Conversation) -> dict[str, Any]:
        return {"id": row.id, "kind": row.kind, "title": row.title, "created_by": row.created_by,
                "member_ids": member_ids.get(row.id, []), "created_at": iso(row.created_at)}

    mine = or_(
        Conversation.id.in_(select(Member.conversation_id).where(Member.user_id == user_id)),
        Conversation.id.in_(select(Message.conversation_id).where(Message.sender_id == user_id)),
    )
    conversation_ids = list(session.execute(
        select(Conversation.id).where(mine).order_by(Conversation.created_at, Conversation.id)
        .limit(sections.limit)).scalars())
    for conversation_id, member_id in session.execute(
            select(Member.conversation_id, Member.user_id).where(Member.conversation_id.in_(conversation_ids))):
        member_ids.setdefault(conversation_id, []).append(member_id)
    sections.add("conversations", session,
                 select(Conversation).where(mine).order_by(Conversation.created_at, Conversation.id), conversation)
    sections.add(
        "messages_sent", session,
        select(Message).where(Message.sender_id == user_id).order_by(Message.seq),
        lambda message: {"id": message.id, "conversation_id": message.conversation_id, "body": message.body,
                         "client_id": message.client_id, "created_at": iso(message.created_at)})
    sections.add(
        "notifications", session,
        select(Notification).where(Notification.user_id == user_id)
        .order_by(Notification.created_at, Notification.id),
        lambda item: {"id": item.id, "type": item.type, "data": item.data, "created_at": iso(item.created_at),
                      "read_at": iso(item.read_at)})
    return sections.document()
