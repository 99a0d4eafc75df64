"""How long a video lasts, as its container says, read by a container parser.

The bytes are parsed by hachoir as what their type claims: an ISO base media
file for MP4, Matroska with DocType `webm` for WebM. The file's top-level
boxes (elements), and those of the MP4 movie box and the WebM Segment, must
add up exactly: a size past the end of its parent, trailing bytes or a
missing or repeated header make the container malformed. Durations are read
where the format defines them, never by searching the bytes for a marker:

- MP4: the movie header (`moov/mvhd`) and every track header
  (`moov/trak/tkhd`), in the movie's timescale. The media headers (`mdhd`)
  are not read: a clip cut without re-encoding keeps media before its first
  shown frame, and its edit list hides it.
- WebM: `Segment/Info/Duration` (a float, in `TimecodeScale` ticks), and the
  start of every `Cluster`, so a header cannot claim less than the clusters
  hold.

A duration that is missing, zero, negative, infinite or NaN is unreadable.
The video lasts the longest of what it declares.

Parsing is lazy and bounded: only the headers above are decoded (frames are
skipped by their sizes), and a container is refused once MAX_ELEMENTS boxes
or elements have been read. A 60 s video has a few dozen, a 60 s WebM with a
cluster for every frame at 60 fps 7,200 (each cluster and its Timecode); a
10 MiB file of empty clusters would have two million, some minutes of CPU.
"""
import io
import math
from collections.abc import Iterator
from typing import Any

import hachoir.core.config
from hachoir.core.log import log as _hachoir_log
from hachoir.parser.container.mkv import MkvFile
from hachoir.parser.container.mp4 import MP4File
from hachoir.stream import InputIOStream

# hachoir's defaults suit a file browser, not a gate: it "autofixes" a
# container that does not add up (cutting or padding the last field) and
# writes its warnings to stderr. Here a container that does not add up is
# refused, and nothing is written outside the service's logs.
hachoir.core.config.autofix = False
hachoir.core.config.quiet = True
_hachoir_log.use_print = False

MAX_ELEMENTS = 10_000
MAX_HEADER_BYTES = 1024  # a WebM's EBML header is some 40 bytes
MAX_PLAUSIBLE_SECONDS = 7 * 24 * 3600  # past this a declared length is nonsense, not a long video
_MATROSKA_DEFAULT_TIMECODE_SCALE = 1_000_000  # nanoseconds per tick, when Info does not say
_UNKNOWN_32 = 0xFFFF_FFFF
_UNKNOWN_64 = 0xFFFF_FFFF_FFFF_FFFF
_ELEMENT_HEADER = ("id", "size")  # how hachoir names an EBML element's own header fields
# hachoir ships no types: its fields and field sets are Any here.
Field = Any
# (kind, field) of a box or element's children.
Children = list[tuple[str, Field]]
_MALFORMED = "The container is malformed (truncated, trailing bytes, or sizes that do not add up)."


class UnreadableVideo(ValueError):
    """The container is malformed, or does not say how long it lasts. The
    message says which, for the person uploading."""


def seconds(data: bytes, content_type: str) -> float:
    """How long the video lasts, in seconds; UnreadableVideo if that cannot be told."""
    reader = {"video/mp4": _mp4_seconds, "video/webm": _webm_seconds}[content_type]
    try:
        found: float = reader(data, _Budget())
    except UnreadableVideo:
        raise
    except Exception:  # noqa: BLE001 - whatever the parser trips on in foreign bytes, they are malformed
        raise UnreadableVideo(_MALFORMED) from None
    if not found > 0:  # zero, or NaN
        raise UnreadableVideo("The container declares no duration.")
    if found > MAX_PLAUSIBLE_SECONDS:
        raise UnreadableVideo("The container declares an implausible duration.")
    return found


class _Budget:
    """Counts the boxes or elements walked, and stops a container that has too many."""

    def __init__(self) -> None:
        self.left = MAX_ELEMENTS

    def each(self, field_set: Field) -> Iterator[tuple[str, Field]]:
        """(kind, field) of a box or element's children, parsed one by one;
        kind is the name without hachoir's `[n]` (a repeated `Duration` is
        named `Duration[0]`)."""
        for field in field_set:
            if field.name in _ELEMENT_HEADER:
                continue
            self.left -= 1
            if self.left < 0:
                raise UnreadableVideo("The container has too many parts.")
            yield field.name.split("[")[0], field

    def children(self, field_set: Field) -> Children:
        return list(self.each(field_set))


def _stream(data: bytes) -> Any:
    return InputIOStream(io.BytesIO(data), source="upload", tags=[])


def _all(children: Children, kind: str) -> list[Field]:
    return [field for name, field in children if name == kind]


def _one(children: Children, kind: str, message: str) -> Field:
    fields = _all(children, kind)
    if len(fields) != 1:
        raise UnreadableVideo(message)
    return fields[0]


# MP4 --------------------------------------------------------------------------------

