"""Recurring events: validating an RRULE and expanding it into occurrences.

Occurrences are computed in the event's own timezone, so "every Monday at
18:00 Europe/Paris" stays at 18:00 across daylight-saving changes. Expansion is
always capped: a rule yields at most MAX_OCCURRENCES occurrences within
MAX_SERIES_YEARS of its first one, whatever it says.

Expansion is bounded in work too, not only in results. dateutil compares UNTIL
only with a date that matches every part of the rule, so a rule whose parts
never match (FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=30 from a February start), or
match again only centuries after the horizon, has it search period after
period until the year 9999. Here that search ends as soon as everything ahead
of it lies past the horizon, and each step of it (a month or a year searched,
an occurrence produced) is paid from a Budget: a request that expands many
rules (an import) shares one budget among them, and the rule that exhausts it
is refused.
"""
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from dateutil import rrule as dateutil_rrule

MAX_OCCURRENCES = 500
MAX_SERIES_YEARS = 5
# Steps of expansion work one request may do in all. One rule costs at most
# RULE_READING_STEPS + MAX_OCCURRENCES + 12 * MAX_SERIES_YEARS + 4, so this is
# enough for 160 daily series without an end, or 270 weekly ones: about 0.3 s
# of CPU.
REQUEST_BUDGET = 100_000
# Reading a rule and setting up its search costs about as much CPU as this
# many steps (a VTIMEZONE's rules are read once per zone and year).
RULE_READING_STEPS = 50
MAX_RULE_LENGTH = 500
# Sub-daily rules (every minute...) only serve to generate floods of occurrences.
ALLOWED_FREQUENCIES = {"DAILY", "WEEKLY", "MONTHLY", "YEARLY"}
_FREQ = re.compile(r"(?:^|;)FREQ=([A-Z]+)(?:;|$)")
# Parts whose combinations can be checked up front; the others (BYSETPOS,
# BYYEARDAY, BYWEEKNO, BYEASTER, sub-daily parts) are refused.
ALLOWED_PARTS = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "WKST"}
MAX_INTERVAL = 100
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_WEEKDAY = re.compile(r"([+-]?[1-9][0-9]?)?(MO|TU|WE|TH|FR|SA|SU)")
_WEEKDAYS = {"MO": dateutil_rrule.MO, "TU": dateutil_rrule.TU, "WE": dateutil_rrule.WE, "TH": dateutil_rrule.TH,
             "FR": dateutil_rrule.FR, "SA": dateutil_rrule.SA, "SU": dateutil_rrule.SU}
_FREQUENCIES = {"DAILY": dateutil_rrule.DAILY, "WEEKLY": dateutil_rrule.WEEKLY,
                "MONTHLY": dateutil_rrule.MONTHLY, "YEARLY": dateutil_rrule.YEARLY}
# RFC 5545 forms only: a date, a floating date-time, a UTC date-time.
_UNTIL = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})(?:T([0-9]{2})([0-9]{2})([0-9]{2})(Z?))?")
_COUNT = re.compile(r"[0-9]{1,6}")

# year, month, day, hour, minute, second
DateTimeFields = tuple[int, int, int, int, int, int]


class InvalidRule(ValueError):
    pass


class BudgetExhausted(InvalidRule):
    """The request has done all the expansion work it may."""


class Budget:
    """Steps of expansion work a request may still do: each month or year of
    the calendar searched, and each occurrence produced, costs one."""

    def __init__(self, steps: int = REQUEST_BUDGET) -> None:
        self.steps = steps

    def spend(self, steps: int = 1) -> None:
        self.steps -= steps
        if self.steps < 0:
            raise BudgetExhausted(
                f"Expanding the recurring events of one request is limited to {REQUEST_BUDGET:,} steps "
                "(occurrences and months searched), and this one needs more: send fewer recurring events at once."
            )


_TIMEZONES: set[str] | None = None


def valid_timezone(name: str) -> bool:
    """True for an IANA timezone name (as zoneinfo knows them)."""
    global _TIMEZONES
    if _TIMEZONES is None:
        _TIMEZONES = available_timezones() | {"UTC"}
    if name not in _TIMEZONES:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


# Reading a rule ------------------------------------------------------------------------

