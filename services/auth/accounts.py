"""Auth's domain: accounts, profiles and the follow graph (blocks and mutes
are in services.auth.safety).

Each function takes the unit of work it runs in and the collaborators it needs
(passwords, tokens, throttles, a media lookup) as plain objects; it knows
nothing of HTTP, AMQP or Nameko, and never commits: its caller's unit of work
does, with the domain events recorded in it. Sessions (token families) are in
services.auth.sessions, what a user looks like to others in services.auth.profiles.
"""
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.auth import account_tokens, exceptions, outgoing, password_policy, privacy, safety, sessions
from services.auth.follows import add_follow, follows, remove_follow
from services.auth.models import Block, Follow, FollowRequest, Mute, Report, User
from services.auth.profiles import (
    STATUS_FOLLOWING,
    STATUS_REQUESTED,
    Profile,
    active_user,
    newest_first,
    profile_of,
    profiles_of,
)
from services.shared import clock, contracts
from services.shared.export import Sections
from services.shared.unit_of_work import UnitOfWork, table_of

# What an account may hold (the request schemas state these).
USERNAME_PATTERN = r"[a-z0-9_]{3,30}"
MAX_EMAIL_LENGTH = 254
MAX_DISPLAY_NAME_LENGTH = 80
MAX_BIO_LENGTH = 500
# A search is a prefix of a username or display name.
MAX_SEARCH_LENGTH = MAX_DISPLAY_NAME_LENGTH
# One batch lookup of users answers at most this many ids.
MAX_BATCH_IDS = 1000
# What a deleted account's row keeps in place of its email, username and
# password: none can be registered or typed (a username has no "~", an email
# has an "@", no bcrypt hash is "!"), so the address and the name are free
# again and nobody signs in as the tombstone.
DELETED_EMAIL = "~deleted~{id}"
DELETED_USERNAME = "~{hex}"
NO_PASSWORD = "!"

# The collaborators the domain is handed (services.auth.dependencies builds them).

class Passwords(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, password: str, password_hash: str | None) -> bool: ...


class RegistrationThrottle(Protocol):
    def reserve(self, address: str | None) -> None: ...


class AccountThrottle(Protocol):
    """Counts something an account does (asking for another verification mail)."""

    def reserve(self, user_id: str) -> None: ...


class ForgotPasswordThrottle(Protocol):
    def reserve(self, email: str, address: str | None) -> None: ...


class LoginThrottle(Protocol):
    def account_key(self, user_id: str | None, login: str) -> str: ...

    def reserve(self, account: str, address: str | None) -> None: ...

    def failed(self, account: str, address: str | None) -> None: ...

    def succeeded(self, account: str, address: str | None) -> None: ...


# The events service's description of a media item (None if there is none).
MediaLookup = Callable[[str], dict[str, Any] | None]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# Accounts and sign-in -------------------------------------------------------------

def register(uow: UnitOfWork, passwords: Passwords, tokens: sessions.Tokens, throttle: RegistrationThrottle,
             client_address: str | None, email: str, username: str, password: str,
             display_name: str | None = None) -> sessions.SignedIn:
    """Create an account and sign it in (sessions.SignedIn)."""
    # Counted before anything else: each registration costs a bcrypt hash.
    throttle.reserve(client_address)
    _raise_if_taken(uow.session, email, username)
    user = User(
        email=email,
        username=username,
        display_name=display_name or username,
        bio="",
        password_hash=passwords.hash(password),
    )
    try:
        # A savepoint: losing the race below undoes the insert alone, and the
        # transaction stays usable to find out which name was taken.
        with uow.session.begin_nested():
            uow.session.add(user)
    except IntegrityError:
        # Lost a race with a concurrent registration of the same name.
        _raise_if_taken(uow.session, email, username)
        raise
    uow.record(contracts.UserRegistered(user_id=user.id, username=user.username))
    outgoing.queue(uow, outgoing.VERIFY_EMAIL, user.email, user.id)
    return sessions.sign_in(uow, tokens, user)


