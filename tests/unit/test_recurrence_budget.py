"""Recurrence expansion is bounded in work, not only in results: a rule that
never matches is searched only as far as the horizon, every step is paid from
a budget one request shares, and the bounded search gives exactly dateutil's
occurrences for the rules people use. Work is counted in steps (months or
years searched, occurrences produced), deterministic on any machine."""
import itertools
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr

from services.events import recurrence

MONDAY = datetime(2027, 3, 1, 17, 0, tzinfo=UTC)
# Reading the rule, the moves its search may make before it is past the
# horizon, two reads and one step of slack: what a rule that never matches may cost.
MOST_STEPS_WITHOUT_A_MATCH = recurrence.RULE_READING_STEPS + 12 * recurrence.MAX_SERIES_YEARS + 5


def steps_of(rule, starts_at=MONDAY, timezone="UTC"):
    """(steps spent, occurrences or the refusal's message)."""
    budget = recurrence.Budget()
    try:
        found = recurrence.expand(recurrence.normalise_rule(rule), starts_at, timezone, budget)
    except recurrence.InvalidRule as exc:
        found = str(exc)
    return recurrence.REQUEST_BUDGET - budget.steps, found


def dateutil_reference(rule, starts_at, timezone):
    """dateutil's own occurrences, capped as expand() caps them (only for
    rules that do reach the horizon quickly)."""
    horizon = starts_at + timedelta(days=366 * recurrence.MAX_SERIES_YEARS)
    found = []
    for moment in rrulestr(rule, dtstart=starts_at.astimezone(ZoneInfo(timezone))):
        moment = moment.astimezone(UTC)
        if moment > horizon or len(found) == recurrence.MAX_OCCURRENCES:
            break
        found.append(moment)
    return found


RULES_PEOPLE_USE = [
    "FREQ=DAILY", "FREQ=DAILY;INTERVAL=3;COUNT=40", "FREQ=WEEKLY;BYDAY=MO,WE",
    "FREQ=WEEKLY;INTERVAL=2;WKST=SU;BYDAY=TU,SU", "FREQ=DAILY;COUNT=30;UNTIL=20270315T000000Z",
    "FREQ=MONTHLY;BYDAY=-1FR", "FREQ=MONTHLY;BYMONTHDAY=31", "FREQ=MONTHLY;INTERVAL=7;BYDAY=2TU",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "FREQ=YEARLY;INTERVAL=2", "FREQ=YEARLY;BYMONTH=3,10;BYDAY=-1SU",
    "FREQ=DAILY;UNTIL=20280101T000000Z", "FREQ=YEARLY;BYDAY=53MO", "FREQ=MONTHLY;BYDAY=5SU;BYMONTH=2",
    "FREQ=DAILY;INTERVAL=97;BYMONTH=2;BYMONTHDAY=29",
]
STARTS = [MONDAY, datetime(2028, 2, 29, 8, tzinfo=UTC), datetime(2027, 1, 31, 23, 30, tzinfo=UTC),
          datetime(2027, 12, 31, 23, tzinfo=UTC)]


@pytest.mark.filterwarnings("ignore:Using both 'count' and 'until'")  # dateutil, reading the reference
@pytest.mark.parametrize("rule", RULES_PEOPLE_USE)
def test_the_bounded_search_finds_exactly_what_dateutil_finds(rule):
    for starts_at, zone in itertools.product(STARTS, ("UTC", "Europe/Paris", "Pacific/Auckland")):
        expected = dateutil_reference(rule, starts_at, zone)
        _, found = steps_of(rule, starts_at, zone)
        assert found == (expected or found), (rule, starts_at, zone)
        assert expected or "no occurrence" in found


