"""Auth's domain: accounts, sessions (token families) and the follow graph.

Functions take a SQLAlchemy session and the collaborators they need; they know
nothing of HTTP or AMQP. Each commits its own unit of work, with the domain
events it records in the outbox.
"""
import uuid

from sqlalchemy import func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from services.auth import exceptions
from services.auth.dependencies import hash_refresh_token
from services.auth.models import Follow, RefreshToken, User
from services.auth.schemas import private_view, public_view, summary_view
from services.shared import clock

MAX_BATCH_IDS = 1000


def _escape_like(text):
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# Accounts and sessions -------------------------------------------------------

def register(session, outbox, passwords, tokens, throttle, client_address,
             email, username, password, display_name=None):
    # Counted before anything else: each registration costs a bcrypt hash.
    throttle.reserve(client_address)
    taken = session.execute(
        select(User.email, User.username).where(or_(User.email == email, User.username == username))
    ).all()
    _raise_if_taken(taken, email, username)
    user = User(
        email=email,
        username=username,
        display_name=display_name or username,
        bio="",
        password_hash=passwords.hash(password),
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        # Lost a race with a concurrent registration of the same name.
        session.rollback()
        taken = session.execute(
            select(User.email, User.username).where(or_(User.email == email, User.username == username))
        ).all()
        _raise_if_taken(taken, email, username)
        raise
    outbox.add(session, "user_registered", {"user_id": user.id, "username": user.username})
    answer = _issue_session(session, tokens, user)
    session.commit()
    return answer


def _raise_if_taken(rows, email, username):
    if any(row.email == email for row in rows):
        raise exceptions.EmailTaken(details={"email": ["Already registered."]})
    if any(row.username == username for row in rows):
        raise exceptions.UsernameTaken(details={"username": ["Already taken."]})


def login(session, passwords, tokens, throttle, login_name, password, client_address):
    normalised = login_name.strip().lower()
    user = session.execute(
        select(User).where(or_(User.email == normalised, User.username == normalised), User.is_active)
    ).scalar_one_or_none()
    account = throttle.account_key(user.id if user else None, login_name)
    throttle.reserve(account, client_address)
    if not passwords.verify(password, user.password_hash if user else None):
        throttle.failed(account, client_address)
        raise exceptions.InvalidCredentials()
    throttle.succeeded(account, client_address)
    answer = _issue_session(session, tokens, user)
    session.commit()
    return answer


def _issue_session(session, tokens, user, family_id=None):
    raw, token_hash, expires_at = tokens.new_refresh_token()
    session.add(RefreshToken(
        token_hash=token_hash, user_id=user.id, expires_at=expires_at,
        family_id=family_id or str(uuid.uuid4()),
    ))
    session.flush()
    return {
        "user": private_view(user, *_follow_counts(session, [user.id])[user.id]),
        "access_token": tokens.access_token(user.id),
        "refresh_token": raw,
        "token_type": "Bearer",
        "expires_in": tokens.access_ttl_seconds,
    }


def refresh(session, tokens, raw_token):
    """Rotate a refresh token. Presenting a used one revokes its whole family:
    either the client or a thief holds a copy, and we cannot tell which."""
    current = session.execute(
        select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(raw_token)).with_for_update()
    ).scalar_one_or_none()
    now = clock.now()
    if current is None or current.revoked_at is not None or current.expires_at <= now \
            or tokens.refresh_token_too_old(current.created_at, now):
        session.rollback()
        raise exceptions.InvalidRefreshToken()
    if current.used_at is not None:
        _revoke_family(session, current.family_id)
        session.commit()
        raise exceptions.RefreshTokenReused()
    user = session.get(User, current.user_id)
    if user is None or not user.is_active:
        session.rollback()
        raise exceptions.InvalidRefreshToken()
    current.used_at = now
    answer = _issue_session(session, tokens, user, family_id=current.family_id)
    session.commit()
    return answer


def logout(session, raw_token):
    current = session.execute(
        select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(raw_token))
    ).scalar_one_or_none()
    if current is not None:
        _revoke_family(session, current.family_id)
    session.commit()


def _revoke_family(session, family_id):
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )


# Profiles ----------------------------------------------------------------------

def active_user(session, user_id):
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        raise exceptions.UserNotFound()
    return user


def me(session, user_id):
    user = active_user(session, user_id)
    return private_view(user, *_follow_counts(session, [user.id])[user.id])


def update_profile(session, user_id, changes, media_lookup):
    """Apply changes; an avatar must be an image the user uploaded."""
    user = active_user(session, user_id)
    avatar_id = changes.get("avatar_media_id")
    if avatar_id:
        media = media_lookup(avatar_id)
        if not media or media.get("owner_id") != user_id or not str(media.get("content_type", "")).startswith("image/"):
            raise exceptions.InvalidAvatar(details={"avatar_media_id": ["Not an image you uploaded."]})
    for field, value in changes.items():
        setattr(user, field, value)
    session.commit()
    return private_view(user, *_follow_counts(session, [user.id])[user.id])


