"""Reads about libraries: lookups, calendars as pure values, admin scoping."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from libraries import directory, hours
from libraries.models import Librarian, Library, Role, ServiceAreaKind
from refdesk.errors import NotFound


def get_library(*, slug: str) -> Library:
    """The member library with this slug, from the process's copy
    (`libraries.directory`): read it, never save it."""
    library = directory.by_slug(slug)
    if library is None:
        raise NotFound(f"no member library {slug!r}")
    return library


def libraries_with_calendars() -> QuerySet[Library]:
    """Libraries with everything `library_hours` needs, in a fixed number of queries."""
    return Library.objects.prefetch_related("weekly_hours", "special_hours", "closures")


def library_hours(library: Library) -> hours.LibraryHours:
    """The library's calendar as the pure `hours.LibraryHours` value.

    Uses prefetched rows when present (see `libraries_with_calendars`).
    """
    special_by_day: dict = {}
    for row in library.special_hours.all():
        special_by_day.setdefault(row.day, []).append((row.opens, row.closes))
    return hours.LibraryHours(
        timezone=library.timezone,
        weekly=tuple(
            hours.WeeklySpan(r.weekday, r.opens, r.closes)
            for r in library.weekly_hours.all()
        ),
        special=tuple(
            hours.SpecialDay(day, tuple(spans))
            for day, spans in sorted(special_by_day.items())
        ),
        closures=tuple(hours.Closure(r.first, r.last) for r in library.closures.all()),
        always_open=library.always_open,
    )


def librarian_for(user: AbstractBaseUser | AnonymousUser) -> Librarian | None:
    """The user's librarian record, or None for anyone who is not staff of refdesk."""
    if not user.is_authenticated:
        return None
    try:
        return Librarian.objects.select_related("library").get(user=user)
    except Librarian.DoesNotExist:
        return None


def is_consortium_admin(user: AbstractBaseUser | AnonymousUser) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    librarian = librarian_for(user)
    return librarian is not None and librarian.role == Role.CONSORTIUM_ADMIN


def libraries_administered_by(
    user: AbstractBaseUser | AnonymousUser,
) -> QuerySet[Library]:
    """Every library for a consortium admin, their own for a library admin, else none."""
    if is_consortium_admin(user):
        return Library.objects.all()
    librarian = librarian_for(user)
    if librarian is None or librarian.role != Role.LIBRARY_ADMIN or not user.is_active:
        return Library.objects.none()
    return Library.objects.filter(pk=librarian.library_id)


def normalise_postal_code(value: str) -> str:
    """Postal codes compare without spaces or case: "sw1a 1aa" is "SW1A1AA"."""
    return "".join(value.split()).upper()


def area_libraries(*, home_library: str = "", postal_code: str = "") -> set[int]:
    """Ids of the libraries whose service area covers the patron's declared place.

    Postal codes are stored normalised (see `normalise_postal_code`); place
    names compare case-insensitively.
    """
    from django.db.models import Q

    from libraries.models import ServiceArea

    postal = normalise_postal_code(postal_code)
    place = " ".join(home_library.split())
    if not postal and not place:
        return set()  # nothing declared: no queryset to build (0.27 ms of CPU)
    condition = Q(pk__in=[])
    if postal:
        condition |= Q(kind=ServiceAreaKind.POSTAL_CODE, value=postal)
    if place:
        condition |= Q(kind=ServiceAreaKind.PLACE, value__iexact=place)
    return set(
        ServiceArea.objects.filter(condition).values_list("library_id", flat=True)
    )


def normalise_place(value: str) -> str:
    """Place names are trimmed and single-spaced; case is kept for display."""
    return " ".join(value.split())


def normalise_service_area_value(kind: str, value: str) -> str:
    """The stored form of a service-area value (see `area_libraries`)."""
    if kind == ServiceAreaKind.POSTAL_CODE:
        return normalise_postal_code(value)
    return normalise_place(value)


def roles_assignable_by(user: AbstractBaseUser | AnonymousUser) -> list[str]:
    """Roles the user may give to staff they administer (see `set_librarian_role`)."""
    if is_consortium_admin(user):
        return list(Role.values)
    librarian = librarian_for(user)
    if librarian is None or librarian.role != Role.LIBRARY_ADMIN or not user.is_active:
        return []
    return [Role.LIBRARIAN, Role.LIBRARY_ADMIN]


def origin_of(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def widget_origins(*, slug: str) -> set[str]:
    """Web origins allowed to embed a library's widget and call its API.

    Its website's origin plus any its admins registered; empty for an unknown
    library.
    """
    library = directory.by_slug(slug)
    if library is None:
        return set()
    found = {o.origin for o in library.widget_origins.all()}
    if website := origin_of(library.website):
        found.add(website)
    return found


def all_widget_origins() -> set[str]:
    found = set()
    for library in directory.libraries().values():
        found.update(o.origin for o in library.widget_origins.all())
        if website := origin_of(library.website):
            found.add(website)
    return found