# Each of these made dateutil search period after period to the year 9999
# (0.4 to 0.7 s of event-loop CPU each), or long past the last occurrence.
NEVER_OR_RARELY_MATCHING = [
    ("FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=30", datetime(2027, 2, 10, tzinfo=UTC)),
    ("FREQ=DAILY;INTERVAL=97;BYMONTH=2;BYMONTHDAY=29", datetime(2027, 2, 10, tzinfo=UTC)),
    ("FREQ=DAILY;INTERVAL=2;BYMONTH=2;BYMONTHDAY=29", datetime(2027, 2, 10, tzinfo=UTC)),
    ("FREQ=YEARLY;INTERVAL=100;BYMONTH=2;BYMONTHDAY=29", datetime(2027, 2, 10, tzinfo=UTC)),
    ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;COUNT=1000", MONDAY),
    ("FREQ=MONTHLY;BYDAY=5SU;BYMONTH=2", MONDAY),
    ("FREQ=WEEKLY;INTERVAL=52;BYMONTH=2;BYDAY=MO", datetime(2027, 3, 1, tzinfo=UTC)),
    ("FREQ=YEARLY;BYDAY=53FR", datetime(2027, 1, 1, tzinfo=UTC)),
]


@pytest.mark.parametrize("rule, starts_at", NEVER_OR_RARELY_MATCHING)
def test_a_search_without_matches_ends_at_the_horizon(rule, starts_at):
    spent, found = steps_of(rule, starts_at)
    occurrences = 0 if isinstance(found, str) else len(found)
    # Searched past the horizon (so dateutil still calls the hook once per
    # month searched), and no further.
    assert 6 <= spent - occurrences - recurrence.RULE_READING_STEPS, (rule, spent)
    assert spent - occurrences <= MOST_STEPS_WITHOUT_A_MATCH, (rule, spent)
    if isinstance(found, str):
        assert found == "The rule yields no occurrence within 5 years of the first one."


def test_every_rule_costs_a_bounded_number_of_steps():
    for rule, starts_at in itertools.product(RULES_PEOPLE_USE + [rule for rule, _ in NEVER_OR_RARELY_MATCHING],
                                              STARTS):
        spent, _ = steps_of(rule, starts_at)
        assert spent <= recurrence.MAX_OCCURRENCES + MOST_STEPS_WITHOUT_A_MATCH, rule


def test_one_budget_bounds_a_whole_request_and_refuses_the_rule_that_exhausts_it():
    budget = recurrence.Budget()
    expanded = 0
    with pytest.raises(recurrence.BudgetExhausted) as refusal:
        for _ in range(500):
            recurrence.expand("FREQ=DAILY", MONDAY, "Europe/Paris", budget)
            expanded += 1
    assert 150 < expanded < 200  # reading, 500 occurrences and 18 months searched each
    assert "100,000 steps" in str(refusal.value)
    # A refusal like any other: callers that refuse an InvalidRule refuse this.
    assert isinstance(refusal.value, recurrence.InvalidRule)


def test_five_hundred_rules_that_never_match_cost_less_than_one_rule_that_does():
    budget = recurrence.Budget()
    for _ in range(500):
        with pytest.raises(recurrence.InvalidRule):
            recurrence.expand("FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=30", datetime(2027, 2, 10, tzinfo=UTC), "UTC",
                              budget)
    assert recurrence.REQUEST_BUDGET - budget.steps <= 500 * MOST_STEPS_WITHOUT_A_MATCH


@pytest.mark.parametrize("rule", [
    # Impossible nth weekdays: more than 5 of a weekday in a month, 53 in a year.
    "FREQ=MONTHLY;BYDAY=6MO", "FREQ=MONTHLY;BYDAY=-6MO", "FREQ=YEARLY;BYDAY=54MO", "FREQ=YEARLY;BYMONTH=2;BYDAY=53MO",
    "FREQ=YEARLY;BYMONTH=2;BYDAY=6MO", "FREQ=MONTHLY;BYDAY=99MO", "FREQ=MONTHLY;BYDAY=+99999999999999999999MO",
    "FREQ=MONTHLY;BYDAY=0MO", "FREQ=WEEKLY;BYDAY=1MO", "FREQ=DAILY;BYDAY=-1FR",
    # Every other value range-checked before dateutil sees it.
    "FREQ=YEARLY;BYMONTH=13", "FREQ=YEARLY;BYMONTH=0", "FREQ=MONTHLY;BYMONTHDAY=32", "FREQ=MONTHLY;BYMONTHDAY=0",
    "FREQ=MONTHLY;BYMONTHDAY=-32", "FREQ=DAILY;COUNT=0", "FREQ=DAILY;COUNT=-3", "FREQ=DAILY;COUNT=9999999",
    "FREQ=DAILY;INTERVAL=1,2", "FREQ=DAILY;INTERVAL=0", "FREQ=DAILY;UNTIL=tomorrow", "FREQ=DAILY;UNTIL=20270230",
    "FREQ=DAILY;UNTIL=2027-03-01", "FREQ=DAILY;UNTIL=99999999T999999Z", "FREQ=WEEKLY;WKST=XX",
    "FREQ=WEEKLY;BYDAY=MO,MO", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
    # Repeated parts: the allow-list would read the first FREQ, dateutil the last.
    "FREQ=DAILY;FREQ=MINUTELY", "FREQ=WEEKLY;COUNT=2;COUNT=3", "FREQ=WEEKLY;BYDAY=MO;BYDAY=TU",
])
def test_impossible_and_out_of_range_parts_are_refused_before_dateutil(rule):
    with pytest.raises(recurrence.InvalidRule):
        recurrence.normalise_rule(rule)


