"""Admin forms and formsets refuse bad input with clear messages."""

from datetime import date, time

import pytest
from django.forms.models import inlineformset_factory

from libraries import forms
from libraries.models import (
    Library,
    Role,
    ServiceArea,
    ServiceAreaKind,
    SpecialHours,
    WeeklyHours,
    WidgetOrigin,
)

TIMEZONE_MESSAGE = (
    "Mars/Olympus_Mons is not a known time zone; use an IANA name such as "
    "America/Chicago or Europe/London."
)


def formset_data(prefix: str, rows: list[dict], initial: int = 0) -> dict[str, str]:
    data = {
        f"{prefix}-TOTAL_FORMS": str(len(rows)),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for i, row in enumerate(rows):
        for name, value in row.items():
            data[f"{prefix}-{i}-{name}"] = str(value)
    return data


def weekly_formset(library: Library, rows: list[dict]):
    formset_class = inlineformset_factory(
        Library,
        WeeklyHours,
        form=forms.WeeklyHoursForm,
        formset=forms.WeeklyHoursFormSet,
        extra=0,
    )
    return formset_class(formset_data("hours", rows), instance=library, prefix="hours")


def special_formset(library: Library, rows: list[dict]):
    formset_class = inlineformset_factory(
        Library,
        SpecialHours,
        form=forms.SpecialHoursForm,
        formset=forms.SpecialHoursFormSet,
        extra=0,
    )
    return formset_class(formset_data("sp", rows), instance=library, prefix="sp")


def area_formset(library: Library, rows: list[dict]):
    formset_class = inlineformset_factory(
        Library,
        ServiceArea,
        form=forms.ServiceAreaForm,
        formset=forms.ServiceAreaFormSet,
        extra=0,
    )
    return formset_class(formset_data("area", rows), instance=library, prefix="area")


def library_data(library: Library, **changes) -> dict:
    data = {
        "name": library.name,
        "slug": library.slug,
        "timezone": library.timezone,
        "website": library.website,
        "contact_email": library.contact_email,
        "brand_color": library.brand_color,
        "sends_overflow": "on",
        "takes_overflow": "on",
        "chats_per_librarian": "3",
    }
    data.update(changes)
    return data


# libraries
# ----------------------------------------------------------------------


def test_unknown_time_zone_is_refused_with_a_hint(springfield):
    form = forms.LibraryForm(
        library_data(springfield, timezone="Mars/Olympus_Mons"), instance=springfield
    )

    assert not form.is_valid()
    assert form.errors["timezone"] == [TIMEZONE_MESSAGE]


def test_known_time_zone_is_accepted(springfield):
    form = forms.LibraryForm(
        library_data(springfield, timezone="Europe/London"), instance=springfield
    )

    assert form.is_valid(), form.errors


def test_library_cannot_partner_itself(springfield, shelbyville):
    form = forms.LibraryForm(
        library_data(springfield, partners=[springfield.pk, shelbyville.pk]),
        instance=springfield,
    )

    assert not form.is_valid()
    assert "partners" in form.errors
    assert springfield not in form.fields["partners"].queryset


# widget origins
# ----------------------------------------------------------------------


def origin_form(library: Library, origin: str) -> forms.WidgetOriginForm:
    return forms.WidgetOriginForm(
        {"origin": origin}, instance=WidgetOrigin(library=library)
    )


@pytest.mark.parametrize(
    ("origin", "message_start"),
    [
        pytest.param(
            "https://www.springfield.example/",
            "Remove the trailing slash",
            id="trailing-slash",
        ),
        pytest.param(
            "https://www.springfield.example/ask/",
            "Remove the path “/ask/”",
            id="path",
        ),
        pytest.param(
            "https://www.springfield.example?x=1",
            "Remove the path “?x=1”",
            id="query",
        ),
        pytest.param(
            "www.springfield.example",
            "Enter a web origin: scheme, host and optional port",
            id="no-scheme",
        ),
        pytest.param(
            "ftp://www.springfield.example",
            "Enter a web origin: scheme, host and optional port",
            id="ftp",
        ),
        pytest.param(
            "https://user@www.springfield.example",
            "Enter a web origin: scheme, host and optional port",
            id="userinfo",
        ),
        pytest.param(
            "https://www.springfield.example:99999",
            "The port must be a number from 1 to 65535",
            id="port-too-big",
        ),
        pytest.param(
            "http://localhost:0",
            "The port must be a number from 1 to 65535",
            id="port-zero",
        ),
    ],
)
def test_malformed_origin_is_refused(springfield, origin, message_start):
    form = origin_form(springfield, origin)

    assert not form.is_valid()
    (message,) = form.errors["origin"]
    assert message.startswith(message_start)
    assert "e.g. https://www.springfieldlibrary.org" in message


@pytest.mark.parametrize(
    ("origin", "stored"),
    [
        pytest.param(
            "https://www.springfield.example", "https://www.springfield.example"
        ),
        pytest.param(
            " HTTPS://WWW.Springfield.Example ", "https://www.springfield.example"
        ),
        pytest.param("https://kiosk.example:443", "https://kiosk.example"),
        pytest.param("http://localhost:80", "http://localhost"),
        pytest.param("http://localhost:8080", "http://localhost:8080"),
        pytest.param("http://[::1]:8000", "http://[::1]:8000"),
    ],
)
def test_origin_is_normalised_as_browsers_send_it(springfield, origin, stored):
    form = origin_form(springfield, origin)

    assert form.is_valid(), form.errors
    assert form.cleaned_data["origin"] == stored


# hours
# ----------------------------------------------------------------------


def test_closes_help_text_says_early_closing_runs_overnight():
    help_text = forms.WeeklyHoursForm().fields["closes"].help_text

    assert "Closing at or before opening runs overnight" in help_text
    assert (
        "Closing at or before opening runs overnight"
        in forms.SpecialHoursForm().fields["closes"].help_text
    )


def test_overlapping_spans_on_one_weekday_are_refused(springfield):
    formset = weekly_formset(
        springfield,
        [
            {"weekday": 0, "opens": "09:00", "closes": "12:00"},
            {"weekday": 0, "opens": "11:00", "closes": "17:00"},
            {"weekday": 1, "opens": "11:00", "closes": "17:00"},
        ],
    )

    assert not formset.is_valid()
    assert formset.non_form_errors() == ["Monday: 09:00–12:00 overlaps 11:00–17:00."]


def test_same_spans_on_different_weekdays_are_fine(springfield):
    formset = weekly_formset(
        springfield,
        [{"weekday": day, "opens": "09:00", "closes": "17:00"} for day in range(7)],
    )

    assert formset.is_valid(), (formset.errors, formset.non_form_errors())


def test_split_shift_and_overnight_span_are_accepted_and_saved(springfield):
    formset = weekly_formset(
        springfield,
        [
            {"weekday": 4, "opens": "09:00", "closes": "12:00"},
            {"weekday": 4, "opens": "13:00", "closes": "17:00"},
            {"weekday": 4, "opens": "22:00", "closes": "02:00"},
            {"weekday": 5, "opens": "00:00", "closes": "00:00"},
        ],
    )

    assert formset.is_valid(), (formset.errors, formset.non_form_errors())
    formset.save()
    assert set(
        WeeklyHours.objects.filter(library=springfield).values_list(
            "weekday", "opens", "closes"
        )
    ) == {
        (4, time(9), time(12)),
        (4, time(13), time(17)),
        (4, time(22), time(2)),
        (5, time(0), time(0)),
    }


def test_overnight_span_running_past_a_later_span_is_refused(springfield):
    formset = weekly_formset(
        springfield,
        [
            {"weekday": 2, "opens": "20:00", "closes": "02:00"},
            {"weekday": 2, "opens": "21:00", "closes": "23:00"},
        ],
    )

    assert not formset.is_valid()
    assert formset.non_form_errors() == ["Wednesday: 20:00–02:00 overlaps 21:00–23:00."]


def test_empty_span_is_refused_on_its_row(springfield):
    formset = weekly_formset(
        springfield, [{"weekday": 0, "opens": "09:00", "closes": "09:00"}]
    )

    assert not formset.is_valid()
    assert formset.forms[0].errors["closes"] == [
        "09:00–09:00 is empty; use 00:00–00:00 for open around the clock."
    ]
    assert formset.non_form_errors() == []


def test_around_the_clock_cannot_be_combined_with_other_spans(springfield):
    formset = weekly_formset(
        springfield,
        [
            {"weekday": 6, "opens": "00:00", "closes": "00:00"},
            {"weekday": 6, "opens": "10:00", "closes": "14:00"},
        ],
    )

    assert not formset.is_valid()
    assert formset.non_form_errors()[0].startswith(
        "Sunday: 00:00–00:00 means open around the clock"
    )


def test_deleted_row_does_not_count_as_overlap(springfield):
    first = WeeklyHours.objects.create(
        library=springfield, weekday=0, opens=time(9), closes=time(12)
    )
    formset_class = inlineformset_factory(
        Library,
        WeeklyHours,
        form=forms.WeeklyHoursForm,
        formset=forms.WeeklyHoursFormSet,
        extra=0,
    )
    data = formset_data(
        "hours",
        [
            {
                "id": first.pk,
                "weekday": 0,
                "opens": "09:00",
                "closes": "12:00",
                "DELETE": "on",
            },
            {"weekday": 0, "opens": "10:00", "closes": "16:00"},
        ],
        initial=1,
    )
    formset = formset_class(data, instance=springfield, prefix="hours")

    assert formset.is_valid(), (formset.errors, formset.non_form_errors())


def test_overlapping_special_hours_on_one_date_are_refused(springfield):
    formset = special_formset(
        springfield,
        [
            {"day": "2026-12-24", "opens": "09:00", "closes": "13:00"},
            {"day": "2026-12-24", "opens": "12:00", "closes": "14:00"},
            {"day": "2026-12-31", "opens": "12:00", "closes": "14:00"},
        ],
    )

    assert not formset.is_valid()
    assert formset.non_form_errors() == [
        "2026-12-24: 09:00–13:00 overlaps 12:00–14:00."
    ]


def test_overnight_special_hours_are_accepted(springfield):
    formset = special_formset(
        springfield,
        [{"day": "2026-12-31", "opens": "20:00", "closes": "01:00", "note": "NYE"}],
    )

    assert formset.is_valid(), (formset.errors, formset.non_form_errors())
    formset.save()
    assert SpecialHours.objects.get(library=springfield).day == date(2026, 12, 31)


# closures
# ----------------------------------------------------------------------


def test_inverted_closure_is_refused(springfield):
    form = forms.ClosureForm(
        {"first": "2026-12-26", "last": "2026-12-24", "reason": "Holidays"}
    )
    form.instance.library = springfield

    assert not form.is_valid()
    assert form.errors == {"last": ["The last day cannot be before the first day."]}


def test_one_day_closure_is_accepted(springfield):
    form = forms.ClosureForm({"first": "2026-12-25", "last": "2026-12-25"})
    form.instance.library = springfield

    assert form.is_valid(), form.errors


# service areas
# ----------------------------------------------------------------------


def test_service_area_values_are_normalised(springfield):
    formset = area_formset(
        springfield,
        [
            {"kind": ServiceAreaKind.POSTAL_CODE, "value": " sw1a  1aa"},
            {"kind": ServiceAreaKind.PLACE, "value": "  North   Haverbrook  "},
        ],
    )

    assert formset.is_valid(), (formset.errors, formset.non_form_errors())
    assert [form.cleaned_data["value"] for form in formset.forms] == [
        "SW1A1AA",
        "North Haverbrook",
    ]


def test_service_area_listed_twice_in_one_submission_is_refused(springfield):
    formset = area_formset(
        springfield,
        [
            {"kind": ServiceAreaKind.POSTAL_CODE, "value": "62701"},
            {"kind": ServiceAreaKind.PLACE, "value": "Capital City"},
            {"kind": ServiceAreaKind.PLACE, "value": "capital  city"},
        ],
    )

    assert not formset.is_valid()
    assert formset.non_form_errors() == ["The place name capital city is listed twice."]


def test_service_area_already_stored_is_refused(springfield):
    ServiceArea.objects.create(
        library=springfield, kind=ServiceAreaKind.POSTAL_CODE, value="62701"
    )
    formset = area_formset(
        springfield, [{"kind": ServiceAreaKind.POSTAL_CODE, "value": " 627 01 "}]
    )

    assert not formset.is_valid()
    assert formset.forms[0].errors["value"] == [
        "This library already lists the postal code 62701."
    ]


# librarians
# ----------------------------------------------------------------------


def creation_data(library: Library | None, **changes) -> dict:
    data = {
        "username": "lisa",
        "email": "lisa@springfield.example",
        "display_name": "Lisa",
        "role": Role.LIBRARIAN,
        "library": library.pk if library else "",
        "password1": "saxophone-jazz-42",
        "password2": "saxophone-jazz-42",
    }
    data.update(changes)
    return data


def test_creation_form_accepts_a_complete_librarian(springfield):
    form = forms.LibrarianCreationForm(creation_data(springfield))

    assert form.is_valid(), form.errors
    assert form.creation_kwargs() == {
        "library": springfield,
        "username": "lisa",
        "email": "lisa@springfield.example",
        "display_name": "Lisa",
        "role": Role.LIBRARIAN,
        "password": "saxophone-jazz-42",
    }


def test_creation_form_refuses_mismatched_passwords(springfield):
    form = forms.LibrarianCreationForm(
        creation_data(springfield, password2="saxophone-jazz-43")
    )

    assert not form.is_valid()
    assert form.errors["password2"] == ["The two password fields didn’t match."]


def test_creation_form_refuses_weak_password(springfield):
    form = forms.LibrarianCreationForm(
        creation_data(springfield, password1="abc", password2="abc")
    )

    assert not form.is_valid()
    assert any("too short" in message for message in form.errors["password2"])


def test_creation_form_refuses_taken_username(springfield, make_librarian):
    make_librarian(springfield, username="Lisa")

    form = forms.LibrarianCreationForm(creation_data(springfield))

    assert not form.is_valid()
    assert form.errors["username"] == ["A user with that username already exists."]


def test_librarian_needs_a_library(db):
    form = forms.LibrarianCreationForm(creation_data(None))

    assert not form.is_valid()
    assert form.errors["library"] == [
        "Choose the library this person works for; only a consortium admin may "
        "have none."
    ]


def test_scoped_form_offers_only_assignable_roles(springfield):
    form_class = forms.LibrarianCreationForm.scoped(
        library=springfield, roles=[Role.LIBRARIAN, Role.LIBRARY_ADMIN]
    )

    form = form_class(creation_data(springfield, role=Role.CONSORTIUM_ADMIN))

    assert [value for value, _ in form.fields["role"].choices] == [
        Role.LIBRARIAN,
        Role.LIBRARY_ADMIN,
    ]
    assert not form.is_valid()
    assert form.errors["role"] == [
        "Select a valid choice. consortium_admin is not one of the available choices."
    ]


def test_scoped_form_ignores_a_submitted_library(springfield, shelbyville):
    form_class = forms.LibrarianCreationForm.scoped(
        library=springfield, roles=[Role.LIBRARIAN, Role.LIBRARY_ADMIN]
    )

    form = form_class(creation_data(shelbyville))

    assert form.is_valid(), form.errors
    assert form.cleaned_data["library"] == springfield
    assert form.fields["library"].disabled
