"""The per-process copy of the member libraries and their calendars: reused
between reads, dropped on every kind of change, never older than its limit."""

import datetime as dt

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from libraries import directory, selectors, services
from libraries.models import (
    Closure,
    Library,
    LocalInfoSection,
    WeeklyHours,
    WidgetOrigin,
)


def reads(call) -> int:
    with CaptureQueriesContext(connection) as queries:
        call()
    return len(queries)


def test_a_second_read_costs_no_query(make_library):
    springfield = make_library("springfield")
    make_library("shelbyville").partners.add(springfield)

    first = reads(directory.libraries)
    # libraries, then hours, special days, closures, partners, cards, widget origins
    assert first == 7
    assert reads(directory.libraries) == 0
    libraries = directory.libraries()
    assert {lib.slug for lib in libraries.values()} == {"springfield", "shelbyville"}
    shelbyville = next(lib for lib in libraries.values() if lib.slug == "shelbyville")
    assert [p.id for p in shelbyville.partners.all()] == [springfield.id]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda lib: WeeklyHours.objects.create(
                library=lib, weekday=0, opens=dt.time(9), closes=dt.time(17)
            ),
            id="hours-added",
        ),
        pytest.param(
            lambda lib: Closure.objects.create(
                library=lib,
                first=timezone.now().date(),
                last=timezone.now().date(),
                reason="Flood",
            ),
            id="closure-added",
        ),
        pytest.param(
            lambda lib: LocalInfoSection.objects.create(
                library=lib, title="Parking", body="Free after 5."
            ),
            id="local-info-added",
        ),
        pytest.param(lambda lib: lib.partners.clear(), id="partners-changed"),
        pytest.param(
            lambda lib: (
                Library.objects.filter(pk=lib.pk).update(always_open=False),
                directory.changed(),
            ),
            id="update-then-changed",
        ),
    ],
)
def test_a_change_in_this_process_is_read_at_once(make_library, change):
    springfield = make_library("springfield")
    springfield.partners.add(make_library("shelbyville"))
    before = directory.libraries()

    change(springfield)

    after = directory.libraries()
    assert after is not before


def test_the_saved_value_is_what_the_next_read_sees(make_library):
    springfield = make_library("springfield", always_open=True)
    assert directory.libraries()[springfield.id].always_open is True

    springfield.always_open = False
    springfield.save()

    assert directory.libraries()[springfield.id].always_open is False


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.mark.django_db(transaction=True)
def test_another_process_sees_a_committed_change_through_the_shared_version(
    make_library, monkeypatch
):
    clock = Clock()
    monkeypatch.setattr(directory, "time", clock)
    springfield = make_library("springfield")
    directory.libraries()
    version = cache.get(directory.VERSION_KEY)

    # What a save elsewhere does after its commit, minus the local drop:
    Library.objects.filter(pk=springfield.pk).update(name="Springfield Library")
    held = directory.libraries()
    assert held[springfield.id].name != "Springfield Library"  # not told yet
    cache.set(directory.VERSION_KEY, (version or 0) + 1, timeout=None)

    # The version is read at most once per VERSION_CHECK_SECONDS ...
    clock.now += directory.VERSION_CHECK_SECONDS / 2
    assert reads(directory.libraries) == 0
    assert directory.libraries()[springfield.id].name != "Springfield Library"
    # ... and once it is, the change is there.
    clock.now += directory.VERSION_CHECK_SECONDS
    assert directory.libraries()[springfield.id].name == "Springfield Library"


def test_slugs_are_looked_up_in_the_copy_without_a_query(make_library):
    springfield = make_library("springfield")
    directory.libraries()

    with CaptureQueriesContext(connection) as queries:
        assert directory.by_slug("springfield").id == springfield.id
        assert directory.by_slug("no-such-library") is None  # no reload for it
    assert len(queries) == 0


def test_a_new_widget_origin_is_allowed_at_once(make_library):
    springfield = make_library("springfield", website="https://springfield.example")
    assert selectors.widget_origins(slug="springfield") == {
        "https://springfield.example"
    }

    WidgetOrigin.objects.create(library=springfield, origin="https://catalog.example")

    assert selectors.widget_origins(slug="springfield") == {
        "https://springfield.example",
        "https://catalog.example",
    }
    assert "https://catalog.example" in selectors.all_widget_origins()


@pytest.mark.django_db(transaction=True)
def test_a_commit_bumps_the_shared_version(make_library):
    before = cache.get(directory.VERSION_KEY) or 0

    make_library("springfield")

    assert cache.get(directory.VERSION_KEY) > before


def test_an_update_without_a_signal_is_seen_after_the_age_limit(make_library, settings):
    springfield = make_library("springfield")
    directory.libraries()
    Library.objects.filter(pk=springfield.pk).update(name="Renamed")
    assert directory.libraries()[springfield.id].name != "Renamed"

    settings.REFDESK_LIBRARY_CACHE_SECONDS = 0

    assert directory.libraries()[springfield.id].name == "Renamed"


def test_marking_local_info_verified_is_seen_by_the_next_card(
    make_library, make_librarian
):
    springfield = make_library("springfield")
    librarian = make_librarian(springfield)
    assert directory.libraries()[springfield.id].local_info_verified_at is None

    services.mark_local_info_verified(library=springfield, user=librarian.user)

    assert directory.libraries()[springfield.id].local_info_verified_at is not None