def normalise_rule(text: str) -> str:
    """The rule without an "RRULE:" prefix, upper-cased; InvalidRule if unusable."""
    rule = text.strip()
    if rule.upper().startswith("RRULE:"):
        rule = rule[6:]
    rule = rule.upper()
    if not rule or len(rule) > MAX_RULE_LENGTH or any(char in rule for char in "\r\n"):
        raise InvalidRule(f"Must be a single RRULE line of at most {MAX_RULE_LENGTH} characters.")
    match = _FREQ.search(rule)
    if not match:
        raise InvalidRule("FREQ is required.")
    if match.group(1) not in ALLOWED_FREQUENCIES:
        raise InvalidRule("FREQ must be one of DAILY, WEEKLY, MONTHLY, YEARLY.")
    pairs = [part.partition("=")[::2] for part in rule.split(";") if part]
    parts = dict(pairs)
    if len(parts) != len(pairs):
        # The check above reads the first FREQ, dateutil the last.
        raise InvalidRule("Each rule part may appear once.")
    unknown = sorted(set(parts) - ALLOWED_PARTS)
    if unknown:
        raise InvalidRule("Unsupported rule parts: {}.".format(", ".join(unknown)))
    _check_interval(parts.get("INTERVAL"))
    _check_count(parts.get("COUNT"))
    _check_until(parts.get("UNTIL"))
    if parts.get("WKST", "MO") not in _WEEKDAYS:
        raise InvalidRule("WKST must be a weekday (MO, TU, WE, TH, FR, SA, SU).")
    _check_weekdays(match.group(1), parts)
    if match.group(1) == "DAILY" and "BYDAY" in parts and parts.get("INTERVAL", "1") != "1":
        # Every 7th day on Mondays never matches from a Tuesday start.
        raise InvalidRule("With FREQ=DAILY, BYDAY needs INTERVAL=1; use FREQ=WEEKLY.")
    _check_months(parts.get("BYMONTH"))
    _check_month_days(parts.get("BYMONTH"), parts.get("BYMONTHDAY"))
    return rule


def _parts(rule: str) -> dict[str, str]:
    return dict(part.partition("=")[::2] for part in rule.split(";") if part)


def _integers(text: str, name: str) -> list[int]:
    try:
        values = [int(value) for value in text.split(",")]
    except ValueError:
        raise InvalidRule(f"{name} must be a list of integers.") from None
    if len(values) != len(set(values)):
        raise InvalidRule(f"{name} lists a value twice.")
    return values


def _check_interval(text: str | None) -> None:
    if text is not None and not (_COUNT.fullmatch(text) and 1 <= int(text) <= MAX_INTERVAL):
        raise InvalidRule(f"INTERVAL must be 1 to {MAX_INTERVAL}.")


def _check_count(text: str | None) -> None:
    if text is not None and not (_COUNT.fullmatch(text) and int(text) >= 1):
        raise InvalidRule("COUNT must be a whole number from 1 to 999999.")


def _check_until(text: str | None) -> None:
    if text is not None:
        _until_fields(text)


