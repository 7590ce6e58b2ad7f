"""The SLA module: when a first answer is due, counted on a library's open hours.

Pure, no database. Dates are in 2026: Monday 2 March; the US clocks spring
forward on Sunday 8 March and fall back on Sunday 1 November.
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libraries.hours import (
    Closure,
    LibraryHours,
    SpecialDay,
    WeeklySpan,
    is_open,
    open_spans_between,
)
from tickets import sla

CHICAGO = ZoneInfo("America/Chicago")
DAY = timedelta(hours=24)


def local(day: str, clock: str, zone: ZoneInfo = CHICAGO) -> datetime:
    return datetime.combine(date.fromisoformat(day), time.fromisoformat(clock), zone)


def weekdays(opens: str = "09:00", closes: str = "17:00", **kwargs) -> LibraryHours:
    return LibraryHours(
        timezone="America/Chicago",
        weekly=tuple(
            WeeklySpan(day, time.fromisoformat(opens), time.fromisoformat(closes))
            for day in range(5)
        ),
        **kwargs,
    )


def every_day(opens: str, closes: str) -> LibraryHours:
    return LibraryHours(
        timezone="America/Chicago",
        weekly=tuple(
            WeeklySpan(day, time.fromisoformat(opens), time.fromisoformat(closes))
            for day in range(7)
        ),
    )


SPLIT = LibraryHours(
    timezone="America/Chicago",
    weekly=tuple(
        span
        for day in range(5)
        for span in (
            WeeklySpan(day, time(9), time(12)),
            WeeklySpan(day, time(13), time(17)),
        )
    ),
)


@pytest.mark.parametrize(
    ("created_at", "promise", "hours", "expected"),
    [
        pytest.param(
            local("2026-03-02", "09:00"),
            DAY,
            weekdays(),
            local("2026-03-04", "17:00"),
            id="three-working-days-from-opening",
        ),
        pytest.param(
            local("2026-03-02", "13:00"),
            DAY,
            weekdays(),
            local("2026-03-05", "13:00"),
            id="created-mid-day",
        ),
        pytest.param(
            local("2026-03-06", "15:00"),
            DAY,
            weekdays(),
            local("2026-03-11", "15:00"),
            id="weekend-does-not-count",
        ),
        pytest.param(
            local("2026-03-07", "10:00"),
            DAY,
            weekdays(),
            local("2026-03-11", "17:00"),
            id="created-on-saturday-counts-from-monday",
        ),
        pytest.param(
            local("2026-03-02", "20:30"),
            timedelta(hours=8),
            weekdays(),
            local("2026-03-03", "17:00"),
            id="created-after-closing-counts-from-next-opening",
        ),
        pytest.param(
            local("2026-03-02", "17:00"),
            timedelta(hours=8),
            weekdays(),
            local("2026-03-03", "17:00"),
            id="created-at-closing-time",
        ),
        pytest.param(
            local("2026-03-02", "09:00"),
            DAY,
            weekdays(closures=(Closure(date(2026, 3, 3), date(2026, 3, 3)),)),
            local("2026-03-05", "17:00"),
            id="holiday-skipped",
        ),
        pytest.param(
            local("2026-03-06", "16:00"),
            timedelta(hours=4),
            weekdays(closures=(Closure(date(2026, 3, 9), date(2026, 3, 13)),)),
            local("2026-03-16", "12:00"),
            id="week-long-closure-after-a-weekend",
        ),
        pytest.param(
            local("2026-03-02", "09:00"),
            timedelta(hours=10),
            weekdays(special=(SpecialDay(date(2026, 3, 2), ((time(9), time(11)),)),)),
            local("2026-03-03", "17:00"),
            id="short-special-day",
        ),
        pytest.param(
            local("2026-03-02", "11:00"),
            timedelta(hours=3),
            SPLIT,
            local("2026-03-02", "15:00"),
            id="lunch-break-does-not-count",
        ),
        pytest.param(
            local("2026-03-07", "12:00"),
            DAY,
            every_day("00:00", "00:00"),
            local("2026-03-08", "13:00"),
            id="dst-spring-24h-days-count-real-time",
        ),
        pytest.param(
            local("2026-03-07", "22:00"),
            timedelta(hours=8),
            every_day("22:00", "06:00"),
            local("2026-03-08", "23:00"),
            id="dst-spring-overnight-shift-lasts-7-hours",
        ),
        pytest.param(
            local("2026-10-31", "22:00"),
            timedelta(hours=9),
            every_day("22:00", "06:00"),
            local("2026-11-01", "06:00"),
            id="dst-fall-overnight-shift-lasts-9-hours",
        ),
        pytest.param(
            local("2026-10-31", "22:00"),
            timedelta(hours=8),
            every_day("22:00", "06:00"),
            local("2026-11-01", "05:00"),
            id="dst-fall-inside-the-long-night",
        ),
        pytest.param(
            local("2026-03-03", "03:00"),
            timedelta(hours=4),
            every_day("22:00", "06:00"),
            local("2026-03-03", "23:00"),
            id="created-inside-an-overnight-span",
        ),
        pytest.param(
            local("2026-03-07", "10:00"),
            DAY,
            None,
            local("2026-03-08", "11:00"),
            id="no-hours-is-calendar-time-across-dst",
        ),
        pytest.param(
            local("2026-03-07", "10:00"),
            DAY,
            LibraryHours(timezone="America/Chicago", always_open=True),
            local("2026-03-08", "11:00"),
            id="always-open-is-calendar-time",
        ),
        pytest.param(
            local("2026-03-07", "10:00"),
            DAY,
            LibraryHours(timezone="America/Chicago"),
            local("2026-03-08", "11:00"),
            id="no-weekly-hours-is-calendar-time",
        ),
        pytest.param(
            local("2026-03-02", "09:00"),
            DAY,
            weekdays(closures=(Closure(date(2026, 1, 1), date(2028, 1, 1)),)),
            local("2026-03-03", "09:00"),
            id="closed-beyond-the-horizon-falls-back-to-calendar-time",
        ),
    ],
)
def test_first_answer_due(created_at, promise, hours, expected):
    due = sla.first_answer_due(created_at=created_at, sla=promise, hours=hours)
    assert due == expected
    assert due.tzinfo is UTC


def test_first_answer_due_refuses_naive_datetimes():
    with pytest.raises(ValueError, match="aware"):
        sla.first_answer_due(
            created_at=datetime(2026, 3, 2, 9),  # noqa: DTZ001
            sla=DAY,
            hours=weekdays(),
        )


@pytest.mark.parametrize(
    ("share", "expected"),
    [
        pytest.param(0.5, local("2026-03-03", "13:00"), id="half-of-24-open-hours"),
        pytest.param(0.75, local("2026-03-04", "11:00"), id="three-quarters"),
        pytest.param(0.0, local("2026-03-02", "09:00"), id="zero-share-is-at-once"),
        pytest.param(
            2.0, local("2026-03-04", "17:00"), id="share-capped-at-the-promise"
        ),
    ],
)
def test_pool_due_counts_a_share_of_open_time(share, expected):
    due = sla.pool_due(
        created_at=local("2026-03-02", "09:00"), sla=DAY, hours=weekdays(), share=share
    )
    assert due == expected


def test_deadlines_are_ordered_pool_risk_due():
    deadlines = sla.deadlines(
        created_at=local("2026-03-06", "16:00"),
        sla=DAY,
        hours=weekdays(),
        pool_share=0.5,
        risk_share=0.75,
    )
    assert deadlines == sla.SlaDeadlines(
        pool_at=local("2026-03-10", "12:00"),
        risk_at=local("2026-03-11", "10:00"),
        due_by=local("2026-03-11", "16:00"),
    )


RISK = local("2026-03-04", "11:00")
DUE = local("2026-03-04", "17:00")


@pytest.mark.parametrize(
    ("now", "answered", "closed", "expected"),
    [
        pytest.param(
            local("2026-03-03", "10:00"), False, False, "on_track", id="early"
        ),
        pytest.param(RISK, False, False, "at_risk", id="at-the-risk-moment"),
        pytest.param(
            DUE - timedelta(seconds=1), False, False, "at_risk", id="just-before-due"
        ),
        pytest.param(DUE, False, False, "overdue", id="at-the-due-moment"),
        pytest.param(
            DUE + DAY, True, False, "answered", id="answered-late-is-answered"
        ),
        pytest.param(DUE + DAY, False, True, "closed", id="closed-unanswered"),
    ],
)
def test_sla_state(now, answered, closed, expected):
    state = sla.sla_state(
        now=now, risk_at=RISK, due_by=DUE, answered=answered, closed=closed
    )
    assert state == expected


@settings(max_examples=200, deadline=None)
@given(
    created_at=st.datetimes(
        min_value=datetime(2026, 1, 1),  # noqa: DTZ001
        max_value=datetime(2026, 12, 31),  # noqa: DTZ001
        timezones=st.just(CHICAGO),
    ),
    hours_promised=st.integers(min_value=1, max_value=72),
    hours=st.sampled_from([weekdays(), SPLIT, every_day("22:00", "06:00")]),
)
def test_exactly_the_promised_open_time_passes_before_the_due_moment(
    created_at, hours_promised, hours
):
    promise = timedelta(hours=hours_promised)

    due = sla.first_answer_due(created_at=created_at, sla=promise, hours=hours)

    spans = open_spans_between(hours, created_at, due)
    assert sum((s.duration for s in spans), timedelta()) == promise
    assert is_open(hours, due - timedelta(microseconds=1))  # due while open
