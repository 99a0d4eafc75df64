"""Videos over real HTTP, against the running system: real 60 s clips are
published as sent; a WebM of duration -1, lying headers and containers that
do not add up are refused with 422 and store nothing."""
import struct

import pytest
from sqlalchemy import text

from tests.fixtures.events.media_samples import (
    CLUSTER,
    CLUSTER_TIMECODE,
    DURATION,
    box,
    ebml,
    ebml_uint,
    movie_header,
    mp4_lasting,
    track_header,
    video_file,
    webm_info,
    webm_lasting,
    webm_of,
    webm_tracks,
)

pytestmark = pytest.mark.integration

CLIP_MP4 = video_file("clip-60s.mp4")
CLIP_WEBM = video_file("clip-60s.webm")
WEBM_DURATION_60 = DURATION + b"\x88" + struct.pack(">d", 60008.0)
FTYP = box(b"ftyp", b"mp42" + bytes(4) + b"mp42isom")


def upload(api, user, data, name):
    return api.post("/media", user=user, files={"file": (name, data, "application/octet-stream")})


def stored_media(db_engine):
    with db_engine.connect() as connection:
        return connection.scalar(text("SELECT count(*) FROM events.media"))


@pytest.mark.parametrize("name, data, content_type", [
    ("clip-60s.mp4", CLIP_MP4, "video/mp4"),
    ("clip-60s.webm", CLIP_WEBM, "video/webm"),
], ids=["mp4", "webm"])
def test_a_real_60_second_video_is_published_as_sent(api, name, data, content_type):
    ann = api.register()
    uploaded = upload(api, ann, data, name)
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["content_type"] == content_type and uploaded.json()["size"] == len(data)
    served = api.get(uploaded.json()["url"])
    assert served.status_code == 200 and served.content == data
    assert served.headers["Content-Type"] == content_type


EMPTY_CLUSTER = ebml(CLUSTER, ebml_uint(CLUSTER_TIMECODE, 0))

REFUSED = [
    # name, bytes, code, what details.file says
    ("webm: duration -1", CLIP_WEBM.replace(WEBM_DURATION_60, DURATION + b"\x88" + struct.pack(">d", -1.0)),
     "INVALID_VIDEO", "Duration of -1.0"),
    ("webm: duration NaN", CLIP_WEBM.replace(WEBM_DURATION_60, DURATION + b"\x88" + struct.pack(">d", float("nan"))),
     "INVALID_VIDEO", "Duration of nan"),
    ("webm: no duration", webm_of(webm_info(None), webm_tracks(), EMPTY_CLUSTER), "INVALID_VIDEO",
     "declares no Duration"),
    ("webm: clusters past its duration", webm_lasting(10, clusters=[0, 600_000]), "VIDEO_TOO_LONG", "600 s"),
    ("webm: truncated", CLIP_WEBM[:-10], "INVALID_VIDEO", "malformed"),
    ("webm: 1.2 million empty clusters (10 MB)",
     webm_of(webm_info(5000.0), webm_tracks(), EMPTY_CLUSTER * 1_250_000), "INVALID_VIDEO", "too many parts"),
    ("webm: 75 s", video_file("clip-75s.webm"), "VIDEO_TOO_LONG", "75 s"),
    ("mp4: 75 s, movie box last", video_file("clip-75s-moov-last.mp4"), "VIDEO_TOO_LONG", "75 s"),
    ("mp4: a decoy mvhd of 5 s in the media data",
     FTYP + box(b"mdat", movie_header(5_000))
     + box(b"moov", movie_header(600_000) + box(b"trak", track_header(600_000))),
     "VIDEO_TOO_LONG", "600 s"),
    ("mp4: a track longer than its movie", mp4_lasting(10, track_seconds=600), "VIDEO_TOO_LONG", "600 s"),
    ("mp4: unknown duration", mp4_lasting(0xFFFF_FFFF, timescale=1), "INVALID_VIDEO", "unknown duration"),
    ("mp4: no duration", mp4_lasting(0), "INVALID_VIDEO", "no duration"),
    ("mp4: truncated", CLIP_MP4[:-10], "INVALID_VIDEO", "malformed"),
    ("mp4: trailing bytes", CLIP_MP4 + b"\x00\x01", "INVALID_VIDEO", "malformed"),
    ("mp4: two movie boxes", CLIP_MP4 + box(b"moov", movie_header(900_000)), "INVALID_VIDEO", "one movie box"),
]


@pytest.mark.parametrize("name, data, code, reason", REFUSED, ids=[case[0] for case in REFUSED])
def test_a_video_that_lies_or_does_not_parse_is_refused_and_nothing_is_stored(api, db_engine, name, data, code,
                                                                               reason):
    ann = api.register()
    before = stored_media(db_engine)
    refused = upload(api, ann, data, "clip")
    assert refused.status_code == 422, refused.text
    assert refused.headers["Content-Type"] == "application/json"
    error = refused.json()["error"]
    assert error["code"] == code
    assert reason in error["details"]["file"][0]
    assert stored_media(db_engine) == before
