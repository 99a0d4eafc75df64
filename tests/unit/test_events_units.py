"""Unit tests of the events service: its rules, parsers and guards, with no
I/O (the service itself runs in tests/interface/test_events.py)."""
import io
import struct
import zlib
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from marshmallow import ValidationError

from services.events import calendars, images, media, recurrence, schedule, schemas, videos
from services.events.exceptions import InvalidCalendar, UrlNotAllowed
from services.events.fetching import Fetcher, public_address
from services.shared.errors import InvalidInput, UnsupportedType
from tests.fixtures.events.media_samples import decoded, mp4_lasting, phone_photo, webm_lasting

MONDAY = datetime(2027, 3, 1, 17, 0, tzinfo=UTC)


# Recurrence --------------------------------------------------------------------------

def test_weekly_rule_keeps_local_time_across_daylight_saving():
    rule = recurrence.normalise_rule("RRULE:FREQ=WEEKLY")
    before = datetime(2027, 4, 6, tzinfo=UTC)
    starts = [start for start in recurrence.expand(rule, MONDAY, "Europe/Paris") if start < before]
    assert [start.hour for start in starts] == [17, 17, 17, 17, 16, 16]  # 18:00 Paris, before and after DST


def test_unbounded_rules_are_capped():
    last = recurrence.check_rule("FREQ=DAILY", MONDAY, "UTC")
    assert (last - MONDAY).days == recurrence.MAX_OCCURRENCES - 1


@pytest.mark.parametrize("rule", [
    "FREQ=MINUTELY", "FREQ=HOURLY;COUNT=3", "COUNT=3", "FREQ=DAILY;BYSETPOS=1", "FREQ=DAILY;INTERVAL=1000",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "FREQ=DAILY;INTERVAL=7;BYDAY=MO", "FREQ=DAILY\nFREQ=DAILY",
    "FREQ=DAILY;" + "X" * 600,
    # Each was a 500 (dateutil's IndexError), a search to the year 9999, or a
    # minutely rule stored as daily.
    "FREQ=MONTHLY;BYDAY=99MO", "FREQ=MONTHLY;BYDAY=+99999999999999999999MO", "FREQ=YEARLY;BYMONTH=2;BYDAY=53MO",
    "FREQ=MONTHLY;BYDAY=1MO;BYMONTHDAY=8", "FREQ=DAILY;FREQ=MINUTELY", "FREQ=WEEKLY;BYDAY=2MO",
    "FREQ=MONTHLY;BYDAY=0MO", "FREQ=WEEKLY;BYDAY=MO,", "FREQ=WEEKLY;BYDAY=MONDAY", "FREQ=WEEKLY;COUNT=2;COUNT=3",
])
def test_unsafe_or_unreadable_rules_are_refused(rule):
    with pytest.raises(recurrence.InvalidRule):
        recurrence.check_rule(recurrence.normalise_rule(rule), MONDAY, "UTC")


@pytest.mark.parametrize("rule", [
    "FREQ=MONTHLY;BYDAY=5MO", "FREQ=MONTHLY;BYDAY=-1FR", "FREQ=YEARLY;BYDAY=20MO", "FREQ=YEARLY;BYMONTH=11;BYDAY=4TH",
    "FREQ=WEEKLY;BYDAY=MO,WE,FR", "FREQ=MONTHLY;BYDAY=MO;BYMONTHDAY=13",
])
def test_weekday_rules_people_use_are_accepted(rule):
    assert recurrence.check_rule(recurrence.normalise_rule(rule), MONDAY, "UTC") > MONDAY


def test_timezones_are_iana_names():
    assert recurrence.valid_timezone("America/New_York") and recurrence.valid_timezone("UTC")
    assert not recurrence.valid_timezone("Mars/Olympus") and not recurrence.valid_timezone("../../etc/passwd")


# Schemas ----------------------------------------------------------------------------

def test_range_args_bound_the_span():
    with pytest.raises(ValidationError) as error:
        schemas.RangeArgs().load({"from": "2027-01-01T00:00:00Z", "to": "2028-06-01T00:00:00Z"})
    assert "to" in error.value.messages
    loaded = schemas.RangeArgs().load({"from": "2027-01-01T01:00:00+01:00", "to": "2027-02-01T00:00:00Z"})
    assert loaded["range_from"] == datetime(2027, 1, 1, tzinfo=UTC) and loaded["limit"] == 20


# Media types ---------------------------------------------------------------------------

@pytest.mark.parametrize("data, expected", [
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, "image/png"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 32, "image/jpeg"),
    (b"GIF89a" + b"\x00" * 32, "image/gif"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 32, "image/webp"),
    (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 32, "video/mp4"),
    (b"\x1aE\xdf\xa3\x9fB\x86\x81\x01B\x82\x84webm" + b"\x00" * 16, "video/webm"),
])
def test_media_type_comes_from_the_bytes(data, expected):
    assert media.detect_type(data) == expected


