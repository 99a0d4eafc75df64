"""Recurring events: validating an RRULE and expanding it into occurrences.

Occurrences are computed in the event's own timezone, so "every Monday at
18:00 Europe/Paris" stays at 18:00 across daylight-saving changes. Expansion is
always capped: a rule yields at most MAX_OCCURRENCES occurrences within
MAX_SERIES_YEARS of its first one, whatever it says.
"""
import re
import warnings
from datetime import UTC, timedelta
from itertools import islice
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from dateutil.rrule import rrulestr

MAX_OCCURRENCES = 500
MAX_SERIES_YEARS = 5
MAX_RULE_LENGTH = 500
# Sub-daily rules (every minute...) only serve to generate floods of occurrences.
ALLOWED_FREQUENCIES = {"DAILY", "WEEKLY", "MONTHLY", "YEARLY"}
_FREQ = re.compile(r"(?:^|;)FREQ=([A-Z]+)(?:;|$)")
# dateutil searches an unsatisfiable rule until the year 9999 before giving up,
# and no deadline can interrupt that loop: only parts whose emptiness can be
# checked up front are accepted.
ALLOWED_PARTS = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "WKST"}
MAX_INTERVAL = 100
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_WEEKDAY = re.compile(r"([+-]?[1-9][0-9]?)?(MO|TU|WE|TH|FR|SA|SU)")


class InvalidRule(ValueError):
    pass


_TIMEZONES = None


def valid_timezone(name):
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


def normalise_rule(text):
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
    _check_weekdays(match.group(1), parts)
    if match.group(1) == "DAILY" and "BYDAY" in parts and parts.get("INTERVAL", "1") != "1":
        # Every 7th day on Mondays never matches from a Tuesday start.
        raise InvalidRule("With FREQ=DAILY, BYDAY needs INTERVAL=1; use FREQ=WEEKLY.")
    _check_month_days(parts.get("BYMONTH"), parts.get("BYMONTHDAY"))
    return rule


def _integers(text, name):
    try:
        return [int(value) for value in text.split(",")]
    except ValueError:
        raise InvalidRule(f"{name} must be a list of integers.") from None


def _check_interval(text):
    if text is not None and not all(1 <= value <= MAX_INTERVAL for value in _integers(text, "INTERVAL")):
        raise InvalidRule(f"INTERVAL must be 1 to {MAX_INTERVAL}.")


def _check_weekdays(frequency, parts):
    """BYDAY is a list of weekdays, each with an ordinal only where one can
    exist: the nth weekday of a month (1 to 5) or of a year (1 to 53)."""
    text = parts.get("BYDAY")
    if text is None:
        return
    ordinals = []
    for token in text.split(","):
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


def _check_month_days(months_text, days_text):
    if months_text is None or days_text is None:
        return
    months, days = _integers(months_text, "BYMONTH"), _integers(days_text, "BYMONTHDAY")
    if not any(
        1 <= month <= 12 and 1 <= abs(day) <= _DAYS_IN_MONTH[month - 1]
        for month in months for day in days
    ):
        raise InvalidRule("BYMONTH and BYMONTHDAY never match a date.")


def _horizon(starts_at):
    return starts_at + timedelta(days=366 * MAX_SERIES_YEARS)


def _rule(rule, starts_at, timezone):
    local_start = starts_at.astimezone(ZoneInfo(timezone))
    try:
        parsed = rrulestr(rule, dtstart=local_start, forceset=False)
        # A rule that can never match (FREQ=DAILY;BYMONTH=2;BYMONTHDAY=31)
        # would be searched until the year 9999: bound the search itself.
        horizon = _horizon(starts_at).astimezone(local_start.tzinfo)
        until = parsed._until
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # COUNT with UNTIL
            return parsed.replace(until=horizon if until is None else min(until, horizon))
    except (ValueError, TypeError, OverflowError, AttributeError, IndexError) as exc:
        raise InvalidRule(f"Not a valid RRULE: {exc}") from None


def _capped(rule, starts_at):
    horizon = _horizon(starts_at)
    for moment in islice(iter(rule), MAX_OCCURRENCES):
        moment = moment.astimezone(UTC)
        if moment > horizon:
            return
        yield moment


def expand(rule, starts_at, timezone):
    """Every occurrence start (UTC) of a series within the cap, in order;
    InvalidRule if the rule cannot be read or yields nothing."""
    try:
        starts = list(_capped(_rule(rule, starts_at, timezone), starts_at))
    except (ValueError, TypeError, OverflowError, IndexError) as exc:
        raise InvalidRule(f"Not a valid RRULE: {exc}") from None
    if not starts:
        raise InvalidRule("The rule yields no occurrence.")
    return starts


def check_rule(rule, starts_at, timezone):
    """The start (UTC) of the last occurrence within the cap; InvalidRule if the
    rule cannot be read or yields nothing."""
    return expand(rule, starts_at, timezone)[-1]


def occurrence_starts(rule, starts_at, timezone, window_start, window_end):
    """Starts (UTC) of the occurrences with window_start <= start < window_end."""
    if rule is None:
        return [starts_at] if window_start <= starts_at < window_end else []
    starts = []
    for moment in _capped(_rule(rule, starts_at, timezone), starts_at):
        if moment >= window_end:
            break
        if moment >= window_start:
            starts.append(moment)
    return starts
