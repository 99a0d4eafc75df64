import uuid

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.shared.safety import replica_tables
from services.shared.unit_of_work import event_tables

SCHEMA = "events"


def _new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class Event(Base):
    __tablename__ = "events"

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True, default=_new_id)
    organizer_id: Mapped[str] = mapped_column(UUID(as_uuid=False))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    location: Mapped[str] = mapped_column(String(300), default="")
    is_online: Mapped[bool] = mapped_column(Boolean, default=False)
    visibility: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="active")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    starts_at = mapped_column(DateTime(timezone=True), nullable=False)
    ends_at = mapped_column(DateTime(timezone=True), nullable=False)
    # RRULE of a recurring event (None for a single one), and the end of its
    # last occurrence within the expansion cap. Range queries read the
    # occurrences table, never the rule.
    rrule: Mapped[str | None] = mapped_column(String(500))
    series_ends_at = mapped_column(DateTime(timezone=True), nullable=False)
    capacity: Mapped[int | None] = mapped_column(Integer)
    # Kept on the event row, changed only under its row lock, so capacity is
    # checked without counting participants.
    participants_count: Mapped[int] = mapped_column(Integer, default=0)
    cover_media_id: Mapped[str | None] = mapped_column(UUID(as_uuid=False))
    # The UID of an imported VEVENT: re-importing it updates this row.
    ical_uid: Mapped[str | None] = mapped_column(String(255))
    # Set when a moderator removed the event: it is then hidden from everyone,
    # its organizer included (services.events.schedule.visible_to).
    removed_at = mapped_column(DateTime(timezone=True))
    created_at = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    updated_at = mapped_column(DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False)

    __table_args__ = (
        Index("ix_events_starts_at", "starts_at", "id"),
        Index("ix_events_organizer_starts_at", "organizer_id", "starts_at"),
        # The feed reads an organizer's newest events.
        Index("ix_events_organizer_created", "organizer_id", "created_at", "id"),
        Index("ix_events_organizer_ical_uid", "organizer_id", "ical_uid", unique=True),
    )


class Occurrence(Base):
    """When each occurrence of an event starts: one row for a single event, one
    per occurrence within the recurrence cap for a recurring one, whatever its
    status. Written in the same transaction as every change of an event's
    timing, so a range query is one keyset scan of this table joined to the
    events it may show, with nothing expanded and nothing left out."""

    __tablename__ = "occurrences"

    # Removing an event removes its occurrences, whichever path removes it.
    event_id: Mapped[str] = mapped_column(UUID(as_uuid=False), ForeignKey(f"{SCHEMA}.events.id", ondelete="CASCADE"))
    starts_at = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (
        PrimaryKeyConstraint("event_id", "starts_at"),
        # Range pages: WHERE (starts_at, event_id) > cursor ORDER BY starts_at, event_id.
        Index("ix_occurrences_starts_at", "starts_at", "event_id"),
    )


class Participant(Base):
    __tablename__ = "participants"

    event_id: Mapped[str] = mapped_column(UUID(as_uuid=False))
    user_id: Mapped[str] = mapped_column(UUID(as_uuid=False))
    joined_at = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)

    __table_args__ = (
        PrimaryKeyConstraint("event_id", "user_id"),
        Index("ix_participants_event_joined", "event_id", "joined_at", "user_id"),
        Index("ix_participants_user", "user_id", "event_id"),
    )


class Media(Base):
    __tablename__ = "media"

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True, default=_new_id)
    owner_id: Mapped[str] = mapped_column(UUID(as_uuid=False), index=True)
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    created_at = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Post(Base):
    __tablename__ = "posts"

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True, default=_new_id)
    author_id: Mapped[str] = mapped_column(UUID(as_uuid=False))
    body: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str | None] = mapped_column(UUID(as_uuid=False))
    media_ids: Mapped[list[str]] = mapped_column(ARRAY(UUID(as_uuid=False)), default=list)
    created_at = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)

    __table_args__ = (
        # The feed reads each followee's newest posts: one short index range each.
        Index("ix_posts_author_created", "author_id", "created_at", "id"),
        Index("ix_posts_event_created", "event_id", "created_at", "id"),
        Index("ix_posts_created", "created_at", "id"),
    )


class Follow(Base):
    """Replica of auth's follow graph, kept by auth's follow events."""

    __tablename__ = "follows"

    follower_id: Mapped[str] = mapped_column(UUID(as_uuid=False))
    followee_id: Mapped[str] = mapped_column(UUID(as_uuid=False))

    __table_args__ = (
        PrimaryKeyConstraint("follower_id", "followee_id"),
        Index("ix_follows_followee", "followee_id", "follower_id"),
    )


class DeletedUser(Base):
    """A user auth deleted. Kept so that a follow event handled after the
    deletion (redelivered, or requeued while the database was down) does not
    bring back an edge the deletion removed."""

    __tablename__ = "deleted_users"

    user_id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    deleted_at = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class FollowSync(Base):
    """When a user's follow list was last copied whole from auth."""

    __tablename__ = "follow_syncs"

    user_id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    synced_at = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


# Replicas of auth's blocks and mutes (services.shared.safety), kept by its events.
Blocks, Mutes = replica_tables(Base.metadata)

Outbox, ProcessedEvent = event_tables(Base.metadata)