@pytest.mark.parametrize("data", [b"<svg onload=alert(1)>", b"%PDF-1.7", b"MZ\x90\x00", b"plain text"])
def test_other_types_are_refused(data):
    with pytest.raises(UnsupportedType):
        media.detect_type(data)


@pytest.mark.parametrize("data, seconds", [
    (mp4_lasting(12), 12), (mp4_lasting(30, version=1), 30), (webm_lasting(45), 45),
])
def test_video_duration_is_read_from_the_container(data, seconds):
    content_type = media.detect_type(data)
    assert videos.seconds(data, content_type) == pytest.approx(seconds)
    media.check_video_length(data, content_type)


@pytest.mark.parametrize("data", [mp4_lasting(61), webm_lasting(3600), mp4_lasting(1)[:40]])
def test_long_or_unreadable_videos_are_refused(data):
    with pytest.raises(InvalidInput) as error:
        media.check_video_length(data, media.detect_type(data))
    assert error.value.code in ("VIDEO_TOO_LONG", "INVALID_VIDEO")


# Calendar parsing --------------------------------------------------------------------------

def test_calendar_with_many_events_is_refused_before_parsing():
    bomb = b"BEGIN:VCALENDAR\r\n" + b"BEGIN:VEVENT\r\nEND:VEVENT\r\n" * (calendars.MAX_COMPONENTS + 1)
    with pytest.raises(InvalidCalendar):
        calendars.parse(bomb)


def test_calendar_events_name_their_problems():
    data = (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20270101T100000Z\r\nEND:VEVENT\r\n"
            b"BEGIN:VEVENT\r\nUID:b\r\nEND:VEVENT\r\n"
            b"BEGIN:VEVENT\r\nUID:c\r\nDTSTART:20270101T100000Z\r\nRRULE:FREQ=SECONDLY\r\nEND:VEVENT\r\n"
            b"END:VCALENDAR\r\n")
    with pytest.raises(InvalidCalendar) as error:
        calendars.parse(data)
    problems = error.value.details["events"]
    assert [(problem["uid"], problem["event"]) for problem in problems] == [("b", 2), ("c", 3)]
    assert "DTSTART" in problems[0]["error"] and "RRULE" in problems[1]["error"]


def test_overrides_and_repeated_uids_are_skipped():
    event = b"BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20270101T100000Z\r\n%sEND:VEVENT\r\n"
    data = (b"BEGIN:VCALENDAR\r\n" + event % b"" + event % b"" + event % b"RECURRENCE-ID:20270108T100000Z\r\n"
            + b"END:VCALENDAR\r\n")
    parsed, skipped = calendars.parse(data)
    assert len(parsed) == 1 and skipped == 2
    assert parsed[0]["title"] == "(untitled)" and parsed[0]["ends_at"] > parsed[0]["starts_at"]


# SSRF guard ------------------------------------------------------------------------------

@pytest.mark.parametrize("address, allowed", [
    ("93.184.216.34", True), ("2606:2800:220:1:248:1893:25c8:1946", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("::1", False), ("fe80::1", False), ("fc00::1", False), ("::ffff:127.0.0.1", False),
    ("64:ff9b::a00:1", False), ("2002:7f00:1::", False), ("not an ip", False),
])
def test_public_address(address, allowed):
    assert public_address(address) is allowed


@pytest.mark.parametrize("address", [
    "::127.0.0.1", "::10.0.0.1", "::ffff:0:7f00:1", "::ffff:0:a00:1", "fec0::1", "feff::1", "::ffff:127.0.0.1",
    "64:ff9b::7f00:1", "2002:7f00:1::", "::1", "::", "127.0.0.1", "169.254.169.254", "100.64.0.1", "fe80::1%eth0",
])
def test_addresses_that_can_reach_a_private_network_are_not_public(address):
    assert not public_address(address)


def test_only_web_ports_are_fetched_and_refused_before_any_lookup():
    def resolver(host, port):
        raise AssertionError("looked up")

    fetcher = Fetcher(1000, 5, resolver=resolver)
    for url in ("http://calendar.test:22/cal.ics", "https://calendar.test:8443/cal.ics", "http://calendar.test:0/"):
        with pytest.raises(UrlNotAllowed):
            fetcher.fetch(url)


# Pictures: published upright and without metadata -----------------------------

def test_a_phone_photo_loses_its_exif_and_gps_and_is_turned_upright():
    photo = phone_photo(64, 48, orientation=6)
    assert 0x8825 in decoded(photo)[2]
    assert decoded(images.without_metadata(photo, "image/jpeg")) == ("JPEG", (48, 64), {}, {})


def test_png_text_chunks_are_dropped():
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Location", "48.8566 N, 2.3522 E")
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, "PNG", pnginfo=info)
    assert decoded(out.getvalue())[3] == {"Location": "48.8566 N, 2.3522 E"}
    assert decoded(images.without_metadata(out.getvalue(), "image/png")) == ("PNG", (8, 8), {}, {})