def _mp4_seconds(data: bytes, budget: _Budget) -> float:
    boxes = _mp4_boxes(MP4File(_stream(data), validate=True), budget)
    if boxes[0][0] != "ftyp":
        raise UnreadableVideo("An MP4 starts with its file type box (ftyp).")
    if not _all(boxes, "mdat"):
        raise UnreadableVideo("The MP4 holds no media data (mdat).")
    if _all(boxes, "moof"):
        # A fragmented MP4 says how long each fragment is, not how long it all is.
        raise UnreadableVideo("Fragmented MP4 is not supported; upload it as a plain MP4.")
    movie = _one(boxes, "moov", "An MP4 has exactly one movie box (moov).")
    movie = _mp4_boxes(movie["movie"], budget)
    header = _one(movie, "mvhd", "An MP4 has exactly one movie header (mvhd).")["movie_hdr"]
    timescale: int = header["time_scale"].value
    if timescale == 0:
        raise UnreadableVideo("The MP4's timescale is zero.")
    tracks = _all(movie, "trak")
    if not tracks:
        raise UnreadableVideo("The MP4 has no tracks.")
    durations = [_mp4_duration(header)]
    for track in tracks:
        parts = _mp4_boxes(track["track"], budget)
        track_header = _one(parts, "tkhd", "Every MP4 track has exactly one track header (tkhd).")
        durations.append(_mp4_duration(track_header["track_hdr"]))
    return max(durations) / timescale


def _mp4_boxes(parent: Field, budget: _Budget) -> Children:
    """[(type, box)] of a box's children, each exactly as long as it says
    (hachoir reads a size under 8, which no box can have, as 8)."""
    boxes: Children = []
    for _, found in budget.each(parent):
        declared = found["size"].value
        if declared == 1:
            declared = found["size64"].value
        if declared != 0 and declared != found.size // 8:  # 0: up to the end of the file
            raise UnreadableVideo(_MALFORMED)
        boxes.append((found["tag"].value, found))
    return boxes


def _mp4_duration(header: Field) -> int:
    """A header's duration in movie ticks; all ones means "unknown" (ISO/IEC 14496-12)."""
    duration: int = header["duration"].value
    if duration == (_UNKNOWN_32 if header["version"].value == 0 else _UNKNOWN_64):
        raise UnreadableVideo("The MP4 declares an unknown duration.")
    return duration


# WebM -------------------------------------------------------------------------------

def _webm_seconds(data: bytes, budget: _Budget) -> float:
    # Not validate=True: hachoir's check reads the EBML header up to its
    # DocType unbounded; the header's size is checked first instead.
    top = budget.children(MkvFile(_stream(data)))
    kind, header = top[0]
    if kind != "EBML" or header.size // 8 > MAX_HEADER_BYTES:
        raise UnreadableVideo(_MALFORMED)
    doc_type = _one(budget.children(header), "DocType", "The EBML header names no DocType.")
    if doc_type["string"].value != "webm":
        raise UnreadableVideo("The file is Matroska, not WebM.")
    if [kind for kind, _ in top[1:]] != ["Segment"]:
        raise UnreadableVideo("A WebM has exactly one Segment.")
    segment = budget.children(top[1][1])
    info = budget.children(_one(segment, "Info", "A WebM has exactly one Segment Info."))
    if not _all(segment, "Tracks"):
        raise UnreadableVideo("The WebM has no tracks.")
    scale = _webm_timecode_scale(info)
    cluster_starts = [_cluster_start(cluster, budget) for cluster in _all(segment, "Cluster")]
    return max([_webm_duration(info), *cluster_starts]) * scale / 1e9


def _webm_timecode_scale(info: Children) -> int:
    scales = _all(info, "TimecodeScale")
    if not scales:
        return _MATROSKA_DEFAULT_TIMECODE_SCALE
    scale: int = _one(info, "TimecodeScale", "The WebM declares its TimecodeScale twice.")["unsigned"].value
    if scale == 0:
        raise UnreadableVideo("The WebM's TimecodeScale is zero.")
    return scale


def _webm_duration(info: Children) -> float:
    """Info's Duration, in ticks. Optional in Matroska, but a WebM without it
    (a browser's live recording) cannot be measured without reading every frame."""
    if not _all(info, "Duration"):
        raise UnreadableVideo("The WebM declares no Duration; remux it (e.g. ffmpeg -c copy).")
    duration = _one(info, "Duration", "The WebM declares its Duration twice.")
    value: float | None = next((duration[kind].value for kind in ("float", "double") if kind in duration), None)
    if value is None:
        raise UnreadableVideo("The WebM's Duration is not a 4- or 8-byte float.")
    if not math.isfinite(value) or value <= 0:
        raise UnreadableVideo(f"The WebM declares a Duration of {value}, which is no length.")
    return value


def _cluster_start(cluster: Field, budget: _Budget) -> int:
    """A Cluster's Timecode, its first element as muxers write it: the frames
    after it are not parsed."""
    for kind, element in budget.each(cluster):
        if kind == "Timecode":
            timecode: int = element["unsigned"].value
            return timecode
    raise UnreadableVideo("A WebM Cluster has no Timecode.")
