"""Media: uploads whose type is decided from their bytes, kept in a storage.

Videos must be short: their duration is read from the container header (MP4
`mvhd`, WebM `Duration`), and one that cannot be read is refused. Pictures
are published without their metadata (services.events.images).
"""
import struct

import filetype
from sqlalchemy import delete, select

from services.events import exceptions, images
from services.events.models import Media
from services.events.schemas import MEDIA_TYPES, media_view
from services.shared.errors import InvalidInput, UnsupportedType

ALLOWED_TYPES = frozenset(MEDIA_TYPES)
MAX_VIDEO_SECONDS = 60
_WEBM_DEFAULT_TIMECODE_SCALE = 1_000_000  # nanoseconds per tick


def detect_type(data):
    """The MIME type the bytes really are, if it is one we accept."""
    kind = filetype.guess(data[:8192])
    mime = kind.mime if kind else None
    if mime not in ALLOWED_TYPES:
        raise UnsupportedType(
            "Upload a JPEG, PNG, GIF or WebP image, or an MP4 or WebM video.",
            details={"detected": mime, "allowed": sorted(ALLOWED_TYPES)},
        )
    return mime


def mp4_seconds(data):
    """Duration from the movie header (`mvhd`) of an MP4, or None."""
    at = data.find(b"mvhd")
    if at < 4:
        return None
    body = data[at + 4:]
    try:
        if body[0] == 1:
            timescale, duration = struct.unpack(">IQ", body[20:32])
        else:
            timescale, duration = struct.unpack(">II", body[12:20])
    except (struct.error, IndexError):
        return None
    return duration / timescale if timescale else None


def webm_seconds(data):
    """Duration from the Segment Info of a WebM (Matroska), or None."""
    at = data.find(b"\x44\x89")  # Duration: a float of 4 or 8 bytes, in timecode ticks
    if at < 0 or at + 3 > len(data) or data[at + 2] not in (0x84, 0x88):
        return None
    size = data[at + 2] & 0x0F
    raw = data[at + 3:at + 3 + size]
    if len(raw) != size:
        return None
    ticks = struct.unpack(">f" if size == 4 else ">d", raw)[0]
    scale = _WEBM_DEFAULT_TIMECODE_SCALE
    scale_at = data.find(b"\x2a\xd7\xb1")  # TimecodeScale, an unsigned integer
    if 0 <= scale_at and scale_at + 4 <= len(data) and data[scale_at + 3] & 0x80:
        length = data[scale_at + 3] & 0x7F
        if 1 <= length <= 8 and scale_at + 4 + length <= len(data):
            scale = int.from_bytes(data[scale_at + 4:scale_at + 4 + length], "big") or scale
    return ticks * scale / 1e9


def check_video_length(data, content_type):
    if not content_type.startswith("video/"):
        return
    seconds = mp4_seconds(data) if content_type == "video/mp4" else webm_seconds(data)
    if seconds is None or seconds != seconds:  # unreadable, or NaN
        raise InvalidInput("The video's duration could not be read.", code="INVALID_VIDEO",
                           details={"file": ["Unreadable duration."]})
    if seconds > MAX_VIDEO_SECONDS:
        raise InvalidInput(
            f"Videos last at most {MAX_VIDEO_SECONDS} seconds.", code="VIDEO_TOO_LONG",
            details={"file": [f"{seconds:.0f} s; at most {MAX_VIDEO_SECONDS} s."]},
        )


def prepare(data):
    """(content_type, bytes to publish) of an upload, or the reason it is refused.
    CPU-bound for pictures (they are decoded and encoded again): callers on an
    event loop run it on a thread."""
    content_type = detect_type(data)
    check_video_length(data, content_type)
    return content_type, images.without_metadata(data, content_type)


def store(session, storage, owner_id, content_type, data):
    media = Media(owner_id=owner_id, content_type=content_type, size=len(data))
    session.add(media)
    session.flush()
    # The bytes are stored before the row commits: a crash leaves an orphan
    # file, never a row pointing at nothing.
    storage.put(media.id, data, content_type)
    session.commit()
    return media_view(media)


def find(session, media_id):
    media = session.get(Media, media_id)
    session.commit()
    return media


def content(session, storage, media_id):
    """(media, bytes, redirect_url) for GET /media/{id}."""
    media = find(session, media_id)
    if media is None:
        raise exceptions.MediaNotFound()
    data, url = storage.get(media.id)
    if data is None and url is None:
        raise exceptions.MediaNotFound()
    return media, data, url


def owned_ids(session, owner_id, media_ids):
    if not media_ids:
        return set()
    return set(session.execute(
        select(Media.id).where(Media.id.in_(media_ids), Media.owner_id == owner_id)
    ).scalars())


def delete_all_of(session, owner_id):
    """Forget every upload of a user; the rows go in the caller's transaction,
    the bytes after it commits."""
    return list(session.execute(delete(Media).where(Media.owner_id == owner_id).returning(Media.id)).scalars())
