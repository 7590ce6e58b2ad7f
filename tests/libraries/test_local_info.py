"""Local info cards kept true: versions and restore, verification age and stale
flags (the beat task, directly and through a real worker), outdated reports,
and the staff search across every library's cards."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chat import selectors as chat_selectors
from chat import services as chat_services
from libraries import local_info, presence, tasks
from libraries.models import (
    Library,
    LocalInfoChange,
    LocalInfoKind,
    LocalInfoSection,
    LocalInfoVersion,
    OutdatedReport,
    Role,
)
from refdesk.errors import Forbidden

NOW = datetime(2026, 3, 9, 15, 30, tzinfo=UTC)
HOSTILE = """<script>alert(1)</script> [x](javascript:alert(1))
<img src=x onerror=alert(1)> <b onclick="x">raw</b> **fine**"""


@pytest.fixture
def springfield_admin(springfield, make_librarian):
    return make_librarian(
        springfield, role=Role.LIBRARY_ADMIN, username="skinner", display_name="Seymour"
    )


@pytest.fixture
def shelbyville_admin(shelbyville, make_librarian):
    return make_librarian(shelbyville, role=Role.LIBRARY_ADMIN, username="hobart")


@pytest.fixture
def cards(springfield, springfield_admin) -> LocalInfoSection:
    return local_info.save_local_info_section(
        section=LocalInfoSection(
            library=springfield,
            kind=LocalInfoKind.CARDS,
            title="Library cards",
            body="- Free for state residents\n- Visitors: 3-month card\n",
        ),
        user=springfield_admin.user,
        now=NOW,
    )


def form_data(response) -> dict:
    """The POST body a browser would send back for an admin change page as shown."""
    data: dict = {}
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            data[form[name].html_name] = "on" if value is True else value
    return data


def _csrf(client: Client) -> dict[str, str]:
    token = _get_new_csrf_string()
    client.cookies["csrftoken"] = token
    return {"HTTP_X_CSRFTOKEN": token}


# Versions
# ----------------------------------------------------------------------
def test_each_save_records_who_when_and_what_changed(cards, springfield_admin):
    cards.body = "- Free for state residents\n- Visitors: 6-month card\n"
    cards.title = "Library cards and visitors"
    local_info.save_local_info_section(
        section=cards, user=springfield_admin.user, now=NOW + timedelta(hours=1)
    )

    versions = list(cards.versions.order_by("saved_at"))
    assert [v.change for v in versions] == [
        LocalInfoChange.CREATED,
        LocalInfoChange.CHANGED,
    ]
    changed = versions[1]
    assert changed.saved_by == springfield_admin.user
    assert changed.saved_at == NOW + timedelta(hours=1)
    assert changed.title == "Library cards and visitors"
    assert "Title: 'Library cards' → 'Library cards and visitors'" in changed.summary
    assert "-- Visitors: 3-month card" in changed.summary
    assert "+- Visitors: 6-month card" in changed.summary


def test_a_save_that_changes_nothing_records_nothing(cards, springfield_admin):
    local_info.save_local_info_section(section=cards, user=springfield_admin.user)

    assert cards.versions.count() == 1


def test_sections_from_before_versioning_keep_their_old_state(
    springfield, springfield_admin
):
    old = LocalInfoSection.objects.create(
        library=springfield, title="ILL", body="Free."
    )
    old.body = "$2 a request."

    local_info.save_local_info_section(
        section=old, user=springfield_admin.user, now=NOW
    )

    baseline, changed = old.versions.order_by("id")
    assert (baseline.change, baseline.body, baseline.saved_by) == (
        "baseline",
        "Free.",
        None,
    )
    assert (changed.change, changed.body) == ("changed", "$2 a request.")


def test_restoring_a_version_brings_its_text_back_as_a_new_version(
    cards, springfield_admin
):
    original = cards.versions.get()
    cards.body = "Cards for everyone!"
    local_info.save_local_info_section(section=cards, user=springfield_admin.user)

    restored = local_info.restore_local_info_version(
        version_id=original.pk, user=springfield_admin.user
    )

    cards.refresh_from_db()
    assert restored.pk == cards.pk
    assert cards.body == original.body
    latest = cards.versions.order_by("-saved_at", "-id").first()
    assert latest.change == LocalInfoChange.RESTORED
    assert latest.summary.startswith("Restored the version of ")
    assert cards.versions.count() == 3


def test_a_deleted_section_can_be_restored(cards, springfield_admin):
    local_info.delete_local_info_section(section=cards, user=springfield_admin.user)
    deleted = LocalInfoVersion.objects.get(change=LocalInfoChange.DELETED)
    assert not LocalInfoSection.objects.exists()
    assert deleted.section is None

    back = local_info.restore_local_info_version(
        version_id=deleted.pk, user=springfield_admin.user
    )

    assert (back.title, back.body, back.library_id) == (
        cards.title,
        cards.body,
        cards.library_id,
    )
    assert back.versions.get().change == LocalInfoChange.RESTORED


def test_another_librarys_admin_cannot_restore(cards, shelbyville_admin):
    with pytest.raises(Forbidden):
        local_info.restore_local_info_version(
            version_id=cards.versions.get().pk, user=shelbyville_admin.user
        )


def test_editing_in_the_admin_records_versions(client, cards, springfield_admin):
    client.force_login(springfield_admin.user)
    change_url = reverse("admin:libraries_localinfosection_change", args=[cards.pk])

    response = client.post(
        change_url,
        {
            "library": cards.library_id,
            "kind": "cards",
            "title": "Library cards",
            "body": "Free for everyone in the state.",
            "position": 0,
            "versions-TOTAL_FORMS": 0,
            "versions-INITIAL_FORMS": 0,
        },
    )

    assert response.status_code == 302
    latest = cards.versions.order_by("-saved_at", "-id").first()
    assert (latest.change, latest.body, latest.saved_by) == (
        "changed",
        "Free for everyone in the state.",
        springfield_admin.user,
    )
    page = client.get(change_url).text
    assert "versions (newest first)" in page.lower()
    assert "Free for everyone" in page


def test_restore_action_on_a_version_page(client, cards, springfield_admin):
    original = cards.versions.get()
    cards.body = "Wrong text"
    local_info.save_local_info_section(section=cards, user=springfield_admin.user)
    client.force_login(springfield_admin.user)
    version_url = reverse("admin:libraries_localinfoversion_change", args=[original.pk])

    page = client.get(version_url)
    response = client.post(
        version_url,
        {
            "CHANGE_FORM-action": "restore_version",
            "action": "restore_version",
            ACTION_CHECKBOX_NAME: [original.pk],
        },
    )

    assert page.status_code == 200
    assert "Restore this version" in page.text
    assert response.status_code == 302
    cards.refresh_from_db()
    assert cards.body == original.body


def test_deleting_in_the_library_page_inline_records_a_deleted_version(
    client, cards, springfield_admin
):
    client.force_login(springfield_admin.user)
    change_url = reverse("admin:libraries_library_change", args=[cards.library_id])
    data = form_data(client.get(change_url))
    prefix = next(k for k in data if k.endswith("-0-id") and data[k] == cards.pk)
    data[prefix.replace("-id", "-DELETE")] = "on"

    response = client.post(change_url, data)

    assert response.status_code == 302, response.context["errors"]
    assert not LocalInfoSection.objects.filter(pk=cards.pk).exists()
    assert LocalInfoVersion.objects.filter(
        change="deleted", saved_by=springfield_admin.user
    )


# Verification: the card payload and stale flags
# ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("verified_at", "days_ago", "is_stale"),
    [
        pytest.param(None, None, True, id="never"),
        pytest.param(NOW - timedelta(days=3, hours=2), 3, False, id="recent"),
        pytest.param(NOW - timedelta(days=89, hours=23), 89, False, id="just-fresh"),
        pytest.param(NOW - timedelta(days=90), 90, True, id="stale"),
    ],
)
def test_verification_age(verified_at, days_ago, is_stale):
    status = local_info.verification(verified_at, now=NOW, stale_days=90)
    assert (status.days_ago, status.is_stale) == (days_ago, is_stale)


def test_card_shows_days_since_verified_and_section_ids(springfield, cards, settings):
    settings.REFDESK_LOCAL_INFO_STALE_DAYS = 30
    Library.objects.filter(pk=springfield.pk).update(
        local_info_verified_at=NOW - timedelta(days=31)
    )
    springfield.refresh_from_db()

    card = chat_selectors.local_info(springfield, now=NOW)

    assert card["verified_days_ago"] == 31
    assert card["is_stale"] is True
    assert card["sections"][0]["id"] == cards.pk
    assert card["sections"][0]["title"] == "Library cards"


def test_card_is_harmless_with_hostile_markdown(springfield):
    from tests.faq.conftest import assert_harmless

    LocalInfoSection.objects.create(library=springfield, title="<b>x</b>", body=HOSTILE)

    card = chat_selectors.local_info(springfield)

    assert_harmless(card["sections"][0]["body_html"])
    assert "<strong>fine</strong>" in card["sections"][0]["body_html"]


def test_card_render_costs_a_fixed_number_of_queries(
    springfield, shelbyville, make_librarian, django_assert_max_num_queries
):
    for library in (springfield, shelbyville):
        for n in range(6):
            LocalInfoSection.objects.create(library=library, title=f"S{n}", body="x")
    librarian = make_librarian(springfield)
    presence.touch(
        library_id=springfield.pk,
        librarian_id=librarian.pk,
        socket_id="card-desk",
        available=True,
    )
    conversation, _ = chat_services.start_conversation(
        library_slug="springfield", question="Hi", home_library="shelbyville"
    )
    presence.store().clear()

    with django_assert_max_num_queries(6):
        frame = chat_selectors.accepted_payloads([conversation])[0]

    assert len(frame["local_info"]["sections"]) == 6
    assert len(frame["home_local_info"]["sections"]) == 6


def _stale_library(make_library, slug: str, **fields) -> Library:
    return make_library(slug, local_info_verified_at=None, **fields)


def test_flagging_emails_stale_libraries_once_per_period(
    make_library,
    make_librarian,
    settings,
    mailoutbox,
    django_capture_on_commit_callbacks,
):
    settings.REFDESK_LOCAL_INFO_STALE_DAYS = 90
    stale = _stale_library(make_library, "springfield")
    fresh = make_library("shelbyville", local_info_verified_at=NOW - timedelta(days=5))
    admin = make_librarian(stale, role=Role.LIBRARY_ADMIN)

    with django_capture_on_commit_callbacks() as callbacks:
        flagged = local_info.flag_stale_local_info(now=NOW)
    again = local_info.flag_stale_local_info(now=NOW + timedelta(days=1))

    assert flagged == [stale.pk]
    assert again == []
    assert len(callbacks) == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.local_info_stale_notified_at == NOW
    assert fresh.local_info_stale_notified_at is None

    tasks.send_stale_local_info_email(stale.pk, NOW.isoformat())
    tasks.send_stale_local_info_email(stale.pk, NOW.isoformat())  # a redelivery

    assert len(mailoutbox) == 2  # at least once: mail itself is not transactional
    mail = mailoutbox[0]
    assert mail.to == [admin.user.email, stale.contact_email]
    assert "has never been verified" in mail.body
    assert f"/admin/libraries/library/{stale.pk}/change/" in mail.body
    # The next period flags it again (and by then the other card is stale too).
    assert stale.pk in local_info.flag_stale_local_info(now=NOW + timedelta(days=91))


def test_a_verified_card_is_not_mailed_even_if_flagged_before(
    make_library, springfield_admin, mailoutbox
):
    library = springfield_admin.library
    Library.objects.filter(pk=library.pk).update(local_info_verified_at=None)
    local_info.flag_stale_local_info(now=NOW)
    from libraries import services

    services.mark_local_info_verified(
        library=library, user=springfield_admin.user, now=NOW
    )

    assert not local_info.send_stale_local_info_email(
        library_id=library.pk, notified_at=NOW
    )
    assert mailoutbox == []


def test_beat_task_flags_through_the_service(make_library, settings):
    settings.REFDESK_LOCAL_INFO_STALE_DAYS = 10
    library = make_library(
        "springfield", local_info_verified_at=timezone.now() - timedelta(days=11)
    )

    tasks.flag_stale_local_info()
    tasks.flag_stale_local_info()

    library.refresh_from_db()
    assert library.local_info_stale_notified_at is not None


def test_consortium_admin_lists_stale_cards(
    client, make_library, make_librarian, settings
):
    settings.REFDESK_LOCAL_INFO_STALE_DAYS = 90
    _stale_library(make_library, "springfield")
    make_library("shelbyville", local_info_verified_at=timezone.now())
    admin = make_librarian(None, role=Role.CONSORTIUM_ADMIN, username="admin")
    client.force_login(admin.user)

    response = client.get(
        reverse("admin:libraries_library_changelist"), {"local_info": "stale"}
    )

    assert response.status_code == 200
    assert [lib.slug for lib in response.context["cl"].result_list] == ["springfield"]
    assert "stale (not verified for 90 days)" in response.text


@pytest.mark.django_db(transaction=True)
def test_beat_flags_stale_cards_through_a_real_worker(
    make_library, celery_worker_factory
):
    stale = _stale_library(make_library, "springfield")
    fresh = make_library("shelbyville", local_info_verified_at=timezone.now())

    celery_worker_factory(beat=True, REFDESK_LOCAL_INFO_CHECK_SECONDS="1")

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stale.refresh_from_db()
        if stale.local_info_stale_notified_at is not None:
            break
        time.sleep(0.2)
    assert stale.local_info_stale_notified_at is not None
    fresh.refresh_from_db()
    assert fresh.local_info_stale_notified_at is None


# Outdated reports
# ----------------------------------------------------------------------
def _report_url(section_id: int) -> str:
    return f"/api/v1/local-info/{section_id}/outdated"


def test_librarian_of_another_library_reports_a_section_outdated(
    cards, shelbyville, make_librarian, mailoutbox, django_capture_on_commit_callbacks
):
    reporter = make_librarian(shelbyville, display_name="Lurleen")
    client = Client(enforce_csrf_checks=True)
    client.force_login(reporter.user)

    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            _report_url(cards.pk),
            {"note": "Their site says visitor cards are 6 months now."},
            content_type="application/json",
            **_csrf(client),
        )

    assert response.status_code == 201
    report = OutdatedReport.objects.get()
    assert response.json() == {
        "id": report.pk,
        "section": cards.pk,
        "library": {"slug": "springfield", "name": "Springfield Public Library"},
        "created_at": report.created_at.isoformat(),
    }
    assert (report.librarian, report.section_title, report.library_id) == (
        reporter,
        "Library cards",
        cards.library_id,
    )
    assert len(callbacks) == 1

    tasks.send_outdated_report_email(report.pk)
    tasks.send_outdated_report_email(report.pk)  # a redelivered task sends nothing

    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == ["reference@springfieldlibrary.example"]
    assert mail.reply_to == [reporter.user.email]
    assert "Lurleen (Shelbyville Public Library)" in mail.body
    assert "visitor cards are 6 months now" in mail.body
    assert "Library cards" in mail.subject
    report.refresh_from_db()
    assert report.emailed_at is not None


def test_report_needs_csrf_and_an_existing_section(cards, make_librarian, springfield):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_librarian(springfield).user)

    no_token = client.post(_report_url(cards.pk), {}, content_type="application/json")
    headers = _csrf(client)
    missing = client.post(
        _report_url(999999), {}, content_type="application/json", **headers
    )
    too_long = client.post(
        _report_url(cards.pk),
        {"note": "x" * 2001},
        content_type="application/json",
        **headers,
    )
    empty_note = client.post(
        _report_url(cards.pk), {}, content_type="application/json", **headers
    )

    assert (no_token.status_code, no_token.json()["code"]) == (403, "forbidden")
    assert missing.status_code == 404
    assert too_long.status_code == 400
    assert empty_note.status_code == 201
    assert OutdatedReport.objects.count() == 1


def test_library_admin_sees_and_resolves_only_their_reports(
    client, cards, shelbyville, springfield_admin, make_librarian
):
    reporter = make_librarian(shelbyville)
    mine = local_info.report_outdated_local_info(
        section_id=cards.pk, librarian=reporter
    )
    shelby_section = LocalInfoSection.objects.create(
        library=shelbyville, title="Fines", body="x"
    )
    theirs = local_info.report_outdated_local_info(
        section_id=shelby_section.pk, librarian=reporter
    )
    client.force_login(springfield_admin.user)
    changelist = reverse("admin:libraries_outdatedreport_changelist")

    listing = client.get(changelist)
    client.post(
        changelist,
        {"action": "mark_resolved", ACTION_CHECKBOX_NAME: [mine.pk, theirs.pk]},
    )

    assert list(listing.context["cl"].result_list) == [mine]
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.resolved_at is not None
    assert mine.resolved_by == springfield_admin.user
    assert theirs.resolved_at is None
    other = reverse("admin:libraries_outdatedreport_change", args=[theirs.pk])
    assert client.get(other).status_code == 403


# Staff search across every library's local info
# ----------------------------------------------------------------------
@pytest.fixture
def demo_cards(springfield, shelbyville, ogdenville):
    from libraries.demo import DEMO_LIBRARIES

    for demo in DEMO_LIBRARIES:
        library = Library.objects.get(slug=demo.slug)
        for position, (kind, title, body) in enumerate(demo.local_info):
            LocalInfoSection.objects.create(
                library=library, kind=kind, title=title, body=body, position=position
            )


def test_staff_search_ranks_every_librarys_card_sections(
    demo_cards, springfield, make_librarian, django_assert_max_num_queries
):
    client = Client()
    client.force_login(make_librarian(springfield).user)

    with django_assert_max_num_queries(4):  # session, user, librarian, search
        response = client.get(
            "/api/v1/local-info/search",
            {"q": "which libraries give cards to non-residents?"},
        )

    assert response.status_code == 200
    results = response.json()["results"]
    top3 = {(r["library"]["slug"], r["title"]) for r in results[:3]}
    assert top3 == {
        (slug, "Library cards and non-residents")
        for slug in ("springfield", "shelbyville", "ogdenville")
    }
    shelbyville = next(r for r in results if r["library"]["slug"] == "shelbyville")
    assert "<mark>" in shelbyville["snippet_html"]
    assert set(results[0]) == {
        "id",
        "library",
        "title",
        "kind",
        "snippet_html",
        "score",
    }


def test_staff_search_snippets_escape_everything_but_the_marks(
    springfield, make_librarian
):
    LocalInfoSection.objects.create(
        library=springfield, title="Alerts", body=HOSTILE + " bookmobile & <i>vans</i>"
    )
    client = Client()
    client.force_login(make_librarian(springfield).user)

    results = client.get("/api/v1/local-info/search", {"q": "bookmobile vans"}).json()[
        "results"
    ]

    snippet = results[0]["snippet_html"]
    assert "<mark>bookmobile</mark>" in snippet
    without_marks = snippet.replace("<mark>", "").replace("</mark>", "")
    assert "<" not in without_marks
    assert "&lt;img src=x onerror=alert(1)&gt;" in without_marks


def test_staff_search_needs_a_query(springfield, make_librarian):
    client = Client()
    client.force_login(make_librarian(springfield).user)

    response = client.get("/api/v1/local-info/search")

    assert (response.status_code, response.json()["code"]) == (400, "validation_error")


def test_staff_search_fallback_without_postgresql(demo_cards, monkeypatch):
    from libraries import local_info_search, textsearch

    monkeypatch.setattr(textsearch, "is_postgresql", lambda: False)

    hits = local_info_search.search_local_info(q="bookmobile")

    assert [(h.library_slug, h.title) for h in hits] == [
        ("shelbyville", "Current alerts")
    ]
    assert "<mark>bookmobile</mark>" in hits[0].snippet_html


def test_admin_pages_render_for_both_kinds_of_admin(
    client, cards, shelbyville, springfield_admin, make_librarian
):
    from faq import services as faq_services
    from faq.models import Answer, CannedResponse

    reporter = make_librarian(shelbyville)
    report = local_info.report_outdated_local_info(
        section_id=cards.pk, librarian=reporter
    )
    answer = faq_services.save_answer(
        answer=Answer(question="Q?", answer="A.", library=cards.library)
    )
    canned = faq_services.save_canned_response(
        response=CannedResponse(
            scope="library", library=cards.library, shortcut="x", title="X", body="Y"
        )
    )
    version = cards.versions.get()
    consortium_admin = make_librarian(
        None, role=Role.CONSORTIUM_ADMIN, username="admin"
    )
    pages = [
        reverse("admin:libraries_library_changelist") + "?local_info=fresh",
        reverse("admin:libraries_library_change", args=[cards.library_id]),
        reverse("admin:libraries_localinfosection_change", args=[cards.pk]),
        reverse("admin:libraries_localinfosection_add"),
        reverse("admin:libraries_localinfoversion_changelist"),
        reverse("admin:libraries_localinfoversion_change", args=[version.pk]),
        reverse("admin:libraries_outdatedreport_changelist") + "?state=open",
        reverse("admin:libraries_outdatedreport_change", args=[report.pk]),
        reverse("admin:faq_answer_changelist") + "?origin=written",
        reverse("admin:faq_answer_add"),
        reverse("admin:faq_answer_change", args=[answer.pk]),
        reverse("admin:faq_cannedresponse_changelist"),
        reverse("admin:faq_cannedresponse_add"),
        reverse("admin:faq_cannedresponse_change", args=[canned.pk]),
    ]
    for user in (springfield_admin.user, consortium_admin.user):
        client.force_login(user)
        for page in pages:
            assert client.get(page).status_code == 200, (user, page)