def profile(session, viewer_id, user_id):
    user = active_user(session, user_id)
    counts = _follow_counts(session, [user.id])[user.id]
    return public_view(user, *counts, is_following=_is_following(session, viewer_id, user.id))


def search(session, viewer_id, prefix, limit, after):
    pattern = _escape_like(prefix.lower()) + "%"
    query = (
        select(User)
        .where(User.is_active, or_(User.username.like(pattern), func.lower(User.display_name).like(pattern)))
        .order_by(User.username)
        .limit(limit + 1)
    )
    if after:
        query = query.where(User.username > after[0])
    users = session.execute(query).scalars().all()
    return users, _public_views(session, viewer_id, users[:limit])


def _public_views(session, viewer_id, users):
    ids = [user.id for user in users]
    counts = _follow_counts(session, ids)
    followed = _followed_among(session, viewer_id, ids)
    return {user.id: public_view(user, *counts[user.id], is_following=user.id in followed) for user in users}


def _follow_counts(session, user_ids):
    counts = {user_id: [0, 0] for user_id in user_ids}
    if not user_ids:
        return counts
    for user_id, total in session.execute(
        select(Follow.followee_id, func.count()).where(Follow.followee_id.in_(user_ids)).group_by(Follow.followee_id)
    ):
        counts[user_id][0] = total
    for user_id, total in session.execute(
        select(Follow.follower_id, func.count()).where(Follow.follower_id.in_(user_ids)).group_by(Follow.follower_id)
    ):
        counts[user_id][1] = total
    return {user_id: tuple(pair) for user_id, pair in counts.items()}


def _is_following(session, follower_id, followee_id):
    return bool(follower_id) and session.get(Follow, (follower_id, followee_id)) is not None


def _followed_among(session, viewer_id, user_ids):
    if not viewer_id or not user_ids:
        return set()
    return set(session.execute(
        select(Follow.followee_id).where(Follow.follower_id == viewer_id, Follow.followee_id.in_(user_ids))
    ).scalars())


# Follow graph ------------------------------------------------------------------

def follow(session, outbox, follower_id, followee_id):
    if follower_id == followee_id:
        raise exceptions.CannotFollowYourself(details={"id": ["You cannot follow yourself."]})
    active_user(session, followee_id)
    created = session.execute(
        insert(Follow).values(follower_id=follower_id, followee_id=followee_id)
        .on_conflict_do_nothing().returning(Follow.follower_id)
    ).first()
    if created:
        outbox.add(session, "user_followed", {"follower_id": follower_id, "followee_id": followee_id})
    session.commit()


def unfollow(session, outbox, follower_id, followee_id):
    removed = session.execute(
        Follow.__table__.delete()
        .where(Follow.follower_id == follower_id, Follow.followee_id == followee_id)
        .returning(Follow.follower_id)
    ).first()
    if removed:
        outbox.add(session, "user_unfollowed", {"follower_id": follower_id, "followee_id": followee_id})
    session.commit()


def follow_page(session, viewer_id, user_id, direction, limit, after):
    """Followers (direction "followers") or followees ("following"), newest first."""
    active_user(session, user_id)
    if direction == "followers":
        mine, theirs = Follow.followee_id, Follow.follower_id
    else:
        mine, theirs = Follow.follower_id, Follow.followee_id
    query = (
        select(User, Follow.created_at)
        .join(Follow, theirs == User.id)
        .where(mine == user_id, User.is_active)
        .order_by(Follow.created_at.desc(), User.id.desc())
        .limit(limit + 1)
    )
    if after:
        query = query.where(tuple_(Follow.created_at, User.id) < tuple_(*after))
    rows = session.execute(query).all()
    views = _public_views(session, viewer_id, [user for user, _ in rows[:limit]])
    return rows, views


# For other services and operators ---------------------------------------------------

def users_by_ids(session, user_ids):
    ids = list(dict.fromkeys(user_ids))[:MAX_BATCH_IDS]
    if not ids:
        return []
    users = session.execute(select(User).where(User.id.in_(ids), User.is_active)).scalars()
    return [summary_view(user) for user in users]


def following_ids(session, user_id):
    return list(session.execute(select(Follow.followee_id).where(Follow.follower_id == user_id)).scalars())


def find_user(session, login_name):
    normalised = login_name.strip().lower()
    user = session.execute(
        select(User).where(or_(User.email == normalised, User.username == normalised))
    ).scalar_one_or_none()
    if user is None:
        return None
    return dict(private_view(user, *_follow_counts(session, [user.id])[user.id]), is_active=user.is_active)


def deactivate(session, outbox, user_id):
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        return False
    user.is_active = False
    session.execute(
        update(RefreshToken).where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )
    outbox.add(session, "user_deleted", {"user_id": user_id})
    session.commit()
    return True


def counts(session):
    return {
        "users": session.scalar(select(func.count()).select_from(User).where(User.is_active)),
        "deactivated_users": session.scalar(select(func.count()).select_from(User).where(~User.is_active)),
        "follows": session.scalar(select(func.count()).select_from(Follow)),
    }
