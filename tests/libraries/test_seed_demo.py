"""`manage.py seed_demo`: the demo consortium PROTOCOL.md promises, idempotently."""

from datetime import date, datetime, time
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

from libraries import demo, hours, selectors
from libraries.models import (
    Closure,
    Librarian,
    Library,
    LocalInfoKind,
    LocalInfoSection,
    Role,
    ServiceArea,
    SpecialHours,
    WeeklyHours,
    WidgetOrigin,
)

SLUGS = {"springfield", "shelbyville", "ogdenville"}
LIBRARIAN_USERNAMES = {f"{slug}-{n}" for slug in SLUGS for n in (1, 2)}


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def row_counts() -> dict[str, int]:
    models = [
        get_user_model(),
        Librarian,
        Library,
        WeeklyHours,
        SpecialHours,
        Closure,
        ServiceArea,
        LocalInfoSection,
        WidgetOrigin,
    ]
    return {model.__name__: model.objects.count() for model in models}


@pytest.mark.django_db
def test_seed_creates_the_three_member_libraries_in_their_time_zones():
    seed()

    zones = dict(Library.objects.values_list("slug", "timezone"))
    assert zones == {
        "springfield": "America/Chicago",
        "shelbyville": "America/New_York",
        "ogdenville": "America/Denver",
    }
    for library in Library.objects.all():
        assert library.website.startswith("https://")
        assert library.contact_email
        assert library.weekly_hours.exists()
        assert library.closures.exists()
        assert library.special_hours.exists()
        assert library.service_areas.filter(kind="postal_code").exists()
        assert library.service_areas.filter(kind="place").exists()


@pytest.mark.django_db
def test_seed_creates_two_librarians_per_library_and_one_consortium_admin():
    seed()

    librarians = Librarian.objects.select_related("user", "library")
    by_username = {librarian.user.username: librarian for librarian in librarians}
    assert set(by_username) == LIBRARIAN_USERNAMES | {"admin"}
    for username in LIBRARIAN_USERNAMES:
        librarian = by_username[username]
        assert librarian.role == Role.LIBRARIAN
        assert librarian.library.slug == username.rsplit("-", 1)[0]
        assert librarian.display_name
        assert not librarian.user.is_staff
        assert not librarian.user.is_superuser
    admin = by_username["admin"]
    assert admin.role == Role.CONSORTIUM_ADMIN
    assert admin.library is None
    assert admin.user.is_staff
    assert admin.user.is_superuser
    assert get_user_model().objects.count() == 7


@pytest.mark.django_db
def test_every_demo_account_has_the_default_password():
    seed()

    for username in LIBRARIAN_USERNAMES | {"admin"}:
        user = authenticate(username=username, password="refdesk-demo")
        assert user is not None, username
        assert user.username == username


@pytest.mark.django_db
def test_demo_password_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "another-demo-secret")

    seed()

    assert authenticate(username="springfield-2", password="another-demo-secret")
    assert authenticate(username="admin", password="another-demo-secret")
    assert authenticate(username="admin", password="refdesk-demo") is None


@pytest.mark.django_db
def test_seeding_twice_creates_nothing_more():
    first_report = seed("--always-open")
    counts = row_counts()

    second_report = seed("--always-open")

    assert row_counts() == counts
    assert "created" in first_report
    assert "created" not in second_report
    assert second_report.count("already exists") == 1 + 3 + 6


@pytest.mark.django_db
def test_seeding_again_keeps_what_an_admin_changed(monkeypatch):
    seed()
    springfield = Library.objects.get(slug="springfield")
    springfield.name = "Springfield Central Library"
    springfield.save(update_fields=["name"])
    springfield.weekly_hours.filter(weekday=6).delete()
    monkeypatch.setenv("DEMO_PASSWORD", "changed-later")

    seed()

    springfield.refresh_from_db()
    assert springfield.name == "Springfield Central Library"
    assert not springfield.weekly_hours.filter(weekday=6).exists()
    assert authenticate(username="springfield-1", password="refdesk-demo")


@pytest.mark.django_db
def test_always_open_flag_opens_every_demo_library():
    seed()
    assert not Library.objects.filter(always_open=True).exists()

    report = seed("--always-open")

    assert Library.objects.filter(always_open=True).count() == 3
    assert "always open: turned on for 3 demo libraries" in report
    assert "already on" in seed("--always-open")
    seed()  # without the flag, seeding leaves always-open as it is
    assert Library.objects.filter(always_open=True).count() == 3


@pytest.mark.django_db
def test_demo_admin_logs_into_the_django_admin(client):
    seed("--always-open")

    assert client.login(username="admin", password="refdesk-demo")
    response = client.get("/admin/")

    assert response.status_code == 200


