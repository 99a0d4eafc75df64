"""Video durations as a container parser reads them: real clips made by ffmpeg,
and containers built byte by byte for what a real file should never say."""
import math
import struct
import time

import pytest

from services.events import media, videos
from services.shared.errors import InvalidInput
from tests.fixtures.events.media_samples import (
    CLUSTER,
    CLUSTER_TIMECODE,
    DOC_TYPE,
    DURATION,
    EBML_HEADER,
    INFO,
    SEGMENT,
    VOID,
    box,
    ebml,
    ebml_uint,
    movie_header,
    mp4_lasting,
    track_header,
    video_file,
    webm_cluster,
    webm_header,
    webm_info,
    webm_lasting,
    webm_of,
    webm_tracks,
)

FTYP = box(b"ftyp", b"mp42" + bytes(4) + b"mp42isom")
MDAT = box(b"mdat", bytes(16))


def mp4_of(*boxes):
    return b"".join(boxes)


def moov(*children):
    return box(b"moov", b"".join(children))


def trak(*children):
    return box(b"trak", b"".join(children))


def refusal(data):
    """The code POST /media would answer with, or None if the video is accepted."""
    try:
        media.check_video_length(data, media.detect_type(data))
    except InvalidInput as error:
        return error.code, error.details["file"][0]
    return None


@pytest.mark.parametrize("name, seconds", [
    ("clip-60s.mp4", 60.0), ("clip-60s.webm", 60.008),
    ("clip-75s-moov-last.mp4", 75.0), ("clip-75s.webm", 75.0),
])
def test_real_clips_are_measured_as_ffprobe_measures_them(name, seconds):
    data = video_file(name)
    assert videos.seconds(data, media.detect_type(data)) == pytest.approx(seconds)


@pytest.mark.parametrize("name", ["clip-60s.mp4", "clip-60s.webm"])
def test_a_real_60_second_clip_is_accepted(name):
    assert refusal(video_file(name)) is None


@pytest.mark.parametrize("name", ["clip-75s-moov-last.mp4", "clip-75s.webm"])
def test_a_real_75_second_clip_is_too_long_wherever_its_movie_box_is(name):
    assert refusal(video_file(name)) == ("VIDEO_TOO_LONG", "75 s; at most 60 s.")


ACCEPTED = [
    ("mp4: 20 s", mp4_lasting(20)),
    ("mp4: 64-bit headers", mp4_lasting(30, version=1)),
    ("mp4: movie box after the media", mp4_lasting(12, moov_last=True)),
    ("mp4: 60.4 s (a frame of padding)", mp4_lasting(60.4)),
    ("mp4: 90 kHz timescale", mp4_lasting(59, timescale=90_000)),
    ("webm: 45 s", webm_lasting(45)),
    ("webm: 4-byte float Duration", webm_of(webm_info(9000.0, float_format=">f"), webm_tracks(), webm_cluster(0))),
    ("webm: no TimecodeScale (1 ms by default)", webm_of(webm_info(9000.0, scale=None), webm_tracks())),
    ("webm: 1 s ticks", webm_of(webm_info(59.0, scale=1_000_000_000), webm_tracks(), webm_cluster(58))),
    ("webm: 60.008 s (Opus padding)", webm_lasting(60.008)),
]


@pytest.mark.parametrize("name, data", ACCEPTED, ids=[case[0] for case in ACCEPTED])
def test_well_formed_short_videos_are_accepted(name, data):
    assert refusal(data) is None


# Movie box claims 5 s; a decoy `mvhd` inside the media data came first in the
# bytes, which is all the old check read.
DECOY_MVHD = box(b"mdat", movie_header(5_000))
# A Void element holding a decoy Duration of 5 s, before the real Info.
DECOY_DURATION = ebml(VOID, DURATION + b"\x88" + struct.pack(">d", 5000.0))

TOO_LONG = [
    ("mp4: 61 s", mp4_lasting(61)),
    ("mp4: 10 minutes", mp4_lasting(600)),
    ("mp4: 64-bit, 2 hours", mp4_lasting(7200, version=1)),
    ("mp4: the track lasts longer than the movie header says", mp4_lasting(10, track_seconds=600)),
    ("mp4: a decoy mvhd in the media data", mp4_of(FTYP, DECOY_MVHD, moov(movie_header(600_000),
                                                                             trak(track_header(600_000))))),
    ("webm: 61 s", webm_lasting(61)),
    ("webm: an hour", webm_lasting(3600, clusters=[0])),
    ("webm: 1 s ticks, 61 of them", webm_of(webm_info(61.0, scale=1_000_000_000), webm_tracks())),
    ("webm: clusters past what Duration says", webm_lasting(10, clusters=[0, 5000, 600_000])),
    ("webm: a decoy Duration before Info", webm_of(DECOY_DURATION, webm_info(600_000.0), webm_tracks())),
]


