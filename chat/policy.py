"""Route a chat along its library's overflow ladder: a pure decision.

A chat climbs the ladder ``local -> partner -> overflow -> offline``. Each step
below names the libraries whose librarians are offered the chat; a step whose
list would be empty is skipped at once, never entered, so a chat never waits
where nobody can answer it.

``local``
    The origin library, when it is staffed. When it is not, the patron's home
    library stands in (the patron's own library gets the chat first), provided
    the home library is a member, staffed and takes overflow, and the origin
    sends overflow. The local wait is that of the library holding the queue.

``partner``
    The origin's partner libraries that are staffed and take overflow; entered
    only when there is at least one. The origin's partner wait.

``overflow``
    Every staffed library that takes overflow. The consortium overflow wait.

``offline``
    Nobody; no deadline. The patron is offered the follow-up by email.

Rules that hold across the steps:

- A library that sends no overflow has no partner or overflow step: its chats
  go local -> offline.
- In the partner and overflow steps the origin, when staffed, is appended last
  whether or not it takes overflow: its staff keep seeing their own patron, but
  the chat moves on because they did not pick it up in the local wait, so the
  others come first. As a consequence, when the local (or partner) wait runs
  out and nobody else is staffed but the origin still is, the chat enters the
  overflow step offered to the origin alone and goes offline only when the
  overflow wait runs out. A patron is not pushed offline while the library's
  own staff are at their desks.
- Preference inside a step: the patron's home library first, then the least
  loaded (open chats per available librarian), ties by ``library_id``. Ties are
  always broken by ``library_id``, so the same input gives the same route
  whatever the order of the staffing mapping.
- A library missing from the staffing snapshot is not staffed. A chat whose
  origin is missing goes offline: without the origin's settings there is no
  ladder to climb.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Step = Literal["local", "partner", "overflow", "offline"]
LADDER: tuple[Step, ...] = ("local", "partner", "overflow", "offline")


@dataclass(frozen=True)
class LibraryStaffing:
    """One library's settings and who is at its desks right now."""

    library_id: int
    is_open: bool
    available_librarians: int
    open_chats: int
    chats_per_librarian: int
    takes_overflow: bool
    sends_overflow: bool
    partner_ids: tuple[int, ...] = ()
    local_wait: timedelta = timedelta(seconds=45)
    partner_wait: timedelta = timedelta(seconds=45)

    def __post_init__(self) -> None:
        counts = (self.available_librarians, self.open_chats, self.chats_per_librarian)
        if min(counts) < 0:
            raise ValueError(f"library {self.library_id}: negative count {counts}")
        # A zero wait would give a deadline equal to now: a step nobody can see.
        if min(self.local_wait, self.partner_wait) <= timedelta(0):
            raise ValueError(f"library {self.library_id}: waits must be positive")

    @property
    def free_slots(self) -> int:
        capacity = self.available_librarians * self.chats_per_librarian
        return max(capacity - self.open_chats, 0)

    @property
    def is_staffed(self) -> bool:
        return self.is_open and self.available_librarians > 0 and self.free_slots > 0

    @property
    def load(self) -> float:
        if self.available_librarians == 0:
            return math.inf
        return self.open_chats / self.available_librarians


@dataclass(frozen=True)
class ChatFacts:
    """What routing needs to know about a chat."""

    origin_id: int
    home_id: int | None = None


@dataclass(frozen=True)
class Route:
    """Where a chat waits and until when."""

    step: Step
    queue_library_id: int | None
    library_ids: tuple[int, ...]
    escalate_at: datetime | None


OFFLINE = Route(step="offline", queue_library_id=None, library_ids=(), escalate_at=None)


