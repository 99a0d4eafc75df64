import uuid

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.shared.unit_of_work import event_tables

SCHEMA = "auth"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True, default=lambda: str(uuid.uuid4()))
    # Stored lower-cased: both are unique case-insensitively.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    username: Mapped[str] = mapped_column(String(30), unique=True)
    display_name: Mapped[str] = mapped_column(String(80))
    bio: Mapped[str] = mapped_column(Text, default="")
    avatar_media_id: Mapped[str | None] = mapped_column(UUID(as_uuid=False))
    password_hash: Mapped[str] = mapped_column(String(60))
    # Whether the owner proved they read mail at `email` (a verification
    # link, or a password reset sent there). False again on an email change.
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    updated_at = mapped_column(DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False)

    __table_args__ = (
        # Prefix search (`LIKE 'ab%'`) on the lower-cased names uses these.
        Index("ix_users_username_prefix", "username", postgresql_ops={"username": "text_pattern_ops"}),
        Index(
            "ix_users_display_name_prefix", func.lower(display_name).label("display_name_lower"),
            postgresql_ops={"display_name_lower": "text_pattern_ops"},
        ),
    )

    @property
    def avatar_url(self) -> str | None:
        """Where the avatar is served: the events service holds media, at /media/<id>."""
        return f"/media/{self.avatar_media_id}" if self.avatar_media_id else None


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True, default=lambda: str(uuid.uuid4()))
    # Only a hash is kept: a database leak yields no usable token.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[str] = mapped_column(UUID(as_uuid=False), index=True)
    user_id: Mapped[str] = mapped_column(UUID(as_uuid=False), ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    expires_at = mapped_column(DateTime(timezone=True), nullable=False)
    used_at = mapped_column(DateTime(timezone=True))
    revoked_at = mapped_column(DateTime(timezone=True))


class Follow(Base):
    __tablename__ = "follows"

    follower_id: Mapped[str] = mapped_column(UUID(as_uuid=False), ForeignKey("users.id", ondelete="CASCADE"))
    followee_id: Mapped[str] = mapped_column(UUID(as_uuid=False), ForeignKey("users.id", ondelete="CASCADE"))
    created_at = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)

    __table_args__ = (
        PrimaryKeyConstraint("follower_id", "followee_id"),
        Index("ix_follows_followee_recent", "followee_id", "created_at"),
        Index("ix_follows_follower_recent", "follower_id", "created_at"),
    )


class AccountToken(Base):
    """A single-use token mailed to an address: it verifies that address
    (purpose verify_email) or sets a new password (password_reset). Only a
    hash is kept; it is good only while the account's email is still `email`."""
    __tablename__ = "account_tokens"

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True, default=lambda: str(uuid.uuid4()))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(UUID(as_uuid=False), ForeignKey("users.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    created_at = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    expires_at = mapped_column(DateTime(timezone=True), nullable=False)
    used_at = mapped_column(DateTime(timezone=True))


class OutgoingMail(Base):
    """A mail to write and send after the request's commit (services.auth.mail).

    It holds what the mail is about, never its text: the mail worker writes
    it when sending, and makes the token a link needs then, so no secret is
    stored here or travels through the broker."""
    __tablename__ = "outgoing_mail"

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True, default=lambda: str(uuid.uuid4()))
    kind: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(254))
    # None for a password reset asked for an address: whose it is is looked
    # up when sending, so the request does the same work for any address.
    user_id: Mapped[str | None] = mapped_column(UUID(as_uuid=False), ForeignKey("users.id", ondelete="CASCADE"),
                                                index=True)
    data: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
    created_at = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    # When the worker settled it, and how: sent, skipped (nobody to send it
    # to any more) or rejected (the SMTP server refused it for good).
    settled_at = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(16))


Outbox, ProcessedEvent = event_tables(Base.metadata)