def _raise_if_taken(session: Session, email: str, username: str) -> None:
    taken = session.execute(
        select(User.email, User.username).where(or_(User.email == email, User.username == username))
    ).all()
    if any(row.email == email for row in taken):
        raise exceptions.EmailTaken(details={"email": ["Already registered."]})
    if any(row.username == username for row in taken):
        raise exceptions.UsernameTaken(details={"username": ["Already taken."]})


def login(uow: UnitOfWork, passwords: Passwords, tokens: sessions.Tokens, throttle: LoginThrottle,
          login_name: str, password: str, client_address: str | None) -> sessions.SignedIn:
    """Sign in with an email or username and a password (sessions.SignedIn)."""
    normalised = login_name.strip().lower()
    user = uow.session.execute(
        select(User).where(or_(User.email == normalised, User.username == normalised), User.is_active)
    ).scalar_one_or_none()
    account = throttle.account_key(user.id if user else None, login_name)
    throttle.reserve(account, client_address)
    # An unknown login costs a password check too: verify first (it is False for None).
    if not passwords.verify(password, user.password_hash if user else None) or user is None:
        throttle.failed(account, client_address)
        raise exceptions.InvalidCredentials()
    throttle.succeeded(account, client_address)
    return sessions.sign_in(uow, tokens, user)


def _check_password(passwords: Passwords, throttle: LoginThrottle, user: User, password: str,
                    client_address: str | None) -> None:
    """InvalidCredentials unless password is the user's; counted as a login
    attempt on the account, so it cannot be guessed faster than a login."""
    account = throttle.account_key(user.id, user.username)
    throttle.reserve(account, client_address)
    if not passwords.verify(password, user.password_hash):
        throttle.failed(account, client_address)
        raise exceptions.InvalidCredentials(message="Wrong password.")
    throttle.succeeded(account, client_address)


def change_password(uow: UnitOfWork, passwords: Passwords, throttle: LoginThrottle, user_id: str,
                    session_id: str | None, current_password: str, new_password: str,
                    client_address: str | None) -> None:
    """Set a new password (new_password meets the policy already) and sign out
    every other session of the account; the caller's (session_id) stays."""
    user = active_user(uow.session, user_id)
    _check_password(passwords, throttle, user, current_password, client_address)
    if password_policy.names_the_user(new_password, user.username, user.email):
        raise exceptions.UnacceptablePassword(details={"new_password": [password_policy.PERSONAL]})
    user.password_hash = passwords.hash(new_password)
    sessions.revoke_other_sessions(uow, user_id, session_id)


def delete_account(uow: UnitOfWork, passwords: Passwords, throttle: LoginThrottle, user_id: str,
                   password: str, client_address: str | None) -> None:
    """Delete the account, the owner confirming with its password.

    The row stays as a tombstone with the id (messages and other services'
    records name it), scrubbed of everything personal; its follows go; every
    service forgets the rest on `user_deleted`, and every token is refused."""
    user = active_user(uow.session, user_id)
    _check_password(passwords, throttle, user, password, client_address)
    _close(uow, user)
    user.email = DELETED_EMAIL.format(id=user.id)
    user.username = DELETED_USERNAME.format(hex=user.id.replace("-", "")[:29])
    user.password_hash = NO_PASSWORD
    user.display_name = ""
    user.bio = ""
    user.avatar_media_id = None
    user.deleted_at = clock.now()
    uow.session.execute(table_of(Follow).delete().where(or_(Follow.follower_id == user_id,
                                                           Follow.followee_id == user_id)))
    uow.session.execute(table_of(FollowRequest).delete().where(or_(FollowRequest.requester_id == user_id,
                                                                  FollowRequest.owner_id == user_id)))


# Email verification and password reset --------------------------------------------

def verify_email(uow: UnitOfWork, raw_token: str) -> None:
    """Spend a verification token: the address it was mailed to is verified."""
    user = account_tokens.redeem(uow, raw_token, account_tokens.VERIFY_EMAIL)
    user.email_verified = True


def resend_verification(uow: UnitOfWork, throttle: AccountThrottle, user_id: str) -> None:
    """Mail another verification link (none once the address is verified)."""
    user = active_user(uow.session, user_id)
    throttle.reserve(user.id)
    if not user.email_verified:
        outgoing.queue(uow, outgoing.VERIFY_EMAIL, user.email, user.id)