@pytest.mark.django_db
def test_every_demo_library_sends_and_takes_overflow_with_default_waits():
    seed()

    for library in Library.objects.all():
        assert library.sends_overflow
        assert library.takes_overflow
        assert library.local_wait_seconds is None
        assert library.partner_wait_seconds is None
        assert not library.partners.exists()
        assert not library.partner_of.exists()


@pytest.mark.django_db
def test_demo_calendars_are_valid_and_their_dates_upcoming():
    today = date(2026, 11, 29)

    demo.seed_demo(always_open=False, password="x", today=today)

    for library in selectors.libraries_with_calendars():
        for weekday in range(7):
            spans = [
                (row.opens, row.closes)
                for row in library.weekly_hours.all()
                if row.weekday == weekday
            ]
            assert hours.validate_spans(spans) == [], (library.slug, weekday)
        assert all(row.first >= today for row in library.closures.all())
        assert all(row.day >= today for row in library.special_hours.all())
        calendar = selectors.library_hours(library)
        zone = ZoneInfo(library.timezone)
        tuesday_noon = datetime(2026, 12, 1, 11, 30, tzinfo=zone)
        tuesday_3am = datetime(2026, 12, 1, 3, 0, tzinfo=zone)
        assert hours.is_open(calendar, tuesday_noon), library.slug
        assert not hours.is_open(calendar, tuesday_3am), library.slug
        assert hours.hours_on(calendar, date(2026, 12, 25)) == [], library.slug


@pytest.mark.django_db
def test_demo_hours_include_a_lunch_closure_a_late_night_and_a_short_sunday():
    demo.seed_demo(always_open=False, password="x", today=date(2026, 6, 1))
    calendars = {
        library.slug: selectors.library_hours(library)
        for library in selectors.libraries_with_calendars()
    }
    chicago, new_york, denver = (
        ZoneInfo(z) for z in ("America/Chicago", "America/New_York", "America/Denver")
    )

    # Shelbyville closes for lunch on weekdays and all Sunday.
    assert not hours.is_open(
        calendars["shelbyville"], datetime(2026, 6, 3, 12, 30, tzinfo=new_york)
    )
    assert hours.hours_on(calendars["shelbyville"], date(2026, 6, 7)) == []
    # Ogdenville's Thursday runs past midnight.
    assert hours.is_open(
        calendars["ogdenville"], datetime(2026, 6, 5, 0, 30, tzinfo=denver)
    )
    # Springfield opens on Sunday afternoons only.
    sunday = hours.hours_on(calendars["springfield"], date(2026, 6, 7))
    assert [(span.opens.time(), span.closes.time()) for span in sunday] == [
        (time(13), time(17))
    ]
    assert not hours.is_open(
        calendars["springfield"], datetime(2026, 6, 7, 11, tzinfo=chicago)
    )


@pytest.mark.django_db
def test_every_demo_library_has_a_full_local_info_card():
    seed()

    staff_kinds = set(LocalInfoKind.values) - {LocalInfoKind.OTHER}
    for library in Library.objects.all():
        sections = list(library.local_info.all())
        assert {section.kind for section in sections} == staff_kinds
        assert all(section.title and section.body.strip() for section in sections)
        assert library.local_info_verified_at is not None
    cards = {
        section.library.slug: section.body
        for section in LocalInfoSection.objects.filter(kind=LocalInfoKind.CARDS)
    }
    assert "$40" in cards["shelbyville"]
    assert "Reciprocal borrowing" in cards["ogdenville"]
    assert "lives in the state" in cards["springfield"]


def _luminance(hex_colour: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


@pytest.mark.parametrize("library", demo.DEMO_LIBRARIES, ids=lambda d: d.slug)
def test_brand_colour_gives_white_text_aa_contrast(library):
    contrast = (1.0 + 0.05) / (_luminance(library.brand_color) + 0.05)

    assert contrast >= 4.5


@pytest.mark.parametrize(
    ("today", "rule", "expected"),
    [
        pytest.param(
            date(2026, 1, 10), demo.thanksgiving, date(2026, 11, 26), id="tg-2026"
        ),
        pytest.param(
            date(2026, 11, 26), demo.thanksgiving, date(2026, 11, 26), id="tg-today"
        ),
        pytest.param(
            date(2026, 11, 27), demo.thanksgiving, date(2027, 11, 25), id="tg-next-year"
        ),
        pytest.param(
            date(2026, 12, 31), demo.fixed(1, 1), date(2027, 1, 1), id="new-year"
        ),
        pytest.param(
            date(2026, 12, 24), demo.fixed(12, 24), date(2026, 12, 24), id="eve"
        ),
    ],
)
def test_holidays_are_the_next_occurrence(today, rule, expected):
    assert demo.next_date(rule, today=today) == expected
