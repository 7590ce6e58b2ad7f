"""The member libraries with their calendars, partners and local info, held once
per process.

Routing reads every library's hours, special days, closures and partners for
each chat it starts or moves, the widget's status call does the same for each
page view, and each accept reads a local info card. These rows change a few
times a week, so each process keeps one copy instead of five queries a read:

- a change saved in this process drops the copy at once (signal receivers);
- other processes see a version number in the shared cache, bumped after the
  change commits, and reload on their next read;
- whatever sends no signal (`QuerySet.update()`) should call `changed()`; if
  it does not, no copy is older than `REFDESK_LIBRARY_CACHE_SECONDS`.

Reading the version is a Redis round trip, so a process reads it at most once
per `VERSION_CHECK_SECONDS`: another process's change is seen within that.

The `Library` objects returned are shared between threads: read them, never
save or modify them.
"""

import threading
import time
from dataclasses import dataclass, replace
from datetime import timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Prefetch
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.utils import timezone

from libraries.models import (
    Closure,
    Library,
    LocalInfoSection,
    SpecialHours,
    WeeklyHours,
    WidgetOrigin,
)

VERSION_KEY = "libraries.directory.version"
VERSION_CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class _Copy:
    version: object
    loaded_at: float
    libraries: dict[int, Library]
    by_slug: dict[str, Library]
    checked_at: float = 0.0


_lock = threading.Lock()
_copy: _Copy | None = None


def libraries() -> dict[int, Library]:
    """Every member library by id, with `weekly_hours`, `special_hours` and
    `closures` (from two days ago on), `partners`, `local_info` and
    `widget_origins` prefetched."""
    return _current().libraries


def by_slug(slug: str) -> Library | None:
    """The member library with this slug, or None. An unknown slug does not
    reload the copy (slugs come from URLs: anyone can send any)."""
    return _current().by_slug.get(slug)


async def alibraries() -> dict[int, Library]:
    """`libraries()` for code on an event loop: the copy as it is while it is
    fresh and its version was checked within `VERSION_CHECK_SECONDS`; the
    check (a cache read) or a reload (queries) runs on the database thread."""
    held = _copy
    now = time.monotonic()
    if (
        held is not None
        and now - held.loaded_at < settings.REFDESK_LIBRARY_CACHE_SECONDS
        and now - held.checked_at < VERSION_CHECK_SECONDS
    ):
        return held.libraries
    return await database_sync_to_async(libraries)()


async def alibrary(library_id: int) -> Library:
    """`library()` for code on an event loop (see `alibraries`)."""
    found = (await alibraries()).get(library_id)
    if found is None:
        return await database_sync_to_async(library)(library_id)
    return found


def _current() -> _Copy:
    global _copy
    held = _copy
    now = time.monotonic()
    if (
        held is not None
        and now - held.loaded_at < settings.REFDESK_LIBRARY_CACHE_SECONDS
    ):
        if now - held.checked_at < VERSION_CHECK_SECONDS:
            return held
        version = cache.get(VERSION_KEY)
        if held.version == version:
            with _lock:
                if _copy is held:
                    _copy = held = replace(held, checked_at=now)
            return held
    else:
        version = cache.get(VERSION_KEY)
    loaded = _load()
    fresh = _Copy(
        version=version,
        loaded_at=now,
        libraries=loaded,
        by_slug={library.slug: library for library in loaded.values()},
        checked_at=now,
    )
    with _lock:
        _copy = fresh
    return fresh


def library(library_id: int) -> Library:
    """One member library from the copy; a library newer than the copy (its
    version bump not seen yet) makes it reload once."""
    found = libraries().get(library_id)
    if found is None:
        forget()
        found = libraries().get(library_id)
    if found is None:
        raise Library.DoesNotExist(f"no library with id {library_id}")
    return found


def _load() -> dict[int, Library]:
    recent = timezone.now().date() - timedelta(days=2)
    return {
        library.id: library
        for library in Library.objects.prefetch_related(
            "weekly_hours",
            Prefetch(
                "special_hours", queryset=SpecialHours.objects.filter(day__gte=recent)
            ),
            Prefetch("closures", queryset=Closure.objects.filter(last__gte=recent)),
            Prefetch("partners", queryset=Library.objects.only("id")),
            "local_info",
            "widget_origins",
        )
    }


def forget() -> None:
    """Drop this process's copy (tests start each case with this)."""
    global _copy
    with _lock:
        _copy = None


def changed() -> None:
    """Libraries changed: reload here now, everywhere once the change commits."""
    forget()
    transaction.on_commit(_bump)


def _bump() -> None:
    forget()
    try:
        cache.incr(VERSION_KEY)
    except ValueError:  # no version yet (or the cache was flushed)
        cache.set(VERSION_KEY, 1, timeout=None)


def _on_change(sender, **kwargs) -> None:
    changed()


def connect_signals() -> None:
    models = (
        Library,
        WeeklyHours,
        SpecialHours,
        Closure,
        LocalInfoSection,
        WidgetOrigin,
    )
    for model in models:
        uid = f"libraries.directory.{model.__name__}"
        post_save.connect(_on_change, sender=model, dispatch_uid=f"{uid}.save")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"{uid}.delete")
    m2m_changed.connect(
        _on_change,
        sender=Library.partners.through,
        dispatch_uid="libraries.directory.partners",
    )