def _until_fields(text: str) -> tuple[DateTimeFields, str]:
    """(datetime fields, form) of an UNTIL value: form is "date", "local" or "utc"."""
    found = _UNTIL.fullmatch(text)
    if not found:
        raise InvalidRule("UNTIL must be a date (20270131) or a date-time (20270131T180000Z).")
    year, month, day, hour, minute, second, utc = found.groups()
    fields = (int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    try:
        datetime(*fields)
    except ValueError:
        raise InvalidRule("UNTIL is not a real date.") from None
    return fields, "date" if hour is None else ("utc" if utc else "local")


def _check_weekdays(frequency: str, parts: dict[str, str]) -> None:
    """BYDAY is a list of weekdays, each with an ordinal only where one can
    exist: the nth weekday of a month (1 to 5) or of a year (1 to 53)."""
    text = parts.get("BYDAY")
    if text is None:
        return
    ordinals: list[int] = []
    tokens = text.split(",")
    if len(tokens) != len(set(tokens)):
        raise InvalidRule("BYDAY lists a day twice.")
    for token in tokens:
        found = _WEEKDAY.fullmatch(token)
        if not found:
            raise InvalidRule("BYDAY must list weekdays (MO, TU, WE, TH, FR, SA, SU), each with an optional ordinal.")
        if found.group(1):
            ordinals.append(int(found.group(1)))
    if not ordinals:
        return
    if frequency not in ("MONTHLY", "YEARLY"):
        raise InvalidRule("An ordinal in BYDAY (2MO) needs FREQ=MONTHLY or FREQ=YEARLY.")
    most = 53 if frequency == "YEARLY" and "BYMONTH" not in parts else 5
    if not all(1 <= abs(ordinal) <= most for ordinal in ordinals):
        raise InvalidRule(f"A BYDAY ordinal is 1 to {most} (or -1 to -{most}) here.")
    if "BYMONTHDAY" in parts:
        # "The first Monday that is the 8th" never happens, and dateutil would
        # search for it until the year 9999.
        raise InvalidRule("BYDAY with an ordinal cannot be combined with BYMONTHDAY.")


def _check_months(text: str | None) -> None:
    if text is not None and not all(1 <= month <= 12 for month in _integers(text, "BYMONTH")):
        raise InvalidRule("BYMONTH must list months from 1 to 12.")


def _check_month_days(months_text: str | None, days_text: str | None) -> None:
    if days_text is None:
        return
    days = _integers(days_text, "BYMONTHDAY")
    if not all(1 <= abs(day) <= 31 for day in days):
        raise InvalidRule("BYMONTHDAY must list days from 1 to 31 (or -1 to -31).")
    if months_text is None:
        return
    if not any(abs(day) <= _DAYS_IN_MONTH[month - 1] for month in _integers(months_text, "BYMONTH") for day in days):
        raise InvalidRule("BYMONTH and BYMONTHDAY never match a date.")


# Expanding a rule -----------------------------------------------------------------------

class _SearchPassedHorizon(Exception):
    """dateutil's search has moved past every date that could still count."""


class _BoundedRule(dateutil_rrule.rrule):
    """dateutil's rrule, whose search for the next occurrence ends after a
    given number of moves and pays each move from a Budget.

    dateutil's rrule._iter() hands the search over to _iterinfo.rebuild()
    whenever it moves on to another month (DAILY, WEEKLY) or period (MONTHLY,
    YEARLY), and rebuild() reads the rule's `_byeaster` each time, even for a
    period without a single match. BYEASTER is never accepted here, so that
    attribute is free to count the moves: a rule that matches nothing gets as
    far as the horizon, never as far as the year 9999.
    (tests/unit/test_recurrence_budget.py holds dateutil to this.)"""

    def __init__(self, moves: int, budget: Budget, **arguments: Any) -> None:
        # _iter() reads the attribute once, and the first rebuild() once, before any move.
        self._reads_allowed = moves + 2
        self._reads_left = self._reads_allowed
        self._budget = budget
        super().__init__(**arguments)

    def _iter(self) -> Iterator[datetime]:
        self._reads_left = self._reads_allowed
        # Private to dateutil, so its stubs leave it out.
        return super()._iter()  # type: ignore[misc, no-any-return]

    @property
    def _byeaster(self) -> None:
        self._reads_left -= 1
        if self._reads_left < 0:
            raise _SearchPassedHorizon
        self._budget.spend()
        return None

    @_byeaster.setter
    def _byeaster(self, value: object) -> None:
        if value is not None:
            raise InvalidRule("BYEASTER is not supported.")


def _moves_within(frequency: str, years: int) -> int:
    """Moves after which the search has left a span of `years`: each move is
    at least a month, or a year for FREQ=YEARLY; two more cover the span
    starting mid-period and ending past its last day."""
    return years + 2 if frequency == "YEARLY" else 12 * years + 2


def _horizon(starts_at: datetime) -> datetime:
    return starts_at + timedelta(days=366 * MAX_SERIES_YEARS)


def _until(parts: dict[str, str], zone: tzinfo | None) -> datetime:
    """UNTIL as an aware datetime. A UTC value is exact; a floating one is a
    wall time in the event's zone, and a date covers the whole of its day
    (calendars send dates for all-day series)."""
    fields, form = _until_fields(parts["UNTIL"])
    if form == "utc":
        return datetime(*fields, tzinfo=UTC)
    if form == "date":
        fields = (*fields[:3], 23, 59, 59)
    return datetime(*fields, tzinfo=zone)


def _arguments(parts: dict[str, str], dtstart: datetime, until: datetime | None) -> dict[str, Any]:
    """dateutil.rrule's arguments for a normalised rule's parts (UNTIL given
    apart: RFC 5545 forbids it with COUNT, dateutil warns, some files do it)."""
    arguments: dict[str, Any] = {
        "freq": _FREQUENCIES[parts["FREQ"]], "dtstart": dtstart,
        "interval": int(parts.get("INTERVAL", "1")), "wkst": _WEEKDAYS[parts.get("WKST", "MO")],
    }
    if "COUNT" in parts:
        arguments["count"] = int(parts["COUNT"])
    else:
        arguments["until"] = until
    if "BYMONTH" in parts:
        arguments["bymonth"] = _integers(parts["BYMONTH"], "BYMONTH")
    if "BYMONTHDAY" in parts:
        arguments["bymonthday"] = _integers(parts["BYMONTHDAY"], "BYMONTHDAY")
    if "BYDAY" in parts:
        days = []
        for token in parts["BYDAY"].split(","):
            found = _WEEKDAY.fullmatch(token)
            assert found is not None, "normalise_rule has checked every BYDAY token"
            ordinal, day = found.groups()
            days.append(_WEEKDAYS[day](int(ordinal)) if ordinal else _WEEKDAYS[day])
        arguments["byweekday"] = days
    return arguments


def _rule(rule: str, starts_at: datetime, timezone: str, budget: Budget) -> tuple[_BoundedRule, datetime]:
    """(the rule's occurrences as dateutil computes them, in local time, with
    a search that stops past the horizon; the last start that may count)."""
    budget.spend(RULE_READING_STEPS)
    try:
        parts = _parts(normalise_rule(rule))
        zone = ZoneInfo(timezone)
        until = _until(parts, zone) if "UNTIL" in parts else None
        horizon = _horizon(starts_at)
        if until is not None and until >= horizon:
            until = None  # the horizon ends the series first; comparing with year 9999 could overflow
        arguments = _arguments(parts, starts_at.astimezone(zone), until)
        occurrences = _BoundedRule(_moves_within(parts["FREQ"], MAX_SERIES_YEARS), budget, **arguments)
        return occurrences, horizon if until is None else min(horizon, until)
    except (ValueError, TypeError, OverflowError, KeyError, ZoneInfoNotFoundError) as exc:
        if isinstance(exc, InvalidRule):
            raise
        raise InvalidRule(f"Not a valid RRULE: {exc}") from None


def _capped(rule: str, starts_at: datetime, timezone: str, budget: Budget) -> Iterator[datetime]:
    occurrences, last = _rule(rule, starts_at, timezone, budget)
    found = iter(occurrences)
    while True:
        try:
            moment = next(found)
        except (StopIteration, _SearchPassedHorizon):
            return
        moment = moment.astimezone(UTC)
        if moment > last:
            return
        budget.spend()
        yield moment


def expand(rule: str, starts_at: datetime, timezone: str, budget: Budget | None = None) -> list[datetime]:
    """Every occurrence start (UTC) of a series within the cap, in order;
    InvalidRule if the rule cannot be read, yields nothing, or the budget
    (one request's; a fresh one if none is given) runs out."""
    budget = Budget() if budget is None else budget
    try:
        starts = list(islice(_capped(rule, starts_at, timezone, budget), MAX_OCCURRENCES))
    except (ValueError, TypeError, OverflowError, IndexError) as exc:
        if isinstance(exc, InvalidRule):
            raise
        raise InvalidRule(f"Not a valid RRULE: {exc}") from None
    if not starts:
        raise InvalidRule(f"The rule yields no occurrence within {MAX_SERIES_YEARS} years of the first one.")
    return starts


def check_rule(rule: str, starts_at: datetime, timezone: str, budget: Budget | None = None) -> datetime:
    """The start (UTC) of the last occurrence within the cap; InvalidRule if the
    rule cannot be read or yields nothing."""
    return expand(rule, starts_at, timezone, budget)[-1]


# Time zone rules -------------------------------------------------------------------------

def recent_onsets(rule: str, first_onset: datetime, through: datetime, budget: Budget) -> list[datetime]:
    """The onsets of a VTIMEZONE observance (first at `first_onset`, then by
    a yearly `rule`; datetimes in the observance's fixed offset) from two
    years before `through` (or before the rule's UNTIL, if earlier) up to it:
    enough to find the latest onset before any moment of the last year.

    The rule is searched over those years only, not from its first onset
    (often 1601): a yearly rule without COUNT, and without an INTERVAL other
    than 1, falls on the same dates every year, provided it does match every
    year, as time zone rules do; one that does not is refused."""
    budget.spend(RULE_READING_STEPS)
    parts = _parts(normalise_rule(rule))
    if parts["FREQ"] != "YEARLY" or "COUNT" in parts or parts.get("INTERVAL", "1") != "1":
        raise InvalidRule("A VTIMEZONE rule must be FREQ=YEARLY, without COUNT, and every year.")
    if through < first_onset:
        return []
    until = _until(parts, first_onset.tzinfo) if "UNTIL" in parts else None
    end = through if until is None else min(through, until)
    search_from, shifted = first_onset, end.year - 2 > first_onset.year
    if shifted:
        try:
            search_from = first_onset.replace(year=end.year - 2)
        except ValueError:
            raise InvalidRule("A VTIMEZONE rule cannot start on 29 February.") from None
    found: list[datetime] = []
    onsets = _BoundedRule(_moves_within("YEARLY", 3), budget, **_arguments(parts, search_from, until))
    try:
        for onset in onsets:
            if onset > end:
                break
            budget.spend()
            found.append(onset)
    except _SearchPassedHorizon:
        pass
    if not found and shifted:
        raise InvalidRule("A VTIMEZONE rule must recur every year.")
    return [first_onset] + [onset for onset in found if onset > first_onset]