@pytest.mark.parametrize("name, data", TOO_LONG, ids=[case[0] for case in TOO_LONG])
def test_videos_over_60_seconds_are_refused(name, data):
    code, _ = refusal(data)
    assert code == "VIDEO_TOO_LONG"


def webm_duration(value):
    return webm_of(webm_info(value), webm_tracks(), webm_cluster(0))


CLIP = video_file("clip-60s.mp4")
WEBM_CLIP = video_file("clip-60s.webm")

UNREADABLE = [
    # Durations that are no length
    ("webm: Duration -1", webm_duration(-1.0), "Duration of -1.0"),
    ("webm: Duration -1 in a real clip's place", WEBM_CLIP.replace(
        DURATION + b"\x88" + struct.pack(">d", 60008.0), DURATION + b"\x88" + struct.pack(">d", -1.0)),
     "Duration of -1.0"),
    ("webm: Duration NaN", webm_duration(math.nan), "Duration of nan"),
    ("webm: Duration infinite", webm_duration(math.inf), "Duration of inf"),
    ("webm: Duration 0", webm_duration(0.0), "Duration of 0.0"),
    ("webm: no Duration (a live recording)", webm_of(webm_info(None), webm_tracks(), webm_cluster(0)),
     "declares no Duration"),
    ("webm: Duration twice", webm_of(ebml(INFO, ebml(DURATION, struct.pack(">d", 5.0)) * 2), webm_tracks()),
     "Duration twice"),
    ("webm: 3-byte Duration", webm_of(ebml(INFO, ebml(DURATION, b"\x00\x00\x01")), webm_tracks()),
     "4- or 8-byte float"),
    ("webm: TimecodeScale 0", webm_of(webm_info(5000.0, scale=0), webm_tracks()), "TimecodeScale is zero"),
    ("webm: absurd (10^300 s)", webm_duration(1e300), "implausible"),
    ("mp4: no duration", mp4_lasting(0), "no duration"),
    ("mp4: unknown duration (all ones)", mp4_of(FTYP, moov(movie_header(0xFFFF_FFFF), trak(track_header(1))), MDAT),
     "unknown duration"),
    ("mp4: unknown track duration", mp4_of(FTYP, moov(movie_header(5), trak(track_header(0xFFFF_FFFF))), MDAT),
     "unknown duration"),
    ("mp4: timescale 0", mp4_lasting(5, timescale=0), "timescale is zero"),
    ("mp4: absurd (2^62 s)", mp4_lasting(2**62, version=1, timescale=1), "implausible"),
    # Containers that do not add up
    ("mp4: truncated", CLIP[:-1], "malformed"),
    ("mp4: cut in its movie box", CLIP[:2000], "malformed"),
    ("mp4: trailing bytes", CLIP + b"\x00\x01", "malformed"),
    ("mp4: a box past the end", mp4_of(FTYP, moov(movie_header(5_000), trak(track_header(5_000))),
                                       struct.pack(">I", 1 << 20) + b"mdat" + bytes(16)), "malformed"),
    ("mp4: a box smaller than its header", mp4_lasting(5) + struct.pack(">I", 4) + b"free", "malformed"),
    ("mp4: no movie box", mp4_of(FTYP, MDAT), "one movie box"),
    ("mp4: two movie boxes", mp4_of(FTYP, moov(movie_header(5), trak(track_header(5))),
                                    moov(movie_header(900_000), trak(track_header(900_000))), MDAT), "one movie box"),
    ("mp4: two movie headers", mp4_of(FTYP, moov(movie_header(5), movie_header(900_000), trak(track_header(5))), MDAT),
     "one movie header"),
    ("mp4: no movie header", mp4_of(FTYP, moov(trak(track_header(5))), MDAT), "one movie header"),
    ("mp4: no track", mp4_of(FTYP, moov(movie_header(5_000)), MDAT), "no tracks"),
    ("mp4: a track without its header", mp4_of(FTYP, moov(movie_header(5_000), trak(box(b"free", b""))), MDAT),
     "track header"),
    ("mp4: no media data", mp4_of(FTYP, moov(movie_header(5_000), trak(track_header(5_000)))), "no media data"),
    ("mp4: fragmented", mp4_lasting(5) + box(b"moof", b"") + MDAT, "Fragmented"),
    ("webm: truncated", WEBM_CLIP[:-1], "malformed"),
    ("webm: trailing bytes", WEBM_CLIP + b"\x00\x01", "malformed"),
    ("webm: two Segments", webm_lasting(5) + ebml(SEGMENT, webm_info(600_000.0) + webm_tracks()), "one Segment"),
    ("webm: no Segment", webm_header(), "one Segment"),
    ("webm: no Info", webm_of(webm_tracks(), webm_cluster(0)), "one Segment Info"),
    ("webm: two Infos", webm_of(webm_info(5.0), webm_info(900_000.0), webm_tracks()), "one Segment Info"),
    ("webm: no Tracks", webm_of(webm_info(5000.0), webm_cluster(0)), "no tracks"),
    ("webm: a Cluster without Timecode", webm_of(webm_info(5000.0), webm_tracks(), ebml(CLUSTER, ebml(VOID, b""))),
     "no Timecode"),
    ("webm: an element past its Segment's end", webm_header() + ebml(SEGMENT, webm_info(5000.0))[:-3]
     + b"\x2a\xd7\xb1\x88" + bytes(3), "malformed"),
    ("webm: a header too large to be one", ebml(EBML_HEADER, ebml(VOID, bytes(2000)) + ebml(DOC_TYPE, b"webm"))
     + ebml(SEGMENT, webm_info(5000.0)), "malformed"),
]


