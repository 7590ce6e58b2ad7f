"""When a ticket's first answer is due, and how its SLA stands at an instant.

Pure: plain values in, plain values out; the standard library and
`libraries.hours` only, no Django, no clock.

Rules
- The promise is a duration of *service time*. When the owning library has
  hours, only its open time counts (``hours.open_spans_between``), so a
  24-hour promise at a library open 09:00–17:00 on weekdays takes three
  working days, and weekends, holidays (closures) and nights do not count.
- Open time is real elapsed time (``OpenSpan.duration``): a 22:00–06:00 shift
  across a spring-forward night counts 7 hours, not 8.
- A ticket created while the library is closed starts counting when it next
  opens. One created while open counts from creation.
- With no hours (``None``), a library that is always open, or a library with
  no weekly or special hours at all, the promise is calendar time.
- A library closed for longer than ``HORIZON`` falls back to calendar time
  rather than promising nothing.
- The pool and at-risk moments are the same computation with a share of the
  promise: past ``pool_share`` of it unanswered the ticket joins the shared
  pool, past ``risk_share`` it is at risk, past all of it it is overdue.
- Every returned datetime is aware and in UTC.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from libraries.hours import LibraryHours, open_spans_between

HORIZON = timedelta(days=366)
_WINDOW = timedelta(days=21)

type SlaState = Literal["answered", "closed", "on_track", "at_risk", "overdue"]


@dataclass(frozen=True)
class SlaDeadlines:
    """The moments a ticket joins the pool, becomes at risk and becomes overdue."""

    pool_at: datetime
    risk_at: datetime
    due_by: datetime


def first_answer_due(
    *, created_at: datetime, sla: timedelta, hours: LibraryHours | None
) -> datetime:
    """Return when the first answer is due: ``sla`` of the library's open time."""
    start = _utc(created_at)
    if sla <= timedelta(0):
        return start
    if not _counts_open_time(hours):
        return start + sla
    remaining = sla
    window_start = start
    while window_start - start < HORIZON:
        window_end = window_start + _WINDOW
        for span in open_spans_between(hours, window_start, window_end):
            if span.duration >= remaining:
                return span.opens.astimezone(UTC) + remaining
            remaining -= span.duration
        window_start = window_end
    return start + sla


def deadlines(
    *,
    created_at: datetime,
    sla: timedelta,
    hours: LibraryHours | None,
    pool_share: float,
    risk_share: float,
) -> SlaDeadlines:
    """Return the pool, at-risk and due moments of a ticket created at ``created_at``."""
    return SlaDeadlines(
        pool_at=pool_due(created_at=created_at, sla=sla, hours=hours, share=pool_share),
        risk_at=pool_due(created_at=created_at, sla=sla, hours=hours, share=risk_share),
        due_by=first_answer_due(created_at=created_at, sla=sla, hours=hours),
    )


def pool_due(
    *, created_at: datetime, sla: timedelta, hours: LibraryHours | None, share: float
) -> datetime:
    """Return when ``share`` (0..1) of the promise has passed unanswered."""
    share = min(max(share, 0.0), 1.0)
    return first_answer_due(created_at=created_at, sla=sla * share, hours=hours)


def at_risk(*, now: datetime, risk_at: datetime, answered: bool) -> bool:
    """Is an unanswered ticket past its at-risk moment?"""
    return not answered and _utc(now) >= _utc(risk_at)


def sla_state(
    *,
    now: datetime,
    risk_at: datetime,
    due_by: datetime,
    answered: bool,
    closed: bool = False,
) -> SlaState:
    """Say where a ticket stands against its promise, for badges and filters."""
    if answered:
        return "answered"
    if closed:
        return "closed"
    if _utc(now) >= _utc(due_by):
        return "overdue"
    if at_risk(now=now, risk_at=risk_at, answered=answered):
        return "at_risk"
    return "on_track"


def _counts_open_time(hours: LibraryHours | None) -> bool:
    if hours is None or hours.always_open:
        return False
    return bool(hours.weekly) or any(day.spans for day in hours.special)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"expected an aware datetime, got {moment!r}")
    return moment.astimezone(UTC)
