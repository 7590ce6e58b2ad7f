"""Fixtures shared by every app's tests: factories named after the demo consortium,
the real-services guard and the Celery worker."""

import datetime as dt
import itertools
import os
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator

import pytest
import pytest_asyncio
from asgiref.sync import SyncToAsync, sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections

from libraries import directory
from libraries.models import Librarian, Library, Role, WeeklyHours
from refdesk import asyncdb

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("asyncio"):
            item.fixturenames.append("close_async_pools")


@pytest_asyncio.fixture
async def close_async_pools():
    """Each async test has its own loop, so its own message-path pool
    (refdesk.asyncdb): close it with the test, or its connections outlive it.

    The same goes for the Django connection of the one thread that runs the
    tests' `sync_to_async` calls: Channels' `database_sync_to_async` closes it
    after each call, a bare `sync_to_async` does not, and a connection left
    checked out there kept the suite's teardown from dropping the test
    database ("1 other session": `say_who_holds_the_test_database` named it).
    """
    yield
    await asyncdb.close_pools()
    await sync_to_async(connections.close_all)()


@pytest.fixture(scope="session", autouse=True)
def say_who_holds_the_test_database(django_db_setup, django_db_blocker):
    """Name whatever is still connected to the test database when the suite ends.

    A session left there makes the teardown's DROP DATABASE fail with only
    "1 other session" to go on (it named the `sync_to_async` thread's
    connection, see `close_async_pools`). Django closes its pool before the
    drop; this does the same a moment earlier, waits up to 5 s for the
    database's other sessions to end, as DROP DATABASE would, and warns with
    each one left: its query, the local process on its client port and the
    threads of this one.
    """
    yield
    connection = connections["default"]
    with django_db_blocker.unblock():
        # The thread all `sync_to_async` calls run on outside `async_to_sync`
        # (asgiref's class-level executor): a fixture's teardown that ran after
        # `close_async_pools` may have opened its connection again.
        SyncToAsync.single_thread_executor.submit(connections.close_all).result(10)
        connection.close()
        connection.close_pool()
        name = connection.settings_dict["NAME"]
        deadline = time.monotonic() + 5
        while True:
            with connection._nodb_cursor() as cursor:
                cursor.execute(
                    "SELECT pid, application_name, client_port, backend_start,"
                    " state, left(query, 200) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    [name],
                )
                sessions = cursor.fetchall()
            if not sessions or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    if sessions:
        lines = [f"{len(sessions)} session(s) still on {name} at the suite's end:"]
        for pid, app, port, started, state, query in sessions:
            owner = _local_process_of(port) if port else "not over TCP"
            lines.append(
                f"  backend {pid} ({app or 'no application_name'}, since {started},"
                f" {state}: {query!r}); client port {port}: {owner}"
            )
        threads = ", ".join(sorted(t.name for t in threading.enumerate()))
        lines.append(f"  this process (pid {os.getpid()}) runs threads: {threads}")
        warnings.warn("\n".join(lines), stacklevel=1)


def _local_process_of(port: int) -> str:
    """The local process with a TCP socket on `port`, as `ss` names it."""
    try:
        found = subprocess.run(
            ["ss", "-tnpH", f"sport = :{port}"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as error:
        return f"unknown ({error})"
    return found or "no local process (it has gone)"


_counter = itertools.count(1)


@pytest.fixture(autouse=True)
def fresh_library_directory():
    """Each test starts without the process's copy of the library calendars
    (libraries/directory.py): the previous test's rows were rolled back."""
    directory.forget()


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
            user=user,
            library=library,
            role=role,
            display_name=display_name or f"Librarian {n}",
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

    def give(
        library: Library, opens: dt.time = dt.time(9), closes: dt.time = dt.time(17)
    ) -> None:
        library.always_open = False
        library.save(update_fields=["always_open"])
        WeeklyHours.objects.bulk_create(
            WeeklyHours(library=library, weekday=day, opens=opens, closes=closes)
            for day in range(5)
        )

    return give


def test_database_url() -> str:
    """The URL of the test database pytest-django created, for other processes."""
    from django.db import connection

    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def service_environment(**extra: str) -> dict[str, str]:
    """Environment for a refdesk process (server, worker) sharing this test run's
    database, Redis namespace and settings."""
    env = {**os.environ, "DATABASE_URL": test_database_url(), "PYTHONUNBUFFERED": "1"}
    env.update(extra)
    return env


class CeleryWorkerProcess:
    """A real `celery worker` process (optionally with beat), as in production."""

    def __init__(self, *, beat: bool, env: dict[str, str], tmp_path):
        self.beat = beat
        self.env = env
        self.tmp_path = tmp_path
        self.process: subprocess.Popen | None = None
        self.hostname = f"test-{uuid.uuid4().hex[:8]}@refdesk"

    def start(self) -> "CeleryWorkerProcess":
        from refdesk.celery import app

        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "refdesk",
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            "4",
            "--loglevel",
            "warning",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
            "--hostname",
            self.hostname,
        ]
        if self.beat:
            command += ["--beat", "--schedule", str(self.tmp_path / "beat-schedule")]
        self.log = open(self.tmp_path / "celery.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            command,
            env=self.env,
            cwd=settings.BASE_DIR,
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.close()
                raise RuntimeError(
                    f"celery worker exited: see {self.tmp_path / 'celery.log'}"
                )
            if app.control.ping(destination=[self.hostname], timeout=0.5):
                return self
        self.stop(crash=True)
        raise RuntimeError("celery worker did not answer a ping within 30 s")

    def stop(self, *, crash: bool = False) -> None:
        if self.process and self.process.poll() is None:
            if crash:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture
def celery_worker_factory(
    transactional_db, tmp_path
) -> Iterator[Callable[..., CeleryWorkerProcess]]:
    """Start real Celery worker processes on the Redis broker against the test database.

    Tests that use it need `django_db(transaction=True)` so the worker sees
    their rows. Every worker started is stopped at the end of the test.
    """
    started: list[CeleryWorkerProcess] = []

    def start(*, beat: bool = False, **env: str) -> CeleryWorkerProcess:
        worker = CeleryWorkerProcess(
            beat=beat, env=service_environment(**env), tmp_path=tmp_path
        ).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def celery_worker(celery_worker_factory) -> CeleryWorkerProcess:
    """One worker with beat, for tests that need timers and sweeps to run."""
    return celery_worker_factory(beat=True)
