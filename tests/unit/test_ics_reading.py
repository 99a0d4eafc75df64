"""Reading an .ics file in slices: between two pauses no file, however built,
gets icalendar or the expansion far past a few tens of milliseconds of CPU
(the thread's CPU time, with the garbage collector off so that only the
import's own work is counted); icalendar never sees the properties the import
does not read; structure and size are checked before it sees anything."""
import gc
import random
import time

import pytest
from icalendar.parser import NEWLINE, uFOLD

from services.events import calendars, ics_reading
from services.events.exceptions import InvalidCalendar

# "Well under 100 ms": each slice measures 10-25 ms on the machines this runs on.
MOST_CPU_PER_SLICE = 0.05


def calendar(*parts):
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\n" + "".join(parts) + "END:VCALENDAR\r\n").encode()


def event(uid, start, extra=""):
    return f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20270101T000000Z\r\nDTSTART;{start}\r\n{extra}END:VEVENT\r\n"


def custom_zone(tzid, observances):
    return (f"BEGIN:VTIMEZONE\r\nTZID:{tzid}\r\n" + "".join(
        f"BEGIN:STANDARD\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n"
        f"RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH={1 + number % 12}\r\nEND:STANDARD\r\n"
        for number in range(observances)) + "END:VTIMEZONE\r\n")


HOSTILE = {
    "a megabyte of parameters on one line": calendar(event(
        "a", "VALUE=DATE:20270101", 'DESCRIPTION;X-P="' + "a" * 1_000_000 + '":v\r\n')),
    "90,000 parameters on one line": calendar(event(
        "a", "VALUE=DATE:20270101", "DESCRIPTION;" + ";".join(f"X-P{n}=v" for n in range(90_000)) + ":v\r\n")),
    "a megabyte of description": calendar(event(
        "a", "VALUE=DATE:20270101", "DESCRIPTION:" + "a\\,b\\n" * 160_000 + "\r\n")),
    "49,000 lines": calendar(event("a", "VALUE=DATE:20270101", "X-PAD:abcdefgh\r\n" * 49_000)),
    "a megabyte folded": calendar(event("a", "VALUE=DATE:20270101",
                                        "X-PAD:" + "\r\n ".join(["a" * 72] * 13_000) + "\r\n")),
    "500 daily series": calendar(*[event(f"d{n}", "TZID=Europe/Paris:20270104T093000", "RRULE:FREQ=DAILY\r\n")
                                   for n in range(500)]),
    "a 100-part zone in 229 years": calendar(custom_zone("C", 100), *[
        event(f"y{n}", f"TZID=C:{1970 + n % 229}0104T093000") for n in range(500)]),
    "500 onset dates in 229 years": calendar(
        "BEGIN:VTIMEZONE\r\nTZID:R\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0100\r\n"
        "TZOFFSETTO:+0100\r\nRDATE:" + ",".join(["20200101T000000"] * 500) + "\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n",
        *[event(f"r{n}", f"TZID=R:{1970 + n % 229}0104T093000") for n in range(500)]),
    "450 zones nobody uses": calendar(*[custom_zone(f"Z{n}", 3) for n in range(450)],
                                      event("a", "VALUE=DATE:20270101")),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_no_slice_between_two_pauses_takes_long(case):
    slices, last = [], [time.thread_time()]

    def pause():
        now = time.thread_time()
        slices.append(now - last[0])
        last[0] = now

    gc.disable()
    try:
        try:
            calendars.parse(HOSTILE[case], pause)
        except InvalidCalendar:
            pass
        pause()
    finally:
        gc.enable()
    assert max(slices) < MOST_CPU_PER_SLICE, (case, max(slices), len(slices))


def test_lines_are_unfolded_as_icalendar_unfolds_them_across_every_piece():
    chance = random.Random(7)
    lines = []
    for number in range(6000):
        value = "".join(chance.choice("abc ,;:\\") for _ in range(chance.randint(0, 150)))
        folded = "\r\n ".join(value[start:start + 70] for start in range(0, len(value), 70)) or "x"
        lines.append(f"X-P{number}:{folded}" + chance.choice(["\r\n", "\n"]))
    text = "".join(lines)
    assert len(text) > 5 * ics_reading.SPLIT_CHARS
    expected = [line for line in NEWLINE.split(uFOLD.sub("", text)) if line]
    assert ics_reading.content_lines(text.encode(), lambda: None) == expected


def test_properties_the_import_does_not_read_are_never_parsed():
    """A broken ATTENDEE, alarm or unknown component used to be read (and
    could fail the file); they are skipped now, unread."""
    data = calendar("BEGIN:VTODO\r\nDTSTART:garbage\r\nEND:VTODO\r\n", event(
        "a", "TZID=Europe/Paris:20270104T093000",
        "ATTENDEE;CN=\"unterminated:mailto:x\r\nBEGIN:VALARM\r\nTRIGGER:not a duration\r\nEND:VALARM\r\n"
        "X-WEIRD;;;:\r\nSUMMARY:Stand-up\r\n"))
    parsed, _ = calendars.parse(data)
    assert parsed[0]["title"] == "Stand-up"
    lines = dict(ics_reading.components(ics_reading.content_lines(data, lambda: None), lambda: None))["VEVENT"]
    assert lines == ["BEGIN:VEVENT", "UID:a", "DTSTART;TZID=Europe/Paris:20270104T093000", "SUMMARY:Stand-up",
                     "END:VEVENT"]


def test_long_text_is_cut_and_other_long_lines_refused():
    parsed, _ = calendars.parse(calendar(event("a", "VALUE=DATE:20270101", "DESCRIPTION:" + "d" * 900_000 + "\r\n")))
    assert len(parsed[0]["description"]) <= 5000
    with pytest.raises(InvalidCalendar) as refusal:
        calendars.parse(calendar(event("a", "VALUE=DATE:20270101", "RRULE:FREQ=DAILY;X=" + "1" * 30_000 + "\r\n")))
    assert "longer than" in refusal.value.details["file"][0]


@pytest.mark.parametrize("data, problem", [
    (b"BEGIN:VEVENT\r\nEND:VEVENT\r\n", "Not a VCALENDAR."),
    (calendar("END:VEVENT\r\n"), "END without BEGIN."),
    (calendar("BEGIN:VEVENT\r\nUID:a\r\n"), "VEVENT is not closed."),
    (calendar(event("a", "VALUE=DATE:20270101", "SUMMARY:x\r\n" * 200)), "VEVENT 1 is too large"),
    (calendar(custom_zone("C", 120)), "VTIMEZONE 1 is too large"),
    (b"BEGIN:VCALENDAR\r\nX:\xff\r\nEND:VCALENDAR\r\n", "Not UTF-8 text."),
])
def test_structure_and_size_are_checked_before_icalendar_reads_anything(data, problem):
    with pytest.raises(InvalidCalendar) as refusal:
        calendars.parse(data)
    assert refusal.value.details["file"][0].startswith(problem)