def test_until_as_a_date_or_a_floating_time_is_read_in_the_event_zone():
    all_day = datetime(2027, 1, 4, tzinfo=UTC)
    # Google and Outlook end an all-day series with a date: that day is the last.
    starts = recurrence.expand("FREQ=WEEKLY;UNTIL=20270201", all_day, "UTC")
    assert starts[-1] == datetime(2027, 2, 1, tzinfo=UTC) and len(starts) == 5
    paris_evening = datetime(2027, 1, 4, 17, tzinfo=UTC)  # 18:00 in Paris
    assert recurrence.expand("FREQ=DAILY;UNTIL=20270106T180000", paris_evening, "Europe/Paris")[-1] == \
        datetime(2027, 1, 6, 17, tzinfo=UTC)
    assert len(recurrence.expand("FREQ=DAILY;UNTIL=20270106T165959Z", paris_evening, "Europe/Paris")) == 2
    # An UNTIL at the end of time is the horizon, and does not overflow.
    assert len(recurrence.expand("FREQ=YEARLY;UNTIL=99991231T235959Z", paris_evening, "Pacific/Kiritimati")) == 6


def test_a_time_zone_rule_from_1601_is_searched_near_the_moment_only():
    standard = timezone(timedelta(hours=2))
    first = datetime(1601, 10, 28, 3, tzinfo=standard)  # as Outlook writes it
    budget = recurrence.Budget()
    onsets = recurrence.recent_onsets("FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10", first,
                                      datetime(2027, 12, 31, 23, 59, tzinfo=standard), budget)
    # The year before and the year itself, all the latest onset before a moment of 2027 needs.
    assert onsets[0] == first and onsets[-2:] == [datetime(2026, 10, 25, 3, tzinfo=standard),
                                                  datetime(2027, 10, 31, 3, tzinfo=standard)]
    assert recurrence.REQUEST_BUDGET - budget.steps < recurrence.RULE_READING_STEPS + 12
    ended = recurrence.recent_onsets("FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10;UNTIL=20061029T010000Z", first,
                                     datetime(2027, 7, 1, tzinfo=standard), budget)
    assert ended[-1] == datetime(2006, 10, 29, 3, tzinfo=standard)
    assert recurrence.recent_onsets("FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU", first,
                                    datetime(1600, 1, 1, tzinfo=standard), budget) == []


@pytest.mark.parametrize("rule", [
    "FREQ=SECONDLY", "FREQ=DAILY", "FREQ=YEARLY;COUNT=3", "FREQ=YEARLY;INTERVAL=2",
    "FREQ=YEARLY;BYMONTH=2;BYDAY=5SU",  # matches once in 28 years
])
def test_time_zone_rules_must_be_yearly_and_recur_every_year(rule):
    start = datetime(1601, 1, 1, tzinfo=UTC)
    budget = recurrence.Budget()
    with pytest.raises(recurrence.InvalidRule):
        recurrence.recent_onsets(rule, start, datetime(2027, 7, 1, tzinfo=UTC), budget)
    assert recurrence.REQUEST_BUDGET - budget.steps < recurrence.RULE_READING_STEPS + 12
