import uuid

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.shared.safety import replica_tables
from services.shared.unit_of_work import event_tables

SCHEMA = "messages"


def _new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True, default=_new_id)
    kind: Mapped[str] = mapped_column(String(8))  # "direct" or "group"
    title: Mapped[str | None] = mapped_column(String(120))
    # "<smaller user id>:<larger user id>" for a 1:1, so that two people have
    # one direct conversation even when both create it at once.
    direct_key: Mapped[str | None] = mapped_column(String(73), unique=True)
    created_by: Mapped[str] = mapped_column(UUID(as_uuid=False))
    created_at = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    last_activity_at = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    last_message_id: Mapped[str | None] = mapped_column(UUID(as_uuid=False))
    # The seq of last_message_id: concurrent sends may commit out of order, and
    # only a newer message may replace the last one.
    last_message_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class Member(Base):
    __tablename__ = "members"

    conversation_id: Mapped[str] = mapped_column(
        UUID(as_uuid=False), ForeignKey("conversations.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(UUID(as_uuid=False))
    joined_at = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    # The seq of the newest message this member has read; unread = newer ones from others.
    last_read_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_read_message_id: Mapped[str | None] = mapped_column(UUID(as_uuid=False))

    __table_args__ = (
        PrimaryKeyConstraint("conversation_id", "user_id"),
        Index("ix_members_user", "user_id"),
    )


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True, default=_new_id)
    # Orders messages and keys cursors: unique and increasing, unlike timestamps.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    conversation_id: Mapped[str] = mapped_column(
        UUID(as_uuid=False), ForeignKey("conversations.id", ondelete="CASCADE"))
    sender_id: Mapped[str] = mapped_column(UUID(as_uuid=False))
    body: Mapped[str] = mapped_column(Text)
    client_id: Mapped[str | None] = mapped_column(String(64))
    created_at = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    # Set when the message was removed: its body is emptied, and it is shown
    # as a placeholder (deleted: true, body: null) in its place.
    deleted_at = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # A retried send carries the same client_id: the database refuses a second row.
        UniqueConstraint("sender_id", "client_id", name="uq_messages_sender_client_id"),
        Index("ix_messages_conversation_seq", "conversation_id", "seq"),
    )


class Reaction(Base):
    __tablename__ = "reactions"

    message_id: Mapped[str] = mapped_column(UUID(as_uuid=False), ForeignKey("messages.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(UUID(as_uuid=False))
    emoji: Mapped[str] = mapped_column(String(64))
    created_at = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)

    __table_args__ = (PrimaryKeyConstraint("message_id", "user_id", "emoji"),)


class Notification(Base):
    __tablename__ = "notifications"

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True, default=_new_id)
    user_id: Mapped[str] = mapped_column(UUID(as_uuid=False))
    type: Mapped[str] = mapped_column(String(40))
    data = mapped_column(JSONB, nullable=False)
    created_at = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    read_at = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_notifications_user_recent", "user_id", "created_at", "id"),
        Index("ix_notifications_user_unread", "user_id", postgresql_where=read_at.is_(None)),
    )


class FollowNotice(Base):
    """When a follow-related notification (new_follower, follow_requested,
    follow_request_approved) last went out for a pair of users: at most one
    of each kind a day, however often they follow and unfollow."""

    __tablename__ = "follow_notices"

    kind: Mapped[str] = mapped_column(String(40))
    follower_id: Mapped[str] = mapped_column(UUID(as_uuid=False))
    followee_id: Mapped[str] = mapped_column(UUID(as_uuid=False))
    notified_at = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (
        PrimaryKeyConstraint("follower_id", "followee_id", "kind"),
        # A deleted account's notices go with it, whichever side it was on.
        Index("ix_follow_notices_followee", "followee_id"),
    )


# Replicas of auth's blocks and mutes (services.shared.safety), kept by its events.
Blocks, Mutes = replica_tables(Base.metadata)

Outbox, ProcessedEvent = event_tables(Base.metadata)