def change_email(uow: UnitOfWork, passwords: Passwords, throttle: LoginThrottle, user_id: str, email: str,
                 password: str, client_address: str | None) -> Profile:
    """Move the account to a new address, with the current password: it is
    unverified until the link mailed there is opened, and the old address is
    told. The password check counts as a login attempt on the account."""
    user = active_user(uow.session, user_id)
    _check_password(passwords, throttle, user, password, client_address)
    if email == user.email:
        return profile_of(uow.session, user)
    _raise_if_email_taken(uow.session, email)
    old_email = user.email
    try:
        with uow.session.begin_nested():
            user.email = email
            user.email_verified = False
    except IntegrityError:
        # Taken by a registration or change that committed meanwhile.
        _raise_if_email_taken(uow.session, email)
        raise
    outgoing.queue(uow, outgoing.VERIFY_EMAIL, email, user.id)
    outgoing.queue(uow, outgoing.EMAIL_CHANGED, old_email, user.id, {"new_email": email})
    return profile_of(uow.session, user)


def _raise_if_email_taken(session: Session, email: str) -> None:
    if session.execute(select(User.id).where(User.email == email)).first() is not None:
        raise exceptions.EmailTaken(details={"email": ["Already registered."]})


def forgot_password(uow: UnitOfWork, throttle: ForgotPasswordThrottle, email: str,
                    client_address: str | None) -> None:
    """Mail a reset link to email if an account has it. The request does the
    same work for any address (a count in Redis, one row, one event): whose
    address it is, the mail worker finds out after the answer."""
    throttle.reserve(email, client_address)
    outgoing.queue(uow, outgoing.PASSWORD_RESET, email)


def reset_password(uow: UnitOfWork, passwords: Passwords, raw_token: str, new_password: str) -> None:
    """Spend a reset token: the password is new and every session of the
    account is revoked. Opening the link proved the address, so it counts as
    verified too."""
    user = account_tokens.redeem(uow, raw_token, account_tokens.PASSWORD_RESET)
    if password_policy.names_the_user(new_password, user.username, user.email):
        # Raised before anything changed: the token stays good for another try.
        raise exceptions.UnacceptablePassword(details={"password": [password_policy.PERSONAL]})
    user.password_hash = passwords.hash(new_password)
    user.email_verified = True
    account_tokens.spend_all(uow, user.id, account_tokens.PASSWORD_RESET)
    sessions.revoke_every_session(uow, user.id)


# Profiles ------------------------------------------------------------------------

def me(uow: UnitOfWork, user_id: str) -> Profile:
    return profile_of(uow.session, active_user(uow.session, user_id))


def update_profile(uow: UnitOfWork, user_id: str, changes: dict[str, Any], media_lookup: MediaLookup) -> Profile:
    """Apply changes ({column: value} of display_name, bio, avatar_media_id,
    is_private, group_invites); an avatar must be an image the user uploaded
    (media_lookup(id) says, or None). An account turning public approves
    every pending follow request: nobody is left waiting on a door that is open."""
    user = active_user(uow.session, user_id)
    avatar_id = changes.get("avatar_media_id")
    if avatar_id and not is_own_image(media_lookup(avatar_id), user_id):
        raise exceptions.InvalidAvatar(details={"avatar_media_id": ["Not an image you uploaded."]})
    turning_public = user.is_private and changes.get("is_private") is False
    for field, value in changes.items():
        setattr(user, field, value)
    # The update locks the row before the pending requests are read: a
    # follow request made meanwhile (privacy.is_private_now) is among them.
    uow.session.flush()
    if turning_public:
        privacy.approve_all(uow, user_id)
    return profile_of(uow.session, user)


def is_own_image(media: dict[str, Any] | None, user_id: str) -> bool:
    """Whether media (the events service's description of it, or None) is an
    image user_id uploaded: what an avatar must be."""
    if not media:
        return False
    return media.get("owner_id") == user_id and str(media.get("content_type", "")).startswith("image/")


def profile(uow: UnitOfWork, viewer_id: str | None, user_id: str) -> Profile:
    return profile_of(uow.session, safety.visible_user(uow.session, viewer_id, user_id), viewer_id)


