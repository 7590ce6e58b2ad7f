"""Opening hours: table tests per rule, then properties over random schedules.

Datetimes from one zone compare by wall time in Python, so on fall-back nights
every comparison here goes through UTC.
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libraries.hours import (
    Closure,
    LibraryHours,
    OpenSpan,
    SpecialDay,
    WeeklySpan,
    hours_on,
    is_open,
    next_opening,
    open_spans_between,
    open_until,
    validate_spans,
)

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)
CHICAGO = "America/Chicago"
NEW_YORK = "America/New_York"
LONDON = "Europe/London"
SYDNEY = "Australia/Sydney"
SECOND = timedelta(seconds=1)
# The week of Monday 2 June 2025 has no clock change anywhere used here.


def t(text: str) -> time:
    return time.fromisoformat(text)


def weekly(weekday: int, opens: str, closes: str) -> WeeklySpan:
    return WeeklySpan(weekday, t(opens), t(closes))


def weekdays(opens: str, closes: str) -> tuple[WeeklySpan, ...]:
    return tuple(weekly(d, opens, closes) for d in (MON, TUE, WED, THU, FRI))


def library(*spans: WeeklySpan, tz: str = CHICAGO, **kwargs) -> LibraryHours:
    return LibraryHours(tz, weekly=spans, **kwargs)


def special(day: str, *spans: tuple[str, str]) -> SpecialDay:
    return SpecialDay(date.fromisoformat(day), tuple((t(a), t(b)) for a, b in spans))


def closure(first: str, last: str) -> Closure:
    return Closure(date.fromisoformat(first), date.fromisoformat(last))


def local(text: str, tz: str = CHICAGO, fold: int = 0) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz), fold=fold)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def in_utc(spans: list[OpenSpan]) -> list[tuple[datetime, datetime]]:
    return [(s.opens.astimezone(UTC), s.closes.astimezone(UTC)) for s in spans]


def pairs(*spans: tuple[datetime, datetime]) -> list[tuple[datetime, datetime]]:
    return [(a.astimezone(UTC), b.astimezone(UTC)) for a, b in spans]


SPLIT = library(weekly(MON, "09:00", "12:00"), weekly(MON, "13:00", "17:00"))
FRIDAY_NIGHT = library(weekly(FRI, "20:00", "02:00"))
MONDAY_24H = library(weekly(MON, "00:00", "00:00"))
NINE_TO_FIVE = library(*weekdays("09:00", "17:00"))
LATE_MONDAY = library(
    weekly(MON, "18:00", "00:00"),
    weekly(TUE, "00:00", "02:00"),
    *weekdays("09:00", "17:00"),
)


@pytest.mark.parametrize(
    ("hours", "at", "expected"),
    [
        pytest.param(SPLIT, local("2025-06-02T11:59"), True, id="split-morning"),
        pytest.param(SPLIT, local("2025-06-02T12:00"), False, id="split-closes-excl"),
        pytest.param(SPLIT, local("2025-06-02T12:30"), False, id="split-lunch"),
        pytest.param(SPLIT, local("2025-06-02T13:00"), True, id="split-opens-incl"),
        pytest.param(SPLIT, local("2025-06-02T17:00"), False, id="split-evening"),
        pytest.param(
            FRIDAY_NIGHT, local("2025-06-06T20:00"), True, id="overnight-opens"
        ),
        pytest.param(
            FRIDAY_NIGHT, local("2025-06-07T01:00"), True, id="overnight-sat-1am"
        ),
        pytest.param(
            FRIDAY_NIGHT, local("2025-06-07T02:00"), False, id="overnight-sat-2am"
        ),
        pytest.param(
            FRIDAY_NIGHT, local("2025-06-06T19:59"), False, id="overnight-before"
        ),
        pytest.param(MONDAY_24H, local("2025-06-02T00:00"), True, id="24h-midnight"),
        pytest.param(MONDAY_24H, local("2025-06-02T23:59:59"), True, id="24h-late"),
        pytest.param(MONDAY_24H, local("2025-06-03T00:00"), False, id="24h-ends"),
        pytest.param(
            library(
                *weekdays("09:00", "17:00"),
                closures=(closure("2025-06-02", "2025-06-02"),),
            ),
            local("2025-06-02T10:00"),
            False,
            id="closure-day",
        ),
        pytest.param(
            library(
                weekly(FRI, "20:00", "02:00"),
                closures=(closure("2025-06-07", "2025-06-08"),),
            ),
            local("2025-06-06T23:59:59"),
            True,
            id="closure-next-day-keeps-evening",
        ),
        pytest.param(
            library(
                weekly(FRI, "20:00", "02:00"),
                closures=(closure("2025-06-07", "2025-06-08"),),
            ),
            local("2025-06-07T01:00"),
            False,
            id="closure-cuts-overnight",
        ),
        pytest.param(
            library(
                *weekdays("09:00", "17:00"),
                special=(special("2025-06-02", ("12:00", "14:00")),),
            ),
            local("2025-06-02T10:00"),
            False,
            id="special-replaces-weekly",
        ),
        pytest.param(
            library(
                *weekdays("09:00", "17:00"),
                special=(special("2025-06-02", ("12:00", "14:00")),),
            ),
            local("2025-06-02T13:00"),
            True,
            id="special-hours-open",
        ),
        pytest.param(
            library(*weekdays("09:00", "17:00"), special=(special("2025-06-02"),)),
            local("2025-06-02T10:00"),
            False,
            id="special-day-closed",
        ),
        pytest.param(
            library(weekly(FRI, "20:00", "02:00"), special=(special("2025-06-07"),)),
            local("2025-06-07T01:00"),
            True,
            id="special-closed-keeps-overnight-from-eve",
        ),
        pytest.param(
            library(always_open=True, closures=(closure("2025-06-01", "2025-06-30"),)),
            local("2025-06-15T03:00"),
            True,
            id="always-open-ignores-closures",
        ),
        pytest.param(
            NINE_TO_FIVE, utc("2025-06-02T14:00"), True, id="utc-input-9am-cdt"
        ),
        pytest.param(
            NINE_TO_FIVE, utc("2025-06-02T13:59"), False, id="utc-input-before"
        ),
        pytest.param(
            NINE_TO_FIVE, utc("2025-06-02T22:00"), False, id="utc-input-5pm-cdt"
        ),
        pytest.param(
            NINE_TO_FIVE,
            local("2025-06-02T02:00", "Asia/Tokyo"),
            False,
            id="tokyo-input",
        ),
        pytest.param(
            NINE_TO_FIVE,
            local("2025-06-03T02:00", "Asia/Tokyo"),
            True,
            id="tokyo-input-open",
        ),
        # New York springs forward Sun 9 March 2025 02:00 EST -> 03:00 EDT.
        pytest.param(
            library(weekly(SUN, "02:30", "05:00"), tz=NEW_YORK),
            utc("2025-03-09T06:59:59"),
            False,
            id="ny-spring-gap-not-yet",
        ),
        pytest.param(
            library(weekly(SUN, "02:30", "05:00"), tz=NEW_YORK),
            utc("2025-03-09T07:00"),
            True,
            id="ny-spring-gap-opens-at-3am-edt",
        ),
        # New York falls back Sun 2 November 2025 02:00 EDT -> 01:00 EST.
        pytest.param(
            library(weekly(SUN, "01:30", "03:00"), tz=NEW_YORK),
            local("2025-11-02T01:15", NEW_YORK, fold=1),
            True,
            id="ny-fall-back-second-1am",
        ),
        pytest.param(
            library(weekly(SUN, "01:30", "03:00"), tz=NEW_YORK),
            utc("2025-11-02T05:29"),
            False,
            id="ny-fall-back-before-first-1-30",
        ),
        # London springs forward Sun 30 March 2025 01:00 GMT -> 02:00 BST.
        pytest.param(
            library(weekly(SAT, "22:00", "06:00"), tz=LONDON),
            utc("2025-03-30T04:59"),
            True,
            id="london-overnight-spring",
        ),
        pytest.param(
            library(weekly(SAT, "22:00", "06:00"), tz=LONDON),
            utc("2025-03-30T05:00"),
            False,
            id="london-overnight-spring-closes",
        ),
        # Sydney falls back Sun 6 April 2025 03:00 AEDT -> 02:00 AEST.
        pytest.param(
            library(weekly(SAT, "22:00", "06:00"), tz=SYDNEY),
            utc("2025-04-05T19:59"),
            True,
            id="sydney-overnight-fall-back",
        ),
        pytest.param(
            library(weekly(SAT, "22:00", "06:00"), tz=SYDNEY),
            utc("2025-04-05T20:00"),
            False,
            id="sydney-overnight-fall-back-closes",
        ),
    ],
)
def test_is_open(hours, at, expected):
    assert is_open(hours, at) is expected


@pytest.mark.parametrize(
    ("hours", "day", "expected"),
    [
        pytest.param(
            SPLIT,
            "2025-06-02",
            pairs(
                (local("2025-06-02T09:00"), local("2025-06-02T12:00")),
                (local("2025-06-02T13:00"), local("2025-06-02T17:00")),
            ),
            id="split-shift",
        ),
        pytest.param(
            library(weekly(MON, "13:00", "17:00"), weekly(MON, "09:00", "12:00")),
            "2025-06-02",
            pairs(
                (local("2025-06-02T09:00"), local("2025-06-02T12:00")),
                (local("2025-06-02T13:00"), local("2025-06-02T17:00")),
            ),
            id="sorted",
        ),
        pytest.param(
            library(weekly(MON, "09:00", "12:00"), weekly(MON, "12:00", "17:00")),
            "2025-06-02",
            pairs((local("2025-06-02T09:00"), local("2025-06-02T17:00"))),
            id="adjacent-merged",
        ),
        pytest.param(
            library(weekly(MON, "09:00", "13:00"), weekly(MON, "12:00", "17:00")),
            "2025-06-02",
            pairs((local("2025-06-02T09:00"), local("2025-06-02T17:00"))),
            id="overlapping-merged",
        ),
        pytest.param(
            library(weekly(MON, "00:00", "00:00"), weekly(MON, "20:00", "02:00")),
            "2025-06-02",
            pairs((local("2025-06-02T00:00"), local("2025-06-03T02:00"))),
            id="24h-merged-with-overnight",
        ),
        pytest.param(
            FRIDAY_NIGHT,
            "2025-06-06",
            pairs((local("2025-06-06T20:00"), local("2025-06-07T02:00"))),
            id="overnight-ends-next-day",
        ),
        pytest.param(FRIDAY_NIGHT, "2025-06-07", [], id="overnight-not-on-next-day"),
        pytest.param(
            MONDAY_24H,
            "2025-06-02",
            pairs((local("2025-06-02T00:00"), local("2025-06-03T00:00"))),
            id="24h",
        ),
        pytest.param(
            library(always_open=True, closures=(closure("2025-06-02", "2025-06-02"),)),
            "2025-06-02",
            pairs((local("2025-06-02T00:00"), local("2025-06-03T00:00"))),
            id="always-open",
        ),
        pytest.param(
            library(
                weekly(FRI, "20:00", "02:00"),
                closures=(closure("2025-06-07", "2025-06-07"),),
            ),
            "2025-06-06",
            pairs((local("2025-06-06T20:00"), local("2025-06-07T00:00"))),
            id="closure-cuts-overnight",
        ),
        pytest.param(
            library(
                *weekdays("09:00", "17:00"),
                closures=(closure("2025-06-01", "2025-06-03"),),
            ),
            "2025-06-03",
            [],
            id="closure-day",
        ),
        pytest.param(
            library(
                *weekdays("09:00", "17:00"),
                special=(special("2025-06-07", ("10:00", "14:00")),),
            ),
            "2025-06-07",
            pairs((local("2025-06-07T10:00"), local("2025-06-07T14:00"))),
            id="special-opens-saturday",
        ),
        pytest.param(
            library(*weekdays("09:00", "17:00"), special=(special("2025-06-02"),)),
            "2025-06-02",
            [],
            id="special-closed",
        ),
        pytest.param(
            library(weekly(SUN, "02:30", "05:00"), tz=NEW_YORK),
            "2025-03-09",
            pairs((utc("2025-03-09T07:00"), utc("2025-03-09T09:00"))),
            id="ny-gap-opens-3am-edt",
        ),
        pytest.param(
            library(weekly(SUN, "02:00", "02:30"), tz=NEW_YORK),
            "2025-03-09",
            [],
            id="ny-span-inside-gap-is-empty",
        ),
        pytest.param(
            library(weekly(SUN, "01:30", "02:00"), tz=NEW_YORK),
            "2025-11-02",
            pairs((utc("2025-11-02T05:30"), utc("2025-11-02T07:00"))),
            id="ny-ambiguous-opens-first-1-30",
        ),
        pytest.param(
            library(weekly(SUN, "01:30", "03:00"), tz=LONDON),
            "2025-03-30",
            pairs((utc("2025-03-30T01:00"), utc("2025-03-30T02:00"))),
            id="london-gap-opens-2am-bst",
        ),
        pytest.param(
            library(weekly(SUN, "01:30", "03:00"), tz=LONDON),
            "2025-10-26",
            pairs((utc("2025-10-26T00:30"), utc("2025-10-26T03:00"))),
            id="london-ambiguous-first-occurrence",
        ),
        # Sydney springs forward Sun 5 October 2025 02:00 AEST -> 03:00 AEDT.
        pytest.param(
            library(weekly(SUN, "02:30", "04:00"), tz=SYDNEY),
            "2025-10-05",
            pairs((utc("2025-10-04T16:00"), utc("2025-10-04T17:00"))),
            id="sydney-gap-opens-3am-aedt",
        ),
        pytest.param(
            library(weekly(SUN, "02:30", "04:00"), tz=SYDNEY),
            "2025-04-06",
            pairs((utc("2025-04-05T15:30"), utc("2025-04-05T18:00"))),
            id="sydney-ambiguous-first-occurrence",
        ),
    ],
)
def test_hours_on(hours, day, expected):
    assert in_utc(hours_on(hours, date.fromisoformat(day))) == expected


@pytest.mark.parametrize(
    ("tz", "span", "day", "real_hours"),
    [
        pytest.param(
            NEW_YORK, (SUN, "09:00", "17:00"), "2025-03-09", 8, id="ny-day-spring"
        ),
        pytest.param(
            NEW_YORK, (SAT, "22:00", "06:00"), "2025-03-08", 7, id="ny-night-spring"
        ),
        pytest.param(
            NEW_YORK, (SAT, "22:00", "06:00"), "2025-11-01", 9, id="ny-night-fall"
        ),
        pytest.param(
            NEW_YORK, (SUN, "00:00", "00:00"), "2025-03-09", 23, id="ny-24h-spring"
        ),
        pytest.param(
            NEW_YORK, (SUN, "00:00", "00:00"), "2025-11-02", 25, id="ny-24h-fall"
        ),
        pytest.param(
            LONDON, (SUN, "09:00", "17:00"), "2025-10-26", 8, id="london-day-fall"
        ),
        pytest.param(
            LONDON, (SAT, "22:00", "06:00"), "2025-03-29", 7, id="london-night-spring"
        ),
        pytest.param(
            LONDON, (SAT, "22:00", "06:00"), "2025-10-25", 9, id="london-night-fall"
        ),
        pytest.param(
            SYDNEY, (SUN, "09:00", "17:00"), "2025-10-05", 8, id="sydney-day-spring"
        ),
        pytest.param(
            SYDNEY, (SAT, "22:00", "06:00"), "2025-10-04", 7, id="sydney-night-spring"
        ),
        pytest.param(
            SYDNEY, (SAT, "22:00", "06:00"), "2025-04-05", 9, id="sydney-night-fall"
        ),
    ],
)
def test_span_lasts_real_elapsed_time_across_clock_changes(tz, span, day, real_hours):
    [opened] = hours_on(library(weekly(*span), tz=tz), date.fromisoformat(day))
    assert opened.duration == timedelta(hours=real_hours)


def test_spans_are_in_the_library_zone():
    [opened] = hours_on(NINE_TO_FIVE, date(2025, 6, 2))
    assert opened.opens.tzinfo == ZoneInfo(CHICAGO)
    assert opened.opens.utcoffset() == timedelta(hours=-5)


HOLIDAYS = library(
    *weekdays("09:00", "17:00"), closures=(closure("2025-06-02", "2025-06-04"),)
)


@pytest.mark.parametrize(
    ("hours", "after", "expected"),
    [
        pytest.param(
            NINE_TO_FIVE,
            local("2025-06-06T18:00"),
            local("2025-06-09T09:00"),
            id="weekend",
        ),
        pytest.param(
            NINE_TO_FIVE,
            local("2025-06-02T08:59:59"),
            local("2025-06-02T09:00"),
            id="same-day",
        ),
        pytest.param(
            HOLIDAYS,
            local("2025-05-30T18:00"),
            local("2025-06-05T09:00"),
            id="holiday-block",
        ),
        pytest.param(
            NINE_TO_FIVE,
            local("2025-06-06T10:00"),
            local("2025-06-09T09:00"),
            id="open-now",
        ),
        pytest.param(
            NINE_TO_FIVE,
            local("2025-06-02T09:00"),
            local("2025-06-03T09:00"),
            id="at-opening",
        ),
        pytest.param(
            SPLIT, local("2025-06-02T10:00"), local("2025-06-02T13:00"), id="split"
        ),
        pytest.param(
            LATE_MONDAY,
            local("2025-06-02T23:00"),
            local("2025-06-03T09:00"),
            id="midnight-is-not-an-opening",
        ),
        pytest.param(
            NINE_TO_FIVE,
            utc("2025-06-06T23:00"),
            local("2025-06-09T09:00"),
            id="utc-input",
        ),
        pytest.param(
            library(weekly(SUN, "02:30", "05:00"), tz=NEW_YORK),
            local("2025-03-08T12:00", NEW_YORK),
            utc("2025-03-09T07:00"),
            id="into-spring-gap",
        ),
        pytest.param(library(), local("2025-06-02T09:00"), None, id="never-opens"),
        pytest.param(
            library(always_open=True), local("2025-06-02T09:00"), None, id="always-open"
        ),
        pytest.param(
            library(
                *weekdays("09:00", "17:00"),
                closures=(closure("2025-01-01", "2027-12-31"),),
            ),
            local("2025-06-02T09:00"),
            None,
            id="closed-beyond-horizon",
        ),
    ],
)
def test_next_opening(hours, after, expected):
    found = next_opening(hours, after)
    if expected is None:
        assert found is None
    else:
        assert found.astimezone(UTC) == expected.astimezone(UTC)
        assert found.tzinfo == ZoneInfo(hours.timezone)


@pytest.mark.parametrize(
    ("hours", "at", "expected"),
    [
        pytest.param(
            NINE_TO_FIVE, local("2025-06-02T10:00"), local("2025-06-02T17:00"), id="day"
        ),
        pytest.param(
            LATE_MONDAY,
            local("2025-06-02T20:00"),
            local("2025-06-03T02:00"),
            id="merged-across-midnight",
        ),
        pytest.param(
            FRIDAY_NIGHT,
            local("2025-06-07T01:00"),
            local("2025-06-07T02:00"),
            id="from-eve",
        ),
        pytest.param(
            library(
                weekly(FRI, "20:00", "02:00"),
                closures=(closure("2025-06-07", "2025-06-07"),),
            ),
            local("2025-06-06T22:00"),
            local("2025-06-07T00:00"),
            id="cut-by-closure",
        ),
        pytest.param(
            library(weekly(MON, "00:00", "00:00"), weekly(TUE, "00:00", "00:00")),
            local("2025-06-02T12:00"),
            local("2025-06-04T00:00"),
            id="two-24h-days",
        ),
        pytest.param(
            NINE_TO_FIVE, local("2025-06-02T17:00"), None, id="closed-at-closing"
        ),
        pytest.param(NINE_TO_FIVE, local("2025-06-07T12:00"), None, id="closed"),
        pytest.param(
            library(always_open=True), local("2025-06-02T12:00"), None, id="always-open"
        ),
        pytest.param(
            library(*(weekly(d, "00:00", "00:00") for d in range(7))),
            local("2025-06-02T12:00"),
            None,
            id="no-end-within-horizon",
        ),
    ],
)
def test_open_until(hours, at, expected):
    found = open_until(hours, at)
    if expected is None:
        assert found is None
    else:
        assert found.astimezone(UTC) == expected.astimezone(UTC)


@pytest.mark.parametrize(
    ("hours", "start", "end", "expected"),
    [
        pytest.param(
            NINE_TO_FIVE,
            local("2025-06-02T12:00"),
            local("2025-06-04T10:00"),
            pairs(
                (local("2025-06-02T12:00"), local("2025-06-02T17:00")),
                (local("2025-06-03T09:00"), local("2025-06-03T17:00")),
                (local("2025-06-04T09:00"), local("2025-06-04T10:00")),
            ),
            id="clipped-both-ends",
        ),
        pytest.param(
            FRIDAY_NIGHT,
            local("2025-06-07T00:00"),
            local("2025-06-07T12:00"),
            pairs((local("2025-06-07T00:00"), local("2025-06-07T02:00"))),
            id="starts-inside-eve-overnight",
        ),
        pytest.param(
            LATE_MONDAY,
            local("2025-06-02T00:00"),
            local("2025-06-03T12:00"),
            pairs(
                (local("2025-06-02T09:00"), local("2025-06-02T17:00")),
                (local("2025-06-02T18:00"), local("2025-06-03T02:00")),
                (local("2025-06-03T09:00"), local("2025-06-03T12:00")),
            ),
            id="merged-across-midnight",
        ),
        pytest.param(
            library(always_open=True),
            utc("2025-06-02T03:00"),
            utc("2025-06-05T03:00"),
            pairs((utc("2025-06-02T03:00"), utc("2025-06-05T03:00"))),
            id="always-open-is-the-window",
        ),
        pytest.param(
            NINE_TO_FIVE,
            local("2025-06-07T00:00"),
            local("2025-06-09T00:00"),
            [],
            id="weekend",
        ),
        pytest.param(
            NINE_TO_FIVE,
            local("2025-06-02T12:00"),
            local("2025-06-02T12:00"),
            [],
            id="empty",
        ),
        pytest.param(
            NINE_TO_FIVE,
            local("2025-06-03T12:00"),
            local("2025-06-02T12:00"),
            [],
            id="reversed",
        ),
    ],
)
def test_open_spans_between(hours, start, end, expected):
    assert in_utc(open_spans_between(hours, start, end)) == expected


def test_open_hours_over_a_week_with_a_spring_forward_night():
    hours = library(*(weekly(d, "22:00", "06:00") for d in range(7)), tz=NEW_YORK)
    spans = open_spans_between(
        hours, local("2025-03-03T00:00", NEW_YORK), local("2025-03-10T00:00", NEW_YORK)
    )
    total = sum((s.duration for s in spans), timedelta())
    # 6 on Monday morning, 8 a night, 2 on Sunday night, minus the lost hour
    assert total == timedelta(hours=6 + 6 * 8 + 2 - 1)


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        pytest.param([("09:00", "12:00"), ("13:00", "17:00")], [], id="split-shift"),
        pytest.param([("09:00", "12:00"), ("12:00", "17:00")], [], id="touching"),
        pytest.param([("20:00", "02:00")], [], id="overnight-is-legal"),
        pytest.param(
            [("01:00", "03:00"), ("20:00", "02:00")], [], id="next-day-not-checked"
        ),
        pytest.param([("00:00", "00:00")], [], id="24h"),
        pytest.param([], [], id="none"),
        pytest.param(
            [("11:00", "13:00"), ("09:00", "12:00")],
            ["09:00–12:00 overlaps 11:00–13:00"],
            id="overlap",
        ),
        pytest.param(
            [("09:00", "12:00"), ("09:00", "12:00")],
            ["09:00–12:00 overlaps 09:00–12:00"],
            id="duplicate",
        ),
        pytest.param(
            [("20:00", "02:00"), ("21:00", "23:00")],
            ["20:00–02:00 overlaps 21:00–23:00"],
            id="overnight-overlaps-evening",
        ),
        pytest.param(
            [("09:00", "09:00")],
            ["09:00–09:00 is empty; use 00:00–00:00 for open around the clock"],
            id="empty-span",
        ),
        pytest.param(
            [("00:00", "00:00"), ("09:00", "12:00")],
            [
                "00:00–00:00 means open around the clock and cannot be combined "
                "with other hours on the same day"
            ],
            id="24h-with-others",
        ),
        pytest.param(
            [("00:00", "00:00"), ("00:00", "00:00")],
            [
                "00:00–00:00 means open around the clock and cannot be combined "
                "with other hours on the same day"
            ],
            id="two-24h",
        ),
    ],
)
def test_validate_spans(spans, expected):
    assert validate_spans([(t(a), t(b)) for a, b in spans]) == expected


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda at: is_open(NINE_TO_FIVE, at), id="is_open"),
        pytest.param(lambda at: next_opening(NINE_TO_FIVE, at), id="next_opening"),
        pytest.param(lambda at: open_until(NINE_TO_FIVE, at), id="open_until"),
        pytest.param(lambda at: open_spans_between(NINE_TO_FIVE, at, at), id="between"),
    ],
)
def test_naive_datetime_is_refused(call):
    with pytest.raises(ValueError, match="aware"):
        call(datetime(2025, 6, 2, 10, 0))  # noqa: DTZ001


# Properties. Schedules are drawn around clock-change days, on a half-hour grid so
# spans touch and collide often; instants fall on quarter hours or anywhere.

ZONES = [
    NEW_YORK,
    LONDON,
    SYDNEY,
    "America/Santiago",  # springs forward at midnight: some days have no 00:00
    "Australia/Lord_Howe",  # half-hour clock changes
    "Asia/Kolkata",
    "UTC",
]
ANCHORS = [
    date(2025, 3, 9),
    date(2025, 11, 2),
    date(2025, 3, 30),
    date(2025, 10, 26),
    date(2025, 4, 6),
    date(2025, 10, 5),
    date(2025, 9, 7),
    date(2025, 6, 15),
]
wall_times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 30]))
wall_spans = st.tuples(wall_times, wall_times)


@st.composite
def schedules(draw) -> tuple[LibraryHours, datetime]:
    anchor = draw(st.sampled_from(ANCHORS))
    near = st.integers(-4, 4).map(lambda n: anchor + timedelta(days=n))
    closures = draw(
        st.lists(
            st.builds(
                lambda d, n: Closure(d, d + timedelta(days=n)), near, st.integers(0, 3)
            ),
            max_size=2,
        )
    )
    hours = LibraryHours(
        timezone=draw(st.sampled_from(ZONES)),
        weekly=tuple(
            draw(
                st.lists(
                    st.builds(WeeklySpan, st.integers(0, 6), wall_times, wall_times),
                    max_size=8,
                )
            )
        ),
        special=tuple(
            draw(
                st.lists(
                    st.builds(
                        SpecialDay, near, st.lists(wall_spans, max_size=2).map(tuple)
                    ),
                    max_size=2,
                    unique_by=lambda s: s.day,
                )
            )
        ),
        closures=tuple(closures),
        always_open=draw(st.integers(0, 19)) == 0,
    )
    return hours, datetime.combine(anchor, time(), UTC) - timedelta(days=3)


@st.composite
def instants(draw, origin: datetime, zone: str) -> datetime:
    seconds = draw(
        st.one_of(
            st.integers(0, 6 * 96).map(lambda q: q * 900), st.integers(0, 6 * 86400)
        )
    )
    moment = origin + timedelta(seconds=seconds)
    return moment.astimezone(ZoneInfo(zone)) if draw(st.booleans()) else moment


@st.composite
def cases(draw, count: int = 1):
    hours, origin = draw(schedules())
    return hours, [draw(instants(origin, hours.timezone)) for _ in range(count)]


fractions = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=5)


def covered(spans: list[OpenSpan], at: datetime) -> bool:
    at = at.astimezone(UTC)
    return any(s.opens.astimezone(UTC) <= at < s.closes.astimezone(UTC) for s in spans)


@settings(max_examples=300, deadline=None)
@given(cases())
def test_is_open_agrees_with_hours_on(case):
    hours, [at] = case
    today = at.astimezone(ZoneInfo(hours.timezone)).date()
    spans = hours_on(hours, today - timedelta(days=1)) + hours_on(hours, today)
    assert is_open(hours, at) == covered(spans, at)
    if any(c.first <= today <= c.last for c in hours.closures):
        assert is_open(hours, at) == hours.always_open


# Arithmetic below is done in UTC: in a zone with clock changes, aware datetime
# plus timedelta moves the wall clock, not the instant.


@settings(max_examples=150, deadline=None)
@given(cases(), fractions)
def test_next_opening_is_the_next_start_and_nothing_opens_before_it(case, samples):
    hours, [after] = case
    after = after.astimezone(UTC)
    found = next_opening(hours, after)
    if found is None:
        assert hours.always_open or not hours.weekly
        limit = after + timedelta(days=7)
    else:
        found = found.astimezone(UTC)
        assert found > after
        assert is_open(hours, found)
        assert not is_open(hours, found - SECOND)
        following = next_opening(hours, found)  # open at `found`: the period after
        assert following is None or following.astimezone(UTC) > found
        limit = found
    if not is_open(hours, after):
        for fraction in samples:
            assert not is_open(hours, after + (limit - SECOND - after) * fraction)


@settings(max_examples=150, deadline=None)
@given(cases(), fractions)
def test_open_until_ends_the_current_period(case, samples):
    hours, [at] = case
    at = at.astimezone(UTC)
    until = open_until(hours, at)
    if until is None:
        assert not is_open(hours, at) or hours.always_open or len(hours.weekly) >= 7
        return
    until = until.astimezone(UTC)
    assert is_open(hours, at)
    assert not is_open(hours, until)
    for fraction in samples:
        assert is_open(hours, at + (until - SECOND - at) * fraction)


@settings(max_examples=150, deadline=None)
@given(cases(count=2), fractions)
def test_open_spans_between_are_sorted_disjoint_and_open(case, samples):
    hours, moments = case
    start, end = sorted(m.astimezone(UTC) for m in moments)
    spans = open_spans_between(hours, start, end)
    bounds = in_utc(spans)
    for opens, closes in bounds:
        assert start <= opens < closes <= end
        assert is_open(hours, opens + (closes - opens) / 2)
    for (_, closes), (opens, _) in zip(bounds, bounds[1:], strict=False):
        assert closes < opens
    for fraction in samples:
        probe = start + (end - start) * fraction
        if probe < end:
            assert is_open(hours, probe) == covered(spans, probe)
