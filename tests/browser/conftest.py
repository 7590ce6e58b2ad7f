"""Browser tests: the real stack (uvicorn, PostgreSQL, Redis, a Celery worker) driven
by Debian's Chromium through Playwright.

`live_server` runs `uvicorn refdesk.asgi:application` in a subprocess, as in
production, against the test database; tests that use it need
`django_db(transaction=True)` so that the server sees their rows. Never run
`playwright install`: the browser is /usr/bin/chromium (STACK-NOTES.md).
"""

import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
CHROMIUM = "/usr/bin/chromium"
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the item, so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _database_url(settings_dict: dict) -> str:
    user = quote(settings_dict.get("USER") or "", safe="")
    password = settings_dict.get("PASSWORD") or ""
    credentials = f"{user}:{quote(password, safe='')}" if password else user
    host = settings_dict.get("HOST") or "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = settings_dict.get("PORT") or "5432"
    name = quote(settings_dict["NAME"], safe="")
    return f"postgres://{credentials}@{host}:{port}/{name}"


class _NoSettingsChange:
    """pytest-django's live-server helper toggles settings on its own server."""

    def enable(self) -> None:
        pass

    def disable(self) -> None:
        pass


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    log_path: Path
    _live_server_modified_settings: _NoSettingsChange = field(
        default_factory=_NoSettingsChange
    )

    @property
    def origin(self) -> str:
        return self.url

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def __str__(self) -> str:
        return self.url


@pytest.fixture(scope="session")
def live_server(django_db_setup, django_db_blocker) -> Iterator[LiveServer]:
    """uvicorn serving refdesk on a free port, against the test database."""
    from django.conf import settings
    from django.db import connection

    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != ASYNC_UNSAFE},
        "DATABASE_URL": _database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "REFDESK_REDIS_PREFIX": settings.REFDESK_REDIS_PREFIX,
        "DJANGO_SETTINGS_MODULE": "refdesk.settings",
    }
    with tempfile.NamedTemporaryFile(
        prefix="refdesk-browser-server-", suffix=".log", delete=False
    ) as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "refdesk.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
                "--ws",
                "auto",
            ],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        server = LiveServer(
            url=f"http://127.0.0.1:{port}",
            process=process,
            log_path=Path(log_file.name),
        )
        try:
            _wait_until_serving(server)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _wait_until_serving(server: LiveServer, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            pytest.fail(
                f"uvicorn exited with {server.process.returncode}:\n{server.log()}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/accounts/login/", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                pytest.fail(
                    f"uvicorn did not answer within {timeout:.0f} s:\n{server.log()}"
                )
            time.sleep(0.2)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one test module.

    Playwright's sync API keeps its asyncio loop marked as running in this
    thread while it is started. So, while a browser is up, Django's
    async-safety check is off (the ORM calls of the test body and of the
    database fixtures would otherwise be refused), and the browser is closed
    at the end of each module, so that the async tests collected after it
    (consumers, pytest-asyncio) never run beside a foreign running loop.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(
            "The browser tests need Chromium at /usr/bin/chromium: "
            "apt-get install chromium (never `playwright install`)."
        )
    previous = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS
            )
            yield launched
            launched.close()
    finally:
        if previous is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = previous


def _wait_for_quiet_database(timeout: float = 10) -> None:
    """Wait until no other session is inside a transaction on the test database.

    Closing the pages closes their sockets, and the server then updates
    presence and reroutes chats; the flush that ends a transactional test
    (TRUNCATE of every table) would deadlock with that work.
    """
    from django.db import connection

    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND state IN ('active', 'idle in transaction')"
            )
            busy = cursor.fetchone()[0]
        now = time.monotonic()
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= 0.5:
            return
        time.sleep(0.05)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:120]


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[[Page, str], Path]:
    """Save a named screenshot of a page under tests/browser/screenshots/."""

    def take(page: Page, name: str, *, full_page: bool = False) -> Path:
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"{_slug(name)}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take


@pytest.fixture
def new_page(
    browser: Browser, live_server: LiveServer, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Page]]:
    """Open a page in a fresh browser context (its own cookies and storage).

    Console errors and uncaught page errors are collected on `page.errors`.
    When the test fails, every page it opened is saved as a screenshot.
    """
    contexts: list[tuple[str, BrowserContext, Page]] = []

    def open_page(label: str = "page", **context_options) -> Page:
        context_options.setdefault("viewport", {"width": 1280, "height": 900})
        context = browser.new_context(base_url=live_server.url, **context_options)
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.errors = []  # type: ignore[attr-defined]
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.on(
            "console",
            lambda message: (
                page.errors.append(message.text) if message.type == "error" else None
            ),
        )
        contexts.append((label, context, page))
        return page

    yield open_page

    report = getattr(request.node, "rep_call", None)
    failed = report is not None and report.failed
    for label, context, page in contexts:
        if failed:
            SCREENSHOTS.mkdir(exist_ok=True)
            name = _slug(f"FAILED-{request.node.name}-{label}")
            # A crashed page must not hide the test's own failure.
            with contextlib.suppress(Exception):
                page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        context.close()
    _wait_for_quiet_database()
    if failed:
        print(f"--- refdesk server log (tail) ---\n{live_server.log()}")


@pytest.fixture
def quiet_database_at_teardown(live_server) -> Iterator[None]:
    """For live-server tests without pages: let the server finish the work its
    sockets' closing started before the test's flush truncates every table."""
    yield
    _wait_for_quiet_database()