def route_chat(
    *,
    chat: ChatFacts,
    staffing: Mapping[int, LibraryStaffing],
    after: Step | None,
    overflow_wait: timedelta,
    now: datetime,
) -> Route:
    """Place a chat on the first step after ``after`` that offers it to someone.

    ``after=None`` places a new (or transferred) chat; ``after=step`` is what
    happens when the wait of ``step`` runs out or its last desk leaves. Nothing
    comes after ``offline``, so asking for it is an error.
    """
    _check_inputs(staffing=staffing, after=after, overflow_wait=overflow_wait, now=now)
    origin = staffing.get(chat.origin_id)
    if origin is None:
        return OFFLINE
    remaining = LADDER[: LADDER.index("offline")]
    if after is not None:
        remaining = remaining[LADDER.index(after) + 1 :]
    for step in remaining:
        route = _try_step(
            step,
            chat=chat,
            origin=origin,
            staffing=staffing,
            overflow_wait=overflow_wait,
            now=now,
        )
        if route is not None:
            return route
    return OFFLINE


def still_routable(
    *,
    route_step: Step,
    library_ids: Sequence[int],
    staffing: Mapping[int, LibraryStaffing],
) -> bool:
    """Tell whether a chat can stay at its step: one of its libraries is staffed.

    When this turns False the chat moves on at once (``route_chat`` with
    ``after=route_step``) instead of waiting out a deadline nobody can meet. An
    offline chat has nowhere further to go, so it always stays.
    """
    if route_step not in LADDER:
        raise ValueError(f"unknown step {route_step!r}")
    if route_step == "offline":
        return True
    return any(_is_staffed(staffing, library_id) for library_id in library_ids)


def _check_inputs(
    *,
    staffing: Mapping[int, LibraryStaffing],
    after: Step | None,
    overflow_wait: timedelta,
    now: datetime,
) -> None:
    if after is not None and after not in LADDER:
        raise ValueError(f"unknown step {after!r}")
    if after == "offline":
        raise ValueError("an offline chat has no further step")
    if overflow_wait <= timedelta(0):
        raise ValueError("overflow_wait must be positive")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    for library_id, library in staffing.items():
        if library_id != library.library_id:
            raise ValueError(f"staffing[{library_id}] is library {library.library_id}")


def _try_step(
    step: Step,
    *,
    chat: ChatFacts,
    origin: LibraryStaffing,
    staffing: Mapping[int, LibraryStaffing],
    overflow_wait: timedelta,
    now: datetime,
) -> Route | None:
    """Return the route for ``step``, or None when it offers the chat to nobody."""
    if step == "local":
        return _local(chat=chat, origin=origin, staffing=staffing, now=now)
    if not origin.sends_overflow:
        return None
    own = (origin.library_id,) if origin.is_staffed else ()
    if step == "partner":
        partners = (staffing.get(i) for i in origin.partner_ids)
        takers = _takers(partners, origin_id=origin.library_id, home_id=chat.home_id)
        # The origin alone is no partner step; the overflow step covers that.
        if not takers:
            return None
        return Route(step, origin.library_id, takers + own, now + origin.partner_wait)
    takers = _takers(
        staffing.values(), origin_id=origin.library_id, home_id=chat.home_id
    )
    if not takers + own:
        return None
    return Route(step, origin.library_id, takers + own, now + overflow_wait)


def _local(
    *,
    chat: ChatFacts,
    origin: LibraryStaffing,
    staffing: Mapping[int, LibraryStaffing],
    now: datetime,
) -> Route | None:
    if origin.is_staffed:
        queue = origin
    else:
        home = staffing.get(chat.home_id) if chat.home_id is not None else None
        if not (
            home is not None
            and home.is_staffed
            and home.takes_overflow
            and origin.sends_overflow
        ):
            return None
        queue = home
    return Route("local", queue.library_id, (queue.library_id,), now + queue.local_wait)


def _takers(
    candidates: Iterable[LibraryStaffing | None],
    *,
    origin_id: int,
    home_id: int | None,
) -> tuple[int, ...]:
    """Staffed libraries other than the origin that take overflow, preferred first."""
    takers = {
        c.library_id: c
        for c in candidates
        if c is not None
        and c.library_id != origin_id
        and c.is_staffed
        and c.takes_overflow
    }
    ordered = sorted(
        takers.values(),
        key=lambda c: (c.library_id != home_id, c.load, c.library_id),
    )
    return tuple(c.library_id for c in ordered)


def _is_staffed(staffing: Mapping[int, LibraryStaffing], library_id: int) -> bool:
    library = staffing.get(library_id)
    return library is not None and library.is_staffed
