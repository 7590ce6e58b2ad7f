"""Fixtures shared by every app's tests: factories named after the demo consortium,
the real-services guard and the Celery worker."""

import itertools
import os
from collections.abc import Callable, Iterator
from datetime import time

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from libraries.models import Librarian, Library, Role, WeeklyHours

DEMO_ZONES = {
    "springfield": "America/Chicago",
    "shelbyville": "America/New_York",
    "ogdenville": "America/Denver",
}
PASSWORD = "correct-horse-battery"


def pytest_report_header(config: pytest.Config) -> list[str]:
    db = settings.DATABASES["default"]
    return [
        f"refdesk database: {db['ENGINE'].rsplit('.', 1)[-1]} {db.get('HOST', '')}:{db.get('PORT', '')}",
        f"refdesk redis: {settings.REDIS_URL or 'unset (in-memory)'}",
    ]


def pytest_sessionstart(session: pytest.Session) -> None:
    """The suite runs on the real services; refuse to run without them.

    `make test` finds or starts PostgreSQL and Redis and sets DATABASE_URL and
    REDIS_URL. Running pytest by hand without them would silently test the
    embedded fallbacks, so stop with a message instead of skipping.
    """
    if os.environ.get("REFDESK_ALLOW_EMBEDDED_TESTS") == "1":
        return
    engine = settings.DATABASES["default"]["ENGINE"]
    if engine != "django.db.backends.postgresql" or not settings.REDIS_URL:
        pytest.exit(
            "refdesk's tests run on PostgreSQL and Redis: use `make test`, or set "
            "DATABASE_URL=postgres://… and REDIS_URL=redis://… yourself.",
            returncode=3,
        )


_counter = itertools.count(1)


@pytest.fixture(autouse=True)
def fast_password_hashing(request, settings):
    """PBKDF2 costs half a second a user; tests that only need users skip it.

    Browser tests log in against a separate server process that keeps the
    production hashers, so they keep them too.
    """
    if "browser" not in request.keywords:
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def make_library(db) -> Callable[..., Library]:
    def make(slug: str = "springfield", **fields) -> Library:
        defaults = {
            "name": f"{slug.title()} Public Library",
            "timezone": DEMO_ZONES.get(slug, "America/Chicago"),
            "website": f"https://www.{slug}library.example",
            "contact_email": f"reference@{slug}library.example",
            "always_open": True,
        }
        defaults.update(fields)
        return Library.objects.create(slug=slug, **defaults)

    return make


@pytest.fixture
def make_librarian(db) -> Callable[..., Librarian]:
    def make(
        library: Library | None,
        *,
        role: str = Role.LIBRARIAN,
        username: str | None = None,
        display_name: str = "",
    ) -> Librarian:
        n = next(_counter)
        username = username or f"{library.slug if library else 'consortium'}-{n}"
        user = get_user_model().objects.create_user(
            username=username,
            password=PASSWORD,
            email=f"{username}@example.org",
            is_staff=role != Role.LIBRARIAN,
            is_superuser=role == Role.CONSORTIUM_ADMIN,
        )
        return Librarian.objects.create(
            user=user, library=library, role=role, display_name=display_name or f"Librarian {n}"
        )

    return make


@pytest.fixture
def springfield(make_library) -> Library:
    return make_library("springfield")


@pytest.fixture
def shelbyville(make_library) -> Library:
    return make_library("shelbyville")


@pytest.fixture
def ogdenville(make_library) -> Library:
    return make_library("ogdenville")


@pytest.fixture
def weekday_hours(db) -> Callable[..., None]:
    """Give a library ordinary weekday hours (Mon–Fri 09:00–17:00) instead of always-open."""

    def give(library: Library, opens: time = time(9), closes: time = time(17)) -> None:
        library.always_open = False
        library.save(update_fields=["always_open"])
        WeeklyHours.objects.bulk_create(
            WeeklyHours(library=library, weekday=day, opens=opens, closes=closes)
            for day in range(5)
        )

    return give


@pytest.fixture(scope="session")
def celery_worker_session(django_db_setup, django_db_blocker) -> Iterator[object]:
    """One real Celery worker on the Redis broker for the whole run.

    Tasks run in the worker's threads against the test database, so tests that
    use it need `django_db(transaction=True)` for the worker to see their rows.
    """
    from celery.contrib.testing.worker import start_worker

    from refdesk.celery import app

    with (
        django_db_blocker.unblock(),
        start_worker(
            app,
            pool="threads",
            concurrency=4,
            perform_ping_check=False,
            loglevel="WARNING",
            shutdown_timeout=30,
        ) as worker,
    ):
        yield worker


@pytest.fixture
def celery_worker(celery_worker_session, transactional_db) -> object:
    return celery_worker_session
