import uuid

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Sequence,
    String,
    Text,
    UniqueConstraint,
    false,
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
    # A private account approves each follower (services.auth.privacy).
    is_private: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Who may add this user to a group conversation: everyone, following
    # (people this user follows) or nobody. The messages service asks.
    group_invites: Mapped[str] = mapped_column(String(16), default="everyone", server_default="everyone")
    # Set when the owner deleted the account: the row is a tombstone since
    # (services.auth.accounts.delete_account); a deactivated one has none.
    deleted_at = mapped_column(DateTime(timezone=True))
    # Every access token of the account issued before this is refused
    # (services.auth.sessions.revoke_every_session): kept here so that the
    # revocation list can be written again after Redis lost it.
    tokens_not_before = mapped_column(DateTime(timezone=True))
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


class FollowRequest(Base):
    """A request to follow a private account, until its owner approves
    (it becomes a Follow) or declines it, or the requester takes it back."""

    __tablename__ = "follow_requests"

    requester_id: Mapped[str] = mapped_column(UUID(as_uuid=False), ForeignKey("users.id", ondelete="CASCADE"))
    owner_id: Mapped[str] = mapped_column(UUID(as_uuid=False), ForeignKey("users.id", ondelete="CASCADE"))
    created_at = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)

    __table_args__ = (
        PrimaryKeyConstraint("requester_id", "owner_id"),
        # The owner's page of requests, newest first.
        Index("ix_follow_requests_owner_recent", "owner_id", "created_at"),
    )


class Report(Base):
    """A user's report of an account or of something an account wrote, with
    what the reported content said when it was reported (`content`), so that
    moderators judge what was reported even after an edit."""

    __tablename__ = "reports"

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True, default=lambda: str(uuid.uuid4()))
    reporter_id: Mapped[str] = mapped_column(UUID(as_uuid=False), ForeignKey("users.id", ondelete="CASCADE"))
    target_type: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(UUID(as_uuid=False))
    # The account the target is or belongs to: whom a suspension suspends.
    target_owner_id: Mapped[str] = mapped_column(UUID(as_uuid=False))
    reason: Mapped[str] = mapped_column(String(16))
    details: Mapped[str | None] = mapped_column(Text)
    content = mapped_column(JSONB, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    created_at = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    resolved_at = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # One report per reporter and target: a repeat finds this row, even in a race.
        UniqueConstraint("reporter_id", "target_type", "target_id", name="uq_reports_reporter_target"),
        # The queue, oldest first, and its metrics read only open reports.
        Index("ix_reports_open_created", "created_at", "id", postgresql_where=text("status = 'open'")),
        # One action closes every report on its target.
        Index("ix_reports_target", "target_type", "target_id"),
        Index("ix_reports_target_owner", "target_owner_id"),
    )


class ModerationAction(Base):
    """The audit trail: one row per report an operator's action closed."""

    __tablename__ = "moderation_actions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    report_id: Mapped[str] = mapped_column(UUID(as_uuid=False), ForeignKey("reports.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(16))
    operator: Mapped[str] = mapped_column(String(80))
    created_at = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)

    __table_args__ = (Index("ix_moderation_actions_report", "report_id", "created_at"),)


class Block(Base):
    """blocker_id blocks blocked_id: neither sees or reaches the other."""

    __tablename__ = "blocks"

    blocker_id: Mapped[str] = mapped_column(UUID(as_uuid=False), ForeignKey("users.id", ondelete="CASCADE"))
    blocked_id: Mapped[str] = mapped_column(UUID(as_uuid=False), ForeignKey("users.id", ondelete="CASCADE"))
    created_at = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)

    __table_args__ = (
        PrimaryKeyConstraint("blocker_id", "blocked_id"),
        # GET /users/me/blocks, newest first.
        Index("ix_blocks_blocker_recent", "blocker_id", "created_at"),
        # The blocks naming a user as the blocked one: closing their account
        # removes them (and the foreign key's cascade looks them up).
        Index("ix_blocks_blocked", "blocked_id", "blocker_id"),
    )


class Mute(Base):
    """muter_id mutes muted_id: their items leave muter_id's feed, unknown to them."""

    __tablename__ = "mutes"

    muter_id: Mapped[str] = mapped_column(UUID(as_uuid=False), ForeignKey("users.id", ondelete="CASCADE"))
    muted_id: Mapped[str] = mapped_column(UUID(as_uuid=False), ForeignKey("users.id", ondelete="CASCADE"))
    created_at = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)

    __table_args__ = (
        PrimaryKeyConstraint("muter_id", "muted_id"),
        Index("ix_mutes_muter_recent", "muter_id", "created_at"),
        Index("ix_mutes_muted", "muted_id"),
    )


# Numbers every change of a block or mute (contracts.RelationChanged.version),
# in the order the changes of one pair commit.
RELATION_VERSIONS = Sequence("relation_versions", schema=SCHEMA, metadata=Base.metadata)


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
