"""Media: uploads whose type is decided from their bytes, kept in a storage.

Videos must be short: their duration is read by a container parser
(services.events.videos), and one that is malformed or does not say how long
it lasts is refused. Pictures are published without their metadata
(services.events.images).
"""
from collections.abc import Collection
from typing import Protocol

import filetype
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.events import exceptions, images, videos
from services.events.models import Media
from services.shared.errors import InvalidInput, UnsupportedType
from services.shared.unit_of_work import UnitOfWork

# What uploads may be, as their bytes say.
MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp", "video/mp4", "video/webm")
ALLOWED_TYPES = frozenset(MEDIA_TYPES)
MAX_VIDEO_SECONDS = 60


class Storage(Protocol):
    """Where media bytes live (services.events.storage)."""

    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def get(self, key: str) -> tuple[bytes | None, str | None]:
        """(bytes, None) when served from here, (None, url) when the client
        fetches them elsewhere, (None, None) when missing."""
        ...

    def delete(self, key: str) -> None: ...


def detect_type(data: bytes) -> str:
    """The MIME type the bytes really are, if it is one we accept."""
    kind = filetype.guess(data[:8192])
    mime: str | None = kind.mime if kind else None
    if mime not in ALLOWED_TYPES:
        raise UnsupportedType(
            "Upload a JPEG, PNG, GIF or WebP image, or an MP4 or WebM video.",
            details={"detected": mime, "allowed": sorted(ALLOWED_TYPES)},
        )
    return mime


def check_video_length(data: bytes, content_type: str) -> None:
    """Refuse a video whose container is malformed, whose duration cannot be
    read, or that lasts over MAX_VIDEO_SECONDS (as rounded to the second)."""
    if not content_type.startswith("video/"):
        return
    try:
        seconds = videos.seconds(data, content_type)
    except videos.UnreadableVideo as exc:
        raise InvalidInput("The video could not be read.", code="INVALID_VIDEO",
                           details={"file": [str(exc)]}) from None
    # Encoders pad the last frame: a 60 s recording reads 60.008 s in WebM.
    if round(seconds) > MAX_VIDEO_SECONDS:
        raise InvalidInput(
            f"Videos last at most {MAX_VIDEO_SECONDS} seconds.", code="VIDEO_TOO_LONG",
            details={"file": [f"{seconds:.0f} s; at most {MAX_VIDEO_SECONDS} s."]},
        )


def prepare(data: bytes) -> tuple[str, bytes]:
    """(content_type, bytes to publish) of an upload, or the reason it is refused.
    CPU-bound for pictures (they are decoded and encoded again): callers on an
    event loop run it on a thread."""
    content_type = detect_type(data)
    check_video_length(data, content_type)
    return content_type, images.without_metadata(data, content_type)


def store(uow: UnitOfWork, storage: Storage, owner_id: str, content_type: str, data: bytes) -> Media:
    """Keep an upload: its row, in the caller's transaction, and its bytes.
    The bytes are written before the caller commits the row: a crash leaves
    an orphan file, never a row pointing at nothing."""
    media = Media(owner_id=owner_id, content_type=content_type, size=len(data))
    uow.session.add(media)
    uow.session.flush()
    storage.put(media.id, data, content_type)
    return media


def find(uow: UnitOfWork, media_id: str) -> Media | None:
    return uow.session.get(Media, media_id)


def content(uow: UnitOfWork, storage: Storage, media_id: str) -> tuple[Media, bytes | None, str | None]:
    """(media, bytes, redirect_url) of an upload: MediaNotFound if its row or its bytes are missing."""
    media = find(uow, media_id)
    if media is None:
        raise exceptions.MediaNotFound()
    data, url = storage.get(media.id)
    if data is None and url is None:
        raise exceptions.MediaNotFound()
    return media, data, url


def owned_ids(session: Session, owner_id: str, media_ids: Collection[str]) -> set[str]:
    if not media_ids:
        return set()
    return set(session.execute(
        select(Media.id).where(Media.id.in_(media_ids), Media.owner_id == owner_id)
    ).scalars())


def delete_all_of(session: Session, owner_id: str) -> list[str]:
    """Forget every upload of a user; the rows go in the caller's transaction,
    the bytes after it commits."""
    return list(session.execute(delete(Media).where(Media.owner_id == owner_id).returning(Media.id)).scalars())