@pytest.mark.parametrize("name, data, reason", UNREADABLE, ids=[case[0] for case in UNREADABLE])
def test_malformed_containers_and_durations_that_are_no_length_are_refused(name, data, reason):
    code, detail = refusal(data)
    assert code == "INVALID_VIDEO"
    assert reason in detail


def test_matroska_that_is_not_webm_is_refused():
    data = webm_of(webm_info(5000.0), webm_tracks(), header=webm_header(doc_type=b"matroska"))
    with pytest.raises(videos.UnreadableVideo, match="not WebM"):
        videos.seconds(data, "video/webm")


def test_every_corrupted_byte_of_a_real_clip_is_an_answer_never_a_crash():
    """Every fifth of the first 3,000 bytes (the headers and the start of the
    media) set to 0x00 and to 0xFF: always seconds or UnreadableVideo."""
    for data, content_type in ((CLIP, "video/mp4"), (WEBM_CLIP, "video/webm")):
        for position in range(0, 3000, 5):
            for value in (0x00, 0xFF):
                corrupted = data[:position] + bytes([value]) + data[position + 1:]
                try:
                    videos.seconds(corrupted, content_type)
                except videos.UnreadableVideo:
                    pass


EMPTY_CLUSTER = ebml(CLUSTER, ebml_uint(CLUSTER_TIMECODE, 0))


HUGE = [
    # 10 MiB of empty clusters: walking them all took 41 s of CPU.
    ("webm: 1.2 million clusters", webm_of(webm_info(5000.0), webm_tracks(), EMPTY_CLUSTER * 1_250_000),
     "video/webm"),
    ("webm: an Info of 3 million Voids", webm_of(ebml(INFO, ebml(VOID, b"") * 3_000_000), webm_tracks()),
     "video/webm"),
    ("webm: a Cluster of Voids before its Timecode",
     webm_of(webm_info(5000.0), webm_tracks(), ebml(CLUSTER, ebml(VOID, b"") * 3_000_000)), "video/webm"),
    ("mp4: 1.2 million top-level boxes", mp4_lasting(10) + box(b"free", b"") * 1_250_000, "video/mp4"),
    ("mp4: a track of a million boxes", mp4_of(FTYP, moov(movie_header(10), trak(box(b"free", b"") * 1_000_000)),
                                               MDAT), "video/mp4"),
]


@pytest.mark.parametrize("name, data, content_type", HUGE, ids=[case[0] for case in HUGE])
def test_containers_of_millions_of_parts_are_refused_within_a_bounded_walk(name, data, content_type):
    started = time.process_time()
    with pytest.raises(videos.UnreadableVideo, match="too many parts"):
        videos.seconds(data, content_type)
    # At most MAX_ELEMENTS parts are read (some 0.3 s); the whole walk is minutes.
    assert time.process_time() - started < 3


def test_a_webm_with_a_cluster_for_every_frame_of_60_seconds_is_within_the_walk():
    data = webm_lasting(60, clusters=range(0, 60_000, 17))  # 60 fps: 3,530 clusters
    assert videos.seconds(data, "video/webm") == pytest.approx(60)
