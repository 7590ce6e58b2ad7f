"""Opening hours: is a library open at an instant, in its own time zone.

Pure: plain values in, plain values out; no Django, no clock.

Rules
- A span ``opens``–``closes`` is local wall-clock time. ``closes <= opens`` runs
  overnight into the next day; ``opens == closes`` (00:00–00:00) is 24 hours.
- A ``SpecialDay`` replaces the weekly spans of its date (no spans: closed). It
  governs only the spans that start on it: an overnight span from the day before
  still runs into it. Use a ``Closure`` to shut the doors at midnight.
- A ``Closure`` wins over everything: no span starts on a closed day, and a span
  running overnight into one is cut at that day's local midnight.
- ``always_open`` ignores everything else.
- ``hours_on(day)`` lists the spans that *start* on ``day``, merged and sorted,
  as aware datetimes in the library's zone (24 hours: day 00:00 to next day
  00:00). A span may end up empty (02:00–02:30 on a spring-forward night) and is
  then left out.
- ``is_open(at)``: opens inclusive, closes exclusive; ``at`` is an aware datetime
  in any zone (naive datetimes raise ``ValueError``).
- An open *period* is a run of spans that touch or overlap, across midnight too
  (Mon 18:00–24:00 plus Tue 00:00–02:00 is one period, Mon 18:00 to Tue 02:00).
- ``next_opening(after)``: the start of the first period that begins strictly
  after ``after``; when open at ``after`` that is the period after the current
  one. Looks ``HORIZON_DAYS`` ahead; None if the library never opens by then.
- ``open_until(at)``: the end of the period containing ``at``. None means closed
  at ``at``, or open with no end within ``HORIZON_DAYS`` (``always_open``):
  call ``is_open`` first to tell them apart.
- ``open_spans_between(start, end)``: the periods clipped to [start, end), in
  order, disjoint.

Time zones and clock changes
- A wall time skipped by a spring-forward change opens at the first instant
  after the gap (02:30 on a New York spring-forward day is 03:00 EDT). A wall
  time repeated by a fall-back change means its first occurrence (fold=0).
- Durations are real elapsed time: 09:00–17:00 on a change day lasts 8 hours,
  an overnight 22:00–06:00 across the change lasts 7 or 9, a 24-hour day 23 or
  25.
- Python compares and subtracts two datetimes sharing one tzinfo by wall time,
  ignoring ``fold``. Everything here computes in UTC; callers comparing returned
  datetimes across a clock change should convert them to UTC first (or use
  ``OpenSpan.duration``).
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

HORIZON_DAYS = 400
MIDNIGHT = time(0, 0)
_DAY = timedelta(days=1)

type _Period = tuple[datetime, datetime]  # (opens, closes) in UTC, opens < closes


@dataclass(frozen=True)
class WeeklySpan:
    weekday: int  # 0 = Monday … 6 = Sunday
    opens: time
    closes: time  # <= opens: overnight; == opens: 24 hours


@dataclass(frozen=True)
class SpecialDay:
    day: date
    spans: tuple[tuple[time, time], ...]  # empty: closed that day


@dataclass(frozen=True)
class Closure:
    first: date
    last: date  # inclusive


@dataclass(frozen=True)
class LibraryHours:
    timezone: str  # IANA name, e.g. "America/Chicago"
    weekly: tuple[WeeklySpan, ...] = ()
    special: tuple[SpecialDay, ...] = ()
    closures: tuple[Closure, ...] = ()
    always_open: bool = False


@dataclass(frozen=True)
class OpenSpan:
    opens: datetime  # aware, in the library's zone
    closes: datetime  # aware, in the library's zone, > opens

    @property
    def duration(self) -> timedelta:
        """Return the real time elapsed, not the wall-clock difference."""
        return self.closes.astimezone(UTC) - self.opens.astimezone(UTC)


def hours_on(hours: LibraryHours, day: date) -> list[OpenSpan]:
    """List the open spans that start on the local date ``day``."""
    zone = ZoneInfo(hours.timezone)
    return [_open_span(period, zone) for period in _day_periods(hours, day, zone)]


def is_open(hours: LibraryHours, at: datetime) -> bool:
    instant = _utc(at)
    if hours.always_open:
        return True
    zone = ZoneInfo(hours.timezone)
    today = instant.astimezone(zone).date()
    return any(
        opens <= instant < closes
        for day in (today - _DAY, today)
        for opens, closes in _day_periods(hours, day, zone)
    )


def next_opening(hours: LibraryHours, after: datetime) -> datetime | None:
    """Return when the next open period starts, strictly after ``after``."""
    instant = _utc(after)
    if hours.always_open:
        return None
    zone = ZoneInfo(hours.timezone)
    today = instant.astimezone(zone).date()
    for opens, _ in _periods(hours, today - _DAY, today + HORIZON_DAYS * _DAY, zone):
        if opens > instant:
            return opens.astimezone(zone)
    return None


def open_until(hours: LibraryHours, at: datetime) -> datetime | None:
    """Return when the open period containing ``at`` ends.

    None when closed at ``at`` or when the period outlasts the horizon.
    """
    instant = _utc(at)
    if hours.always_open:
        return None
    zone = ZoneInfo(hours.timezone)
    today = instant.astimezone(zone).date()
    last = today + HORIZON_DAYS * _DAY
    unseen = _local_instant(
        last + _DAY, MIDNIGHT, zone
    )  # spans after `last` start here
    for opens, closes in _periods(hours, today - _DAY, last, zone):
        if opens > instant:
            return None
        if instant < closes:
            return None if closes >= unseen else closes.astimezone(zone)
    return None


def open_spans_between(
    hours: LibraryHours, start: datetime, end: datetime
) -> list[OpenSpan]:
    """List the open periods clipped to [start, end), in order."""
    zone = ZoneInfo(hours.timezone)
    start, end = _utc(start), _utc(end)
    if end <= start:
        return []
    first = start.astimezone(zone).date() - _DAY
    last = end.astimezone(zone).date()
    return [
        _open_span((max(opens, start), min(closes, end)), zone)
        for opens, closes in _periods(hours, first, last, zone)
        if opens < end and closes > start
    ]


def validate_spans(spans: Sequence[tuple[time, time]]) -> list[str]:
    """Describe what is wrong with one day's spans; an empty list means fine.

    Closing before opening is a legal overnight span. Overlap is checked within
    the day only: an overnight span occupies its day from ``opens`` to midnight.
    """
    errors = []
    around_the_clock = [s for s in spans if s == (MIDNIGHT, MIDNIGHT)]
    if around_the_clock and len(spans) > 1:
        errors.append(
            "00:00–00:00 means open around the clock and cannot be combined "
            "with other hours on the same day"
        )
    timed = []
    for opens, closes in spans:
        if opens == closes and opens != MIDNIGHT:
            errors.append(
                f"{_span_text(opens, closes)} is empty; "
                "use 00:00–00:00 for open around the clock"
            )
        elif opens != closes:
            timed.append((opens, closes))
    timed.sort()
    for i, (opens, closes) in enumerate(timed):
        for later_opens, later_closes in timed[i + 1 :]:
            if later_opens < closes or closes <= opens:  # overnight: until midnight
                errors.append(
                    f"{_span_text(opens, closes)} overlaps "
                    f"{_span_text(later_opens, later_closes)}"
                )
    return errors


def _day_periods(hours: LibraryHours, day: date, zone: ZoneInfo) -> list[_Period]:
    """Return the merged UTC periods starting on ``day``, cut by closures."""
    if hours.always_open:
        return [
            (
                _local_instant(day, MIDNIGHT, zone),
                _local_instant(day + _DAY, MIDNIGHT, zone),
            )
        ]
    spans = [] if _is_closed(hours, day) else sorted(_wall_spans(hours, day))
    if not spans:
        return []
    end_limit = None
    if _is_closed(hours, day + _DAY):
        end_limit = _local_instant(day + _DAY, MIDNIGHT, zone)
    periods: list[_Period] = []
    for opens_at, closes_at in spans:
        opens = _local_instant(day, opens_at, zone)
        closing_day = day + _DAY if closes_at <= opens_at else day
        closes = _local_instant(closing_day, closes_at, zone)
        if end_limit is not None:
            closes = min(closes, end_limit)
        if closes <= opens:
            continue
        if periods and opens <= periods[-1][1]:
            periods[-1] = (periods[-1][0], max(periods[-1][1], closes))
        else:
            periods.append((opens, closes))
    return periods


def _wall_spans(hours: LibraryHours, day: date) -> list[tuple[time, time]]:
    for special in hours.special:
        if special.day == day:
            return list(special.spans)
    return [(s.opens, s.closes) for s in hours.weekly if s.weekday == day.weekday()]


def _is_closed(hours: LibraryHours, day: date) -> bool:
    return any(c.first <= day <= c.last for c in hours.closures)


def _periods(
    hours: LibraryHours, first: date, last: date, zone: ZoneInfo
) -> Iterator[_Period]:
    """Yield the periods of spans starting ``first``..``last``, merged across days.

    Spans of a later day never start before those of an earlier one, so one
    pass merges them.
    """
    current: _Period | None = None
    day = first
    while day <= last:
        for opens, closes in _day_periods(hours, day, zone):
            if current is not None and opens <= current[1]:
                current = (current[0], max(current[1], closes))
            else:
                if current is not None:
                    yield current
                current = (opens, closes)
        day += _DAY
    if current is not None:
        yield current


def _local_instant(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """Return the UTC instant a local wall time means.

    A repeated time means its first occurrence; a skipped time means the first
    instant after the gap, which is the clock change itself.
    """
    naive = datetime.combine(day, wall)
    instant = naive.replace(tzinfo=zone).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == naive:
        return instant
    # In a gap, fold=1 reads the time with the offset after the change, which
    # lands before the change: bisect whole seconds down to the change.
    before = int(naive.replace(tzinfo=zone, fold=1).timestamp())
    after = int(instant.timestamp())
    offset_after = datetime.fromtimestamp(after, zone).utcoffset()
    while after - before > 1:
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset_after:
            after = middle
        else:
            before = middle
    return datetime.fromtimestamp(after, UTC)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"expected an aware datetime, got {moment!r}")
    return moment.astimezone(UTC)


def _open_span(period: _Period, zone: ZoneInfo) -> OpenSpan:
    return OpenSpan(period[0].astimezone(zone), period[1].astimezone(zone))


def _span_text(opens: time, closes: time) -> str:
    return f"{opens:%H:%M}–{closes:%H:%M}"