def search(uow: UnitOfWork, viewer_id: str | None, prefix: str, limit: int,
           after_username: str | None = None) -> list[Profile]:
    """Up to limit + 1 profiles whose username or display name starts with
    prefix (case-insensitive), by username, after after_username."""
    pattern = _escape_like(prefix.lower()) + "%"
    query = (
        select(User)
        .where(User.is_active, or_(User.username.like(pattern), func.lower(User.display_name).like(pattern)))
        .order_by(User.username)
        .limit(limit + 1)
    )
    if after_username is not None:
        query = query.where(User.username > after_username)
    if viewer_id:
        query = query.where(~safety.either_blocks(viewer_id, User.id))
    return profiles_of(uow.session, uow.session.execute(query).scalars().all(), viewer_id)


# Follow graph ---------------------------------------------------------------------

def follow(uow: UnitOfWork, follower_id: str, followee_id: str) -> str:
    """Follow a user; returns the follow status it led to: STATUS_FOLLOWING,
    or STATUS_REQUESTED for a private account, which approves the request
    first (services.auth.privacy). Following again changes nothing and
    records nothing."""
    if follower_id == followee_id:
        raise exceptions.CannotFollowYourself(details={"id": ["You cannot follow yourself."]})
    active_user(uow.session, followee_id)
    safety.refuse_if_blocked(uow.session, follower_id, followee_id)
    if follows(uow, follower_id, followee_id):
        return STATUS_FOLLOWING
    if privacy.is_private_now(uow, followee_id):
        privacy.request_follow(uow, follower_id, followee_id)
        return STATUS_REQUESTED
    add_follow(uow, follower_id, followee_id)
    return STATUS_FOLLOWING


def unfollow(uow: UnitOfWork, follower_id: str, followee_id: str) -> None:
    """Stop following, or take back a pending request; idempotent."""
    remove_follow(uow, follower_id, followee_id)
    privacy.cancel_request(uow, follower_id, followee_id)


FOLLOWERS, FOLLOWING = "followers", "following"


def follow_page(uow: UnitOfWork, viewer_id: str | None, user_id: str, direction: str, limit: int,
                after: tuple[datetime, str] | None = None) -> list[tuple[Profile, datetime]]:
    """Up to limit + 1 (profile, followed_at) of user_id's followers (FOLLOWERS)
    or followees (FOLLOWING), newest first, after the (followed_at, user id)
    given; neither a user the viewer blocks nor one who blocks the viewer is listed."""
    safety.visible_user(uow.session, viewer_id, user_id)
    if direction == FOLLOWERS:
        mine, theirs = Follow.followee_id, Follow.follower_id
    else:
        mine, theirs = Follow.follower_id, Follow.followee_id
    query = select(User, Follow.created_at).join(Follow, theirs == User.id).where(mine == user_id, User.is_active)
    if viewer_id:
        query = query.where(~safety.either_blocks(viewer_id, User.id))
    return newest_first(uow.session, viewer_id, query, Follow.created_at, limit, after)


# For other services and operators ---------------------------------------------------

def users_by_ids(uow: UnitOfWork, user_ids: Iterable[str]) -> list[User]:
    """The active users among user_ids (the first MAX_BATCH_IDS of them)."""
    ids = list(dict.fromkeys(user_ids))[:MAX_BATCH_IDS]
    if not ids:
        return []
    return list(uow.session.execute(select(User).where(User.id.in_(ids), User.is_active)).scalars())


def following_ids(uow: UnitOfWork, user_id: str) -> list[str]:
    return list(uow.session.execute(select(Follow.followee_id).where(Follow.follower_id == user_id)).scalars())


def find_user(uow: UnitOfWork, login_name: str) -> Profile | None:
    """The profile of the account (active or not) with this email or username, or None."""
    normalised = login_name.strip().lower()
    user = uow.session.execute(
        select(User).where(or_(User.email == normalised, User.username == normalised))
    ).scalar_one_or_none()
    return profile_of(uow.session, user) if user is not None else None


