"""Admin scoping: consortium admins see everything, library admins their own library.

A library admin asking for another library's objects gets 403 (the object is
looked up outside their scope and refused by `has_change_permission`), never
its data; a plain librarian is sent to the admin login.
"""

from datetime import time

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from libraries.models import (
    Closure,
    Librarian,
    Library,
    LocalInfoKind,
    LocalInfoSection,
    Role,
    ServiceArea,
    WeeklyHours,
    WidgetOrigin,
)

PASSWORD = "saxophone-jazz-42"


def url(name: str, *args) -> str:
    return reverse(f"admin:libraries_{name}", args=args)


def form_data(response) -> dict:
    """The POST body a browser would send back for an admin change page as shown."""
    data: dict = {}
    _add_form(data, response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        _add_form(data, formset.management_form)
        for form in formset.forms:
            _add_form(data, form)
    return data


def _add_form(data: dict, form) -> None:
    for name in form.fields:
        bound = form[name]
        value = bound.value()
        if value is None or value is False:
            continue
        if value is True:
            value = "on"
        data[bound.html_name] = value


@pytest.fixture
def consortium_admin(make_librarian) -> Librarian:
    return make_librarian(None, role=Role.CONSORTIUM_ADMIN, username="admin")


@pytest.fixture
def springfield_admin(springfield, make_librarian) -> Librarian:
    return make_librarian(
        springfield, role=Role.LIBRARY_ADMIN, username="skinner", display_name="Seymour"
    )


@pytest.fixture
def shelbyville_staff(shelbyville, make_librarian) -> Librarian:
    return make_librarian(shelbyville, username="shelby-ref", display_name="Shelby Ref")


@pytest.fixture
def shelbyville_info(shelbyville) -> LocalInfoSection:
    return LocalInfoSection.objects.create(
        library=shelbyville,
        kind=LocalInfoKind.CARDS,
        title="Shelbyville card rules",
        body="Residents of Shelbyville only; secret lemon-tree policy.",
    )


@pytest.fixture
def springfield_info(springfield) -> LocalInfoSection:
    return LocalInfoSection.objects.create(
        library=springfield,
        kind=LocalInfoKind.BORROWING,
        title="Springfield renewals",
        body="Renew **twice** online.",
    )


# who gets in
# ----------------------------------------------------------------------


def test_plain_librarian_is_sent_to_the_admin_login(
    client, springfield, make_librarian
):
    lisa = make_librarian(springfield)
    client.force_login(lisa.user)

    for path in (reverse("admin:index"), url("library_changelist")):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_library_admin_holds_no_django_permissions_and_no_user_admin(
    client, springfield_admin
):
    client.force_login(springfield_admin.user)

    assert springfield_admin.user.get_all_permissions() == set()
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 403
    assert client.get(reverse("admin:auth_group_changelist")).status_code == 403
    index = client.get(reverse("admin:index"))
    assert index.status_code == 200
    assert url("library_changelist") in index.text
    assert reverse("admin:auth_user_changelist") not in index.text


def test_consortium_admin_sees_every_library(
    client, consortium_admin, springfield, shelbyville, ogdenville
):
    client.force_login(consortium_admin.user)

    response = client.get(url("library_changelist"))

    assert response.status_code == 200
    assert response.context["cl"].result_count == 3
    for library in (springfield, shelbyville, ogdenville):
        assert library.name in response.text


def test_consortium_admin_library_changelist_costs_a_fixed_number_of_queries(
    client, consortium_admin, make_library, django_assert_max_num_queries
):
    for slug in ("springfield", "shelbyville", "ogdenville", "capital", "brockway"):
        make_library(slug)
    client.force_login(consortium_admin.user)

    with django_assert_max_num_queries(7):
        response = client.get(url("library_changelist"))

    assert response.context["cl"].result_count == 5


# library admins see only their own library
# ----------------------------------------------------------------------


def test_library_admin_lists_only_their_library(
    client, springfield_admin, springfield, shelbyville
):
    client.force_login(springfield_admin.user)

    response = client.get(url("library_changelist"))

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [springfield]
    assert shelbyville.name not in response.text


def test_library_admin_lists_only_their_librarians(
    client, springfield_admin, shelbyville_staff, make_librarian, springfield
):
    colleague = make_librarian(springfield, display_name="Lisa")
    client.force_login(springfield_admin.user)

    response = client.get(url("librarian_changelist"))

    assert response.status_code == 200
    assert set(response.context["cl"].result_list) == {springfield_admin, colleague}
    assert "Shelby Ref" not in response.text
    assert "shelby-ref" not in response.text


def test_library_admin_lists_only_their_local_info(
    client, springfield_admin, springfield_info, shelbyville_info
):
    client.force_login(springfield_admin.user)

    response = client.get(url("localinfosection_changelist"))

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [springfield_info]
    assert "Shelbyville card rules" not in response.text


def test_library_admin_searching_finds_nothing_of_other_libraries(
    client, springfield_admin, shelbyville_staff, shelbyville_info
):
    client.force_login(springfield_admin.user)

    librarians = client.get(url("librarian_changelist"), {"q": "shelby"})
    info = client.get(url("localinfosection_changelist"), {"q": "lemon"})

    assert librarians.context["cl"].result_count == 0
    assert info.context["cl"].result_count == 0


@pytest.mark.parametrize(
    "page",
    ["library_change", "library_history", "library_delete"],
)
def test_library_admin_is_refused_another_librarys_pages(
    client, springfield_admin, shelbyville, page
):
    client.force_login(springfield_admin.user)

    response = client.get(url(page, shelbyville.pk))

    assert response.status_code == 403
    assert shelbyville.name.encode() not in response.content
    assert shelbyville.contact_email.encode() not in response.content


def test_library_admin_is_refused_another_librarys_librarian(
    client, springfield_admin, shelbyville_staff
):
    client.force_login(springfield_admin.user)

    for page in ("librarian_change", "librarian_history"):
        response = client.get(url(page, shelbyville_staff.pk))
        assert response.status_code == 403
        assert b"Shelby Ref" not in response.content
        assert b"shelby-ref" not in response.content


def test_library_admin_is_refused_another_librarys_local_info(
    client, springfield_admin, shelbyville_info
):
    client.force_login(springfield_admin.user)

    for page in (
        "localinfosection_change",
        "localinfosection_history",
        "localinfosection_delete",
    ):
        response = client.get(url(page, shelbyville_info.pk))
        assert response.status_code == 403
        assert b"lemon-tree" not in response.content


def test_missing_object_still_gets_djangos_does_not_exist_redirect(
    client, springfield_admin
):
    client.force_login(springfield_admin.user)

    response = client.get(url("library_change", 987654))

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")


def test_post_to_another_librarys_change_url_changes_nothing(
    client, consortium_admin, springfield_admin, shelbyville
):
    client.force_login(consortium_admin.user)
    data = form_data(client.get(url("library_change", shelbyville.pk)))
    data.update(
        name="Springfield Annex",
        contact_email="owned@springfield.example",
        takes_overflow="",
        **{
            "weekly_hours-TOTAL_FORMS": "1",
            "weekly_hours-0-weekday": "0",
            "weekly_hours-0-opens": "09:00",
            "weekly_hours-0-closes": "17:00",
        },
    )
    client.force_login(springfield_admin.user)

    response = client.post(url("library_change", shelbyville.pk), data)

    assert response.status_code == 403
    stored = Library.objects.get(pk=shelbyville.pk)
    assert stored.name == "Shelbyville Public Library"
    assert stored.contact_email == shelbyville.contact_email
    assert stored.takes_overflow is True
    assert not WeeklyHours.objects.filter(library=shelbyville).exists()


def test_post_to_another_librarys_librarian_changes_nothing(
    client, springfield_admin, shelbyville_staff, springfield
):
    client.force_login(springfield_admin.user)

    response = client.post(
        url("librarian_change", shelbyville_staff.pk),
        {
            "role": Role.LIBRARY_ADMIN,
            "display_name": "Mine now",
            "library": springfield.pk,
        },
    )

    assert response.status_code == 403
    stored = Librarian.objects.select_related("user").get(pk=shelbyville_staff.pk)
    assert stored.role == Role.LIBRARIAN
    assert stored.display_name == "Shelby Ref"
    assert stored.library_id == shelbyville_staff.library_id
    assert stored.user.is_staff is False


def test_post_to_another_librarys_local_info_changes_nothing(
    client, springfield_admin, shelbyville_info, springfield
):
    client.force_login(springfield_admin.user)

    response = client.post(
        url("localinfosection_change", shelbyville_info.pk),
        {
            "library": springfield.pk,
            "kind": LocalInfoKind.ALERTS,
            "title": "Defaced",
            "body": "x",
            "position": "0",
        },
    )
    deleted = client.post(
        url("localinfosection_delete", shelbyville_info.pk), {"post": "yes"}
    )

    assert response.status_code == 403
    assert deleted.status_code == 403
    stored = LocalInfoSection.objects.get(pk=shelbyville_info.pk)
    assert stored.title == "Shelbyville card rules"
    assert stored.library_id == shelbyville_info.library_id


def test_verify_action_cannot_reach_another_library(
    client, springfield_admin, springfield, shelbyville
):
    client.force_login(springfield_admin.user)

    client.post(
        url("library_changelist"),
        {
            "action": "mark_local_info_verified",
            "_selected_action": [springfield.pk, shelbyville.pk],
            "index": "0",
        },
    )

    springfield.refresh_from_db()
    shelbyville.refresh_from_db()
    assert springfield.local_info_verified_by == springfield_admin.user
    assert springfield.local_info_verified_at is not None
    assert shelbyville.local_info_verified_at is None


# what a library admin may change on their own library
# ----------------------------------------------------------------------


def test_library_admin_cannot_add_or_delete_libraries(
    client, springfield_admin, springfield
):
    client.force_login(springfield_admin.user)

    assert client.get(url("library_add")).status_code == 403
    assert (
        client.post(url("library_delete", springfield.pk), {"post": "yes"}).status_code
        == 403
    )
    assert Library.objects.filter(pk=springfield.pk).exists()


def test_library_admin_edits_contact_but_not_slug_or_overflow(
    client, springfield_admin, springfield, shelbyville
):
    client.force_login(springfield_admin.user)
    page = client.get(url("library_change", springfield.pk))
    assert page.status_code == 200
    data = form_data(page)
    assert "slug" not in data
    assert "takes_overflow" not in data
    data.update(
        contact_email="desk@springfield.example",
        brand_color="#123456",
        # crafted: fields shown read-only are ignored
        slug="hijacked",
        takes_overflow="",
        sends_overflow="",
        chats_per_librarian="99",
        partners=[shelbyville.pk],
    )

    response = client.post(url("library_change", springfield.pk), data)

    assert response.status_code == 302
    stored = Library.objects.get(pk=springfield.pk)
    assert stored.contact_email == "desk@springfield.example"
    assert stored.brand_color == "#123456"
    assert stored.slug == "springfield"
    assert stored.takes_overflow is True
    assert stored.sends_overflow is True
    assert stored.chats_per_librarian == 3
    assert list(stored.partners.all()) == []


def test_consortium_admin_sets_overflow_and_partners(
    client, consortium_admin, springfield, shelbyville
):
    client.force_login(consortium_admin.user)
    data = form_data(client.get(url("library_change", springfield.pk)))
    data.update(takes_overflow="", partners=[shelbyville.pk], chats_per_librarian="5")

    response = client.post(url("library_change", springfield.pk), data)

    assert response.status_code == 302
    stored = Library.objects.get(pk=springfield.pk)
    assert stored.takes_overflow is False
    assert stored.chats_per_librarian == 5
    assert list(stored.partners.all()) == [shelbyville]


def post_own_library(client, library: Library, **changes):
    data = form_data(client.get(url("library_change", library.pk)))
    data.update(changes)
    return client.post(url("library_change", library.pk), data)


def test_bad_time_zone_is_refused_in_the_admin(client, springfield_admin, springfield):
    client.force_login(springfield_admin.user)

    response = post_own_library(client, springfield, timezone="Springfield/Evergreen")

    assert response.status_code == 200
    assert (
        "Springfield/Evergreen is not a known time zone; use an IANA name such as "
        "America/Chicago or Europe/London."
    ) in response.text
    assert Library.objects.get(pk=springfield.pk).timezone == "America/Chicago"


def test_overlapping_hours_are_refused_in_the_admin(
    client, springfield_admin, springfield
):
    client.force_login(springfield_admin.user)

    response = post_own_library(
        client,
        springfield,
        **{
            "weekly_hours-TOTAL_FORMS": "2",
            "weekly_hours-0-weekday": "0",
            "weekly_hours-0-opens": "09:00",
            "weekly_hours-0-closes": "13:00",
            "weekly_hours-1-weekday": "0",
            "weekly_hours-1-opens": "12:00",
            "weekly_hours-1-closes": "18:00",
        },
    )

    assert response.status_code == 200
    assert "Monday: 09:00–13:00 overlaps 12:00–18:00." in response.text
    assert not WeeklyHours.objects.filter(library=springfield).exists()


def test_overnight_hours_are_accepted_in_the_admin(
    client, springfield_admin, springfield
):
    client.force_login(springfield_admin.user)
    page = client.get(url("library_change", springfield.pk))
    assert "Closing at or before opening runs overnight" in page.text

    response = post_own_library(
        client,
        springfield,
        **{
            "weekly_hours-TOTAL_FORMS": "2",
            "weekly_hours-0-weekday": "4",
            "weekly_hours-0-opens": "09:00",
            "weekly_hours-0-closes": "17:00",
            "weekly_hours-1-weekday": "4",
            "weekly_hours-1-opens": "22:00",
            "weekly_hours-1-closes": "02:00",
        },
    )

    assert response.status_code == 302
    assert set(
        WeeklyHours.objects.filter(library=springfield).values_list("opens", "closes")
    ) == {(time(9), time(17)), (time(22), time(2))}


def test_malformed_origin_is_refused_in_the_admin(
    client, springfield_admin, springfield
):
    client.force_login(springfield_admin.user)

    response = post_own_library(
        client,
        springfield,
        **{
            "widget_origins-TOTAL_FORMS": "1",
            "widget_origins-0-origin": "https://kiosk.springfield.example/ask",
        },
    )

    assert response.status_code == 200
    assert "Remove the path “/ask”" in response.text
    assert not WidgetOrigin.objects.exists()


def test_inverted_closure_is_refused_in_the_admin(
    client, springfield_admin, springfield
):
    client.force_login(springfield_admin.user)

    response = post_own_library(
        client,
        springfield,
        **{
            "closures-TOTAL_FORMS": "1",
            "closures-0-first": "2026-12-26",
            "closures-0-last": "2026-12-24",
        },
    )

    assert response.status_code == 200
    assert "The last day cannot be before the first day." in response.text
    assert not Closure.objects.exists()


def test_service_areas_are_normalised_when_saved_in_the_admin(
    client, springfield_admin, springfield
):
    client.force_login(springfield_admin.user)

    response = post_own_library(
        client,
        springfield,
        **{
            "service_areas-TOTAL_FORMS": "2",
            "service_areas-0-kind": "postal_code",
            "service_areas-0-value": " sw1a 1aa ",
            "service_areas-1-kind": "place",
            "service_areas-1-value": "  North   Haverbrook ",
        },
    )

    assert response.status_code == 302
    assert set(
        ServiceArea.objects.filter(library=springfield).values_list("kind", "value")
    ) == {("postal_code", "SW1A1AA"), ("place", "North Haverbrook")}


def test_library_admin_edits_own_local_info_and_sees_a_safe_preview(
    client, springfield_admin, springfield_info
):
    springfield_info.body = "Renew **twice**. <script>alert(1)</script>"
    springfield_info.save()
    client.force_login(springfield_admin.user)

    page = client.get(url("localinfosection_change", springfield_info.pk))

    assert page.status_code == 200
    assert "<strong>twice</strong>" in page.text
    assert "<script>alert(1)</script>" not in page.text


# librarians and roles
# ----------------------------------------------------------------------


def test_library_admin_adds_a_librarian_to_their_own_library_only(
    client, springfield_admin, springfield, shelbyville
):
    client.force_login(springfield_admin.user)

    response = client.post(
        url("librarian_add"),
        {
            "username": "lisa",
            "email": "lisa@springfield.example",
            "display_name": "Lisa",
            "role": Role.LIBRARIAN,
            "library": shelbyville.pk,  # crafted: the field is fixed
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )

    assert response.status_code == 302
    lisa = Librarian.objects.select_related("user").get(user__username="lisa")
    assert lisa.library == springfield
    assert lisa.role == Role.LIBRARIAN
    assert lisa.user.check_password(PASSWORD)
    assert lisa.user.is_staff is False


def test_library_admin_cannot_create_a_consortium_admin(
    client, springfield_admin, springfield
):
    client.force_login(springfield_admin.user)
    page = client.get(url("librarian_add"))
    assert 'value="consortium_admin"' not in page.text

    response = client.post(
        url("librarian_add"),
        {
            "username": "sneaky",
            "email": "sneaky@springfield.example",
            "display_name": "Sneaky",
            "role": Role.CONSORTIUM_ADMIN,
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )

    assert response.status_code == 200
    assert "consortium_admin is not one of the available choices" in response.text
    assert not get_user_model().objects.filter(username="sneaky").exists()


def test_library_admin_promotes_a_colleague_through_the_service(
    client, springfield_admin, springfield, make_librarian
):
    lisa = make_librarian(springfield, display_name="Lisa")
    client.force_login(springfield_admin.user)

    response = client.post(
        url("librarian_change", lisa.pk),
        {"role": Role.LIBRARY_ADMIN, "display_name": "Lisa S."},
    )

    assert response.status_code == 302
    stored = Librarian.objects.select_related("user").get(pk=lisa.pk)
    assert stored.role == Role.LIBRARY_ADMIN
    assert stored.display_name == "Lisa S."
    assert stored.user.is_staff is True
    assert stored.user.is_superuser is False


def test_library_admin_cannot_escalate_a_colleague_to_consortium_admin(
    client, springfield_admin, springfield, make_librarian
):
    lisa = make_librarian(springfield)
    client.force_login(springfield_admin.user)
    page = client.get(url("librarian_change", lisa.pk))
    assert 'value="consortium_admin"' not in page.text

    response = client.post(
        url("librarian_change", lisa.pk),
        {"role": Role.CONSORTIUM_ADMIN, "display_name": "Lisa"},
    )

    assert response.status_code == 200
    assert "consortium_admin is not one of the available choices" in response.text
    stored = Librarian.objects.select_related("user").get(pk=lisa.pk)
    assert stored.role == Role.LIBRARIAN
    assert stored.user.is_superuser is False


def test_library_admin_cannot_change_their_own_role(
    client, springfield_admin, springfield, shelbyville
):
    client.force_login(springfield_admin.user)
    page = client.get(url("librarian_change", springfield_admin.pk))
    assert page.status_code == 200
    assert 'name="role"' not in page.text

    response = client.post(
        url("librarian_change", springfield_admin.pk),
        {
            "role": Role.CONSORTIUM_ADMIN,
            "display_name": "Principal Skinner",
            "library": shelbyville.pk,
        },
    )

    assert response.status_code == 302
    stored = Librarian.objects.select_related("user").get(pk=springfield_admin.pk)
    assert stored.display_name == "Principal Skinner"
    assert stored.role == Role.LIBRARY_ADMIN
    assert stored.library == springfield
    assert stored.user.is_superuser is False


def test_library_admin_may_view_but_not_edit_a_consortium_admin_of_their_library(
    client, springfield_admin, springfield, make_librarian
):
    chief = make_librarian(
        springfield, role=Role.CONSORTIUM_ADMIN, display_name="Chief"
    )
    client.force_login(springfield_admin.user)

    page = client.get(url("librarian_change", chief.pk))
    response = client.post(
        url("librarian_change", chief.pk),
        {"role": Role.LIBRARIAN, "display_name": "Demoted"},
    )

    assert page.status_code == 200
    assert 'name="role"' not in page.text
    assert response.status_code == 403
    stored = Librarian.objects.select_related("user").get(pk=chief.pk)
    assert stored.role == Role.CONSORTIUM_ADMIN
    assert stored.user.is_superuser is True


def test_library_admin_cannot_delete_librarians(
    client, springfield_admin, springfield, make_librarian
):
    lisa = make_librarian(springfield)
    client.force_login(springfield_admin.user)

    response = client.post(url("librarian_delete", lisa.pk), {"post": "yes"})

    assert response.status_code == 403
    assert Librarian.objects.filter(pk=lisa.pk).exists()


def test_consortium_admin_makes_a_consortium_admin(
    client, consortium_admin, springfield, make_librarian
):
    lisa = make_librarian(springfield)
    client.force_login(consortium_admin.user)

    response = client.post(
        url("librarian_change", lisa.pk),
        {
            "role": Role.CONSORTIUM_ADMIN,
            "display_name": "Lisa",
            "library": springfield.pk,
        },
    )

    assert response.status_code == 302
    stored = Librarian.objects.select_related("user").get(pk=lisa.pk)
    assert stored.role == Role.CONSORTIUM_ADMIN
    assert stored.user.is_superuser is True
    assert stored.user.is_staff is True


def test_consortium_admin_moves_a_consortium_admin_into_a_library_as_librarian(
    client, consortium_admin, springfield, make_librarian
):
    other = make_librarian(None, role=Role.CONSORTIUM_ADMIN)
    client.force_login(consortium_admin.user)

    response = client.post(
        url("librarian_change", other.pk),
        {"role": Role.LIBRARIAN, "display_name": "Other", "library": springfield.pk},
    )

    assert response.status_code == 302
    stored = Librarian.objects.select_related("user").get(pk=other.pk)
    assert (stored.role, stored.library) == (Role.LIBRARIAN, springfield)
    assert stored.user.is_superuser is False


def test_librarian_role_needs_a_library_in_the_admin(
    client, consortium_admin, make_librarian
):
    other = make_librarian(None, role=Role.CONSORTIUM_ADMIN)
    client.force_login(consortium_admin.user)

    response = client.post(
        url("librarian_change", other.pk),
        {"role": Role.LIBRARIAN, "display_name": "Other", "library": ""},
    )

    assert response.status_code == 200
    assert "Choose the library this person works for" in response.text
    assert Librarian.objects.get(pk=other.pk).role == Role.CONSORTIUM_ADMIN


def test_verify_action_on_the_change_form(client, springfield_admin, springfield):
    client.force_login(springfield_admin.user)

    response = client.post(
        url("library_change", springfield.pk),
        {
            "CHANGE_FORM-action": "mark_local_info_verified",
            "_selected_action": [springfield.pk],
        },
    )

    assert response.status_code == 302
    springfield.refresh_from_db()
    assert springfield.local_info_verified_by == springfield_admin.user


def test_library_admin_adds_local_info_to_their_own_library_only(
    client, springfield_admin, springfield, shelbyville
):
    client.force_login(springfield_admin.user)

    response = client.post(
        url("localinfosection_add"),
        {
            "library": shelbyville.pk,  # crafted: the field is fixed
            "kind": LocalInfoKind.ILL,
            "title": "Interlibrary loan",
            "body": "Free for card holders.",
            "position": "1",
        },
    )

    assert response.status_code == 302
    section = LocalInfoSection.objects.get(title="Interlibrary loan")
    assert section.library == springfield


def test_library_autocomplete_offers_a_library_admin_only_their_library(
    client, springfield_admin, springfield, shelbyville
):
    client.force_login(springfield_admin.user)

    response = client.get(
        reverse("admin:autocomplete"),
        {
            "app_label": "libraries",
            "model_name": "localinfosection",
            "field_name": "library",
            "term": "",
        },
    )

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [str(springfield.pk)]