@pytest.mark.parametrize("data", [
    b"\xff\xd8\xff\xe0" + b"not a picture" * 100,
    # A 100,000 x 100,000 PNG in a few bytes: refused before its pixels exist.
    b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    + struct.pack(">I", zlib.crc32(b"IHDR" + struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))),
])
def test_unreadable_or_huge_pictures_are_refused(data):
    content_type = "image/jpeg" if data.startswith(b"\xff") else "image/png"
    with pytest.raises(InvalidInput) as refused:
        images.without_metadata(data, content_type)
    assert refused.value.code == "INVALID_IMAGE"


def test_gifs_and_videos_are_kept_as_sent():
    assert images.without_metadata(b"GIF89a...", "image/gif") == b"GIF89a..."
    assert images.without_metadata(b"....ftypmp42", "video/mp4") == b"....ftypmp42"


# Rules of an event's times -------------------------------------------------------------

def test_an_event_ends_after_it_starts_and_lasts_at_most_a_month():
    assert schedule.check_times(MONDAY, MONDAY + schedule.DEFAULT_EVENT_DURATION) == {}
    assert "ends_at" in schedule.check_times(MONDAY, MONDAY)
    assert "ends_at" in schedule.check_times(MONDAY, MONDAY + schedule.MAX_EVENT_DURATION + timedelta(seconds=1))
    assert schedule.check_range(MONDAY, MONDAY + schedule.MAX_RANGE) == {}
    assert "to" in schedule.check_range(MONDAY, MONDAY + schedule.MAX_RANGE + timedelta(days=1))


def _event(**fields):
    values = dict(id="6f0c6b8e-5d41-4cf1-9d0f-1f2a3b4c5d6e", organizer_id="0b8e9f3c-6a3e-4a59-9d6e-2f0f1f2e3d4c",
                  rrule=None, title="t", description="", starts_at=MONDAY, ends_at=MONDAY + timedelta(hours=2),
                  timezone="UTC", location="", is_online=False, visibility="public", status="active", capacity=None,
                  participants_count=0, cover_media_id=None, created_at=MONDAY, updated_at=MONDAY)
    return SimpleNamespace(**dict(values, **fields))


def test_an_occurrence_lasts_as_long_as_the_first_and_is_named_only_in_a_series():
    single = schedule.occurrence_of(_event())
    assert (single.starts_at, single.ends_at, single.occurrence_id) == (MONDAY, MONDAY + timedelta(hours=2), None)
    weekly = _event(rrule="FREQ=WEEKLY")
    later = schedule.occurrence_of(weekly, MONDAY + timedelta(days=7))
    assert later.ends_at == MONDAY + timedelta(days=7, hours=2)
    assert later.occurrence_id == f"{weekly.id}:2027-03-08T17:00:00Z"


# Answers -------------------------------------------------------------------------------

def test_an_event_answer_shows_its_occurrence_and_a_deleted_organizer():
    event = _event(rrule="FREQ=WEEKLY", cover_media_id="1c9f6a8e-7d41-4cf1-9d0f-1f2a3b4c5d6e")
    seen = schedule.SeenEvent(event, schedule.occurrence_of(event, MONDAY + timedelta(days=7)), None, None)
    answer = schemas.EVENT_ANSWER.dump(seen)
    assert answer["starts_at"] == "2027-03-08T17:00:00Z" and answer["series_starts_at"] == "2027-03-01T17:00:00Z"
    assert answer["cover_url"] == f"/media/{event.cover_media_id}"
    assert answer["organizer"] == {"id": event.organizer_id, "username": None, "display_name": "Deleted user",
                                   "avatar_url": None}
    assert schemas.EventAnswer().validate(answer) == {}


def test_a_feed_item_is_the_answer_of_its_post_with_its_type():
    from services.events import social

    post = SimpleNamespace(id="1c9f6a8e-7d41-4cf1-9d0f-1f2a3b4c5d6e", body="hi", event_id=None,
                           media_ids=["2d9f6a8e-7d41-4cf1-9d0f-1f2a3b4c5d6e"],
                           author_id="0b8e9f3c-6a3e-4a59-9d6e-2f0f1f2e3d4c", created_at=MONDAY)
    author = {"id": post.author_id, "username": "ann", "display_name": "Ann", "avatar_url": None}
    item = schemas.FEED_ITEM.dump(social.FeedEntry("post", MONDAY, post.id, social.SeenPost(post, author)))
    assert item == dict(schemas.POST_ANSWER.dump(social.SeenPost(post, author)), type="post")
    assert item["media"] == [{"id": post.media_ids[0], "url": f"/media/{post.media_ids[0]}"}]
    assert item["author"] == author and item["created_at"] == "2027-03-01T17:00:00Z"


def test_readiness_probes_cover_database_and_broker():
    from unittest.mock import MagicMock

    from nameko.testing.services import worker_factory

    from services.events.service import EventsService

    service = worker_factory(EventsService, storage=MagicMock(spec=[]))
    assert set(service.readiness_probes()) == {"database", "broker"}