def deactivate(uow: UnitOfWork, user_id: str) -> bool:
    """Sign the user out everywhere and hide them; False if they were not active."""
    user = uow.session.get(User, user_id)
    if user is None or not user.is_active:
        return False
    _close(uow, user)
    return True


def _close(uow: UnitOfWork, user: User) -> None:
    """Hide the account, end every session at once (access tokens too), and
    tell the other services (`user_deleted`)."""
    user.is_active = False
    sessions.revoke_every_session(uow, user.id, account_closed=True)
    safety.forget_user(uow.session, user.id)
    uow.record(contracts.UserDeleted(user_id=user.id))


# The data export ------------------------------------------------------------------

# The sections of GET /auth/me/export, in the document's order, with the
# service that holds each: auth's own here (export_user), the others' from
# their `export_user` RPC. A new kind of data an account owns (blocks, mutes)
# gets its section here and in its service's export.
EXPORT_SECTIONS: tuple[tuple[str, str], ...] = (
    ("following", "auth"),
    ("followers", "auth"),
    ("follow_requests_sent", "auth"),
    ("blocks", "auth"),
    ("mutes", "auth"),
    ("reports", "auth"),
    ("events_organized", "events"),
    ("events_joined", "events"),
    ("posts", "events"),
    ("media", "events"),
    ("conversations", "messages"),
    ("messages_sent", "messages"),
    ("notifications", "messages"),
)


def export_user(uow: UnitOfWork, user_id: str) -> tuple[Profile, dict[str, Any]]:
    """The account's profile (private view) and auth's sections of its export
    ({"sections": {following, followers}, "truncated": [...]}, oldest first)."""
    session = uow.session
    profile = me(uow, user_id)
    sections = Sections()
    for name, mine, theirs in (("following", Follow.follower_id, Follow.followee_id),
                               ("followers", Follow.followee_id, Follow.follower_id)):
        sections.add(
            name, session,
            select(theirs, User.username, Follow.created_at).join(User, User.id == theirs)
            .where(mine == user_id).order_by(Follow.created_at, theirs),
            lambda row: {"user_id": row[0], "username": row[1], "followed_at": clock.iso(row[2])},
            scalars=False)
    sections.add(
        "follow_requests_sent", session,
        select(FollowRequest.owner_id, User.username, FollowRequest.created_at)
        .join(User, User.id == FollowRequest.owner_id)
        .where(FollowRequest.requester_id == user_id).order_by(FollowRequest.created_at, FollowRequest.owner_id),
        lambda row: {"user_id": row[0], "username": row[1], "requested_at": clock.iso(row[2])}, scalars=False)
    # Whom the account blocks and mutes; never who blocks or mutes it.
    for name, table, mine, theirs in (("blocks", Block, Block.blocker_id, Block.blocked_id),
                                      ("mutes", Mute, Mute.muter_id, Mute.muted_id)):
        sections.add(
            name, session,
            select(theirs, User.username, table.created_at).join(User, User.id == theirs)
            .where(mine == user_id).order_by(table.created_at, theirs),
            lambda row: {"user_id": row[0], "username": row[1], "since": clock.iso(row[2])}, scalars=False)
    # The account's own reports; the snapshot of someone else's content stays out.
    sections.add(
        "reports", session,
        select(Report).where(Report.reporter_id == user_id).order_by(Report.created_at, Report.id),
        lambda report: {"id": report.id, "target_type": report.target_type, "target_id": report.target_id,
                        "reason": report.reason, "details": report.details, "status": report.status,
                        "created_at": clock.iso(report.created_at)})
    return profile, sections.document()


def counts(uow: UnitOfWork) -> dict[str, int | None]:
    session = uow.session
    return {
        "users": session.scalar(select(func.count()).select_from(User).where(User.is_active)),
        "deactivated_users": session.scalar(
            select(func.count()).select_from(User).where(~User.is_active, User.deleted_at.is_(None))),
        "deleted_users": session.scalar(select(func.count()).select_from(User).where(User.deleted_at.is_not(None))),
        "follows": session.scalar(select(func.count()).select_from(Follow)),
        "blocks": session.scalar(select(func.count()).select_from(Block)),
        "mutes": session.scalar(select(func.count()).select_from(Mute)),
    }
