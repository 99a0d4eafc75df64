"""Reading an .ics file in bounded slices of work.

icalendar reads a whole file in one go, and some lines cost it far more than
their size suggests: a megabyte of parameters on one line takes it half a
second, a line of 100,000 parameters a second and a half, and the event loop
serves nothing else meanwhile. Here the file is first cut into content lines
and top-level components with plain string work, pausing every few thousand
lines; icalendar then reads only the VEVENTs and VTIMEZONEs, one at a time,
each reduced to the properties the import uses and bounded in lines and
characters. The caller pauses between components, so no slice of work comes
near 100 ms.
"""
import re
from collections.abc import Callable, Iterator

from icalendar.cal import Component

MAX_CONTENT_LINES = 50_000
MAX_LINE_CHARS = 20_000
MAX_HEAD_CHARS = 1000  # a property's name and parameters, before its value
# What icalendar may read of one component: each takes it under about 25 ms
# (a VTIMEZONE's dates cost it far more per character than an event's text).
MAX_COMPONENT_LINES = {"VEVENT": 100, "VTIMEZONE": 1000}
MAX_COMPONENT_CHARS = {"VEVENT": 64 * 1024, "VTIMEZONE": 12 * 1024}
PAUSE_EVERY_LINES = 2_000
SPLIT_CHARS = 64 * 1024  # text split into lines between two pauses
# What the import reads, by component; any other property is never parsed.
READ = {
    "VEVENT": {"UID", "SUMMARY", "DESCRIPTION", "LOCATION", "STATUS", "DTSTART", "DTEND", "DURATION", "RRULE",
               "RECURRENCE-ID"},
    "VTIMEZONE": {"TZID"},
    "STANDARD": {"DTSTART", "TZOFFSETFROM", "TZOFFSETTO", "RRULE", "RDATE"},
    "DAYLIGHT": {"DTSTART", "TZOFFSETFROM", "TZOFFSETTO", "RRULE", "RDATE"},
}
# Components kept inside another (a zone's observances); others (VALARM...) are dropped.
NESTED = {"VTIMEZONE": {"STANDARD", "DAYLIGHT"}}
# Free text only the start of which is kept anyway: cut, not refused.
TEXT_PROPERTIES = {"SUMMARY", "DESCRIPTION", "LOCATION"}
_NAME = re.compile(r"[A-Za-z0-9-]{1,100}(?=[;:])")
# Name and parameters up to the first colon outside quotes (where icalendar splits).
_HEAD = re.compile(r'[^":]*(?:"[^"]*"[^":]*)*:')


# Called between slices of work: the caller's chance to let others run.
Pause = Callable[[], object]
# A component's name and its content lines.
Lines = tuple[str, list[str]]


class Unreadable(ValueError):
    pass


def content_lines(data: bytes, pause: Pause) -> list[str]:
    """The file's content lines, unfolded (a line break followed by a space
    or tab continues a line) and without empty ones."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable("Not UTF-8 text.") from None
    lines: list[str] = []
    current: list[str] | None = None
    for number, physical in enumerate(_physical_lines(text, pause)):
        if number % PAUSE_EVERY_LINES == 0:
            pause()
        if current is not None and physical[:1] in (" ", "\t"):
            current.append(physical[1:])
            continue
        if current:
            lines.append("".join(current))
            if len(lines) > MAX_CONTENT_LINES:
                raise Unreadable(f"More than {MAX_CONTENT_LINES} lines.")
        current = [physical] if physical else None
    if current:
        lines.append("".join(current))
    if len(lines) > MAX_CONTENT_LINES:
        raise Unreadable(f"More than {MAX_CONTENT_LINES} lines.")
    return lines


def _physical_lines(text: str, pause: Pause) -> Iterator[str]:
    """The text's lines, split where icalendar splits them (CRLF or LF), a
    piece at a time: splitting a megabyte at once is itself a slice of tens
    of milliseconds (str.split, unlike icalendar's regular expression, is fast)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start + SPLIT_CHARS)
        end = len(text) if end == -1 else end  # the piece stops before a line break
        for line in text[start:end].split("\n"):
            yield line[:-1] if line[-1:] == "\r" else line
        start = end + 1
        pause()


def components(lines: list[str], pause: Pause) -> list[Lines]:
    """[(name, lines)] of the calendar's top-level VEVENTs and VTIMEZONEs, in
    order, each reduced to what the import reads; Unreadable if the file is
    not one VCALENDAR, or a component is too large."""
    if len(lines) < 2 or lines[0].upper() != "BEGIN:VCALENDAR" or lines[-1].upper() != "END:VCALENDAR":
        raise Unreadable("Not a VCALENDAR.")
    found: list[Lines] = []
    stack: list[str] = []  # stack: names of the components the line is in, below VCALENDAR
    for number, line in enumerate(lines[1:-1], start=1):
        if number % PAUSE_EVERY_LINES == 0:
            pause()
        keyword = line[:6].upper()
        if keyword == "BEGIN:":
            name = line[6:].strip().upper()
            if not stack:
                found.append((name, []))
            stack.append(name)
            _keep(found, stack, line, name)
        elif keyword[:4] == "END:":
            if not stack:
                raise Unreadable("END without BEGIN.")
            _keep(found, stack, line, stack[-1])
            stack.pop()
            if not stack:
                _check_size(found[-1], len(found))
        elif stack:
            _keep(found, stack, line)
    if stack:
        raise Unreadable(f"{stack[0]} is not closed.")
    return [(name, kept) for name, kept in found if name in MAX_COMPONENT_LINES]


def _keep(found: list[Lines], stack: list[str], line: str, component: str | None = None) -> None:
    """Add a line to the top-level component it is in, if the import reads it."""
    top, kept = found[-1]
    if top not in MAX_COMPONENT_LINES:
        return
    nested = stack[1:]
    if nested and (len(nested) > 1 or nested[0] not in NESTED.get(top, ())):
        return
    if component is not None:  # its BEGIN or END
        kept.append(line)
        return
    property_name = _NAME.match(line)
    if property_name is None or property_name.group().upper() not in READ[stack[-1]]:
        return
    name = property_name.group().upper()
    if _HEAD.match(line, 0, MAX_HEAD_CHARS) is None:
        raise Unreadable(f"A {name} line of {top} {len(found)} has no value within {MAX_HEAD_CHARS} characters.")
    if len(line) > MAX_LINE_CHARS:
        if name not in TEXT_PROPERTIES:
            raise Unreadable(f"A {name} line of {top} {len(found)} is longer than {MAX_LINE_CHARS} characters.")
        line = line[:MAX_LINE_CHARS]
    kept.append(line)


def _check_size(component: Lines, position: int) -> None:
    name, kept = component
    if name not in MAX_COMPONENT_LINES:
        return
    if len(kept) > MAX_COMPONENT_LINES[name] or sum(len(line) for line in kept) > MAX_COMPONENT_CHARS[name]:
        raise Unreadable(f"{name} {position} is too large: the import reads at most "
                         f"{MAX_COMPONENT_LINES[name]} lines and {MAX_COMPONENT_CHARS[name] // 1024} KiB of one.")


def read_component(lines: list[str]) -> Component:
    """One component, as icalendar reads it; Unreadable if it cannot."""
    try:
        return Component.from_ical("\r\n".join(lines) + "\r\n")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, OverflowError, RecursionError) as exc:
        # OverflowError: DURATION:P9999999999W overflows timedelta inside the parser.
        raise Unreadable(f"Not an iCalendar component: {exc}"[:300]) from None


def property_value(lines: list[str], name: str) -> str | None:
    """The raw value of the first property `name` directly in a component's
    lines (a VTIMEZONE's TZID, before icalendar reads it), or None."""
    depth = 0
    for line in lines[1:-1]:
        keyword = line[:6].upper()
        if keyword == "BEGIN:":
            depth += 1
        elif keyword[:4] == "END:":
            depth -= 1
        elif depth == 0:
            found = _NAME.match(line)
            if found and found.group().upper() == name:
                head = _HEAD.match(line)
                return line[head.end():] if head else None
    return None
