"""Services for librarians, local info verification and service areas."""

from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model

from libraries import services
from libraries.models import Librarian, Role, ServiceArea, ServiceAreaKind
from refdesk.errors import Forbidden, StateConflict, ValidationFailed

NOW = datetime(2026, 3, 9, 15, 30, tzinfo=UTC)


def reload(librarian: Librarian) -> Librarian:
    return Librarian.objects.select_related("user").get(pk=librarian.pk)


# create_librarian
# ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "is_staff", "is_superuser"),
    [
        pytest.param(Role.LIBRARIAN, False, False, id="librarian"),
        pytest.param(Role.LIBRARY_ADMIN, True, False, id="library-admin"),
        pytest.param(Role.CONSORTIUM_ADMIN, True, True, id="consortium-admin"),
    ],
)
def test_create_librarian_sets_admin_flags_from_the_role(
    springfield, role, is_staff, is_superuser
):
    librarian = services.create_librarian(
        library=springfield,
        username="lisa",
        email="lisa@springfield.example",
        display_name="Lisa",
        role=role,
        password="a-long-enough-password",
    )

    stored = reload(librarian)
    assert stored.role == role
    assert stored.library == springfield
    assert stored.display_name == "Lisa"
    assert stored.user.username == "lisa"
    assert stored.user.email == "lisa@springfield.example"
    assert stored.user.is_staff is is_staff
    assert stored.user.is_superuser is is_superuser
    assert stored.user.check_password("a-long-enough-password")
    assert stored.user.user_permissions.count() == 0


def test_create_librarian_without_password_gets_an_unusable_one(springfield):
    librarian = services.create_librarian(
        library=springfield,
        username="ned",
        email="ned@springfield.example",
        display_name="Ned",
        role=Role.LIBRARIAN,
    )

    assert not reload(librarian).user.has_usable_password()


def test_consortium_admin_may_belong_to_no_library(db):
    librarian = services.create_librarian(
        library=None,
        username="admin",
        email="admin@consortium.example",
        display_name="Admin",
        role=Role.CONSORTIUM_ADMIN,
    )

    assert reload(librarian).library is None


def test_librarian_without_a_library_is_refused(db):
    with pytest.raises(ValidationFailed):
        services.create_librarian(
            library=None,
            username="moe",
            email="moe@example.org",
            display_name="Moe",
            role=Role.LIBRARIAN,
        )

    assert not get_user_model().objects.filter(username="moe").exists()


def test_taken_username_is_a_conflict_and_creates_nothing(springfield, make_librarian):
    make_librarian(springfield, username="lisa")

    with pytest.raises(StateConflict):
        services.create_librarian(
            library=springfield,
            username="lisa",
            email="other@example.org",
            display_name="Other Lisa",
            role=Role.LIBRARIAN,
        )

    assert Librarian.objects.count() == 1


# set_librarian_role
# ----------------------------------------------------------------------


def test_library_admin_promotes_and_demotes_their_own_staff(
    springfield, make_librarian
):
    boss = make_librarian(springfield, role=Role.LIBRARY_ADMIN)
    lisa = make_librarian(springfield)

    promoted = services.set_librarian_role(
        librarian=lisa, role=Role.LIBRARY_ADMIN, acting_user=boss.user
    )
    assert promoted.role == Role.LIBRARY_ADMIN
    assert reload(lisa).user.is_staff is True
    assert reload(lisa).user.is_superuser is False

    services.set_librarian_role(
        librarian=lisa, role=Role.LIBRARIAN, acting_user=boss.user
    )
    assert reload(lisa).role == Role.LIBRARIAN
    assert reload(lisa).user.is_staff is False


def test_consortium_admin_grants_and_removes_consortium_admin(
    springfield, make_librarian
):
    admin = make_librarian(None, role=Role.CONSORTIUM_ADMIN)
    lisa = make_librarian(springfield)

    services.set_librarian_role(
        librarian=lisa, role=Role.CONSORTIUM_ADMIN, acting_user=admin.user
    )
    assert reload(lisa).user.is_superuser is True
    assert reload(lisa).user.is_staff is True

    services.set_librarian_role(
        librarian=lisa, role=Role.LIBRARIAN, acting_user=admin.user
    )
    assert reload(lisa).user.is_superuser is False
    assert reload(lisa).user.is_staff is False


def test_plain_superuser_without_librarian_record_may_set_roles(
    springfield, make_librarian
):
    root = get_user_model().objects.create_superuser("root", "root@example.org", "x")
    lisa = make_librarian(springfield)

    services.set_librarian_role(
        librarian=lisa, role=Role.LIBRARY_ADMIN, acting_user=root
    )

    assert reload(lisa).role == Role.LIBRARY_ADMIN


@pytest.mark.parametrize(
    ("target_is", "role"),
    [
        pytest.param("self", Role.LIBRARIAN, id="demote-self"),
        pytest.param("self", Role.CONSORTIUM_ADMIN, id="escalate-self"),
        pytest.param("colleague", Role.CONSORTIUM_ADMIN, id="escalate-colleague"),
        pytest.param("other-library", Role.LIBRARY_ADMIN, id="other-library-staff"),
        pytest.param("consortium-admin", Role.LIBRARIAN, id="demote-consortium-admin"),
    ],
)
def test_library_admin_cannot_exceed_their_remit(
    springfield, shelbyville, make_librarian, target_is, role
):
    boss = make_librarian(springfield, role=Role.LIBRARY_ADMIN)
    target = {
        "self": lambda: boss,
        "colleague": lambda: make_librarian(springfield),
        "other-library": lambda: make_librarian(shelbyville),
        "consortium-admin": lambda: make_librarian(
            springfield, role=Role.CONSORTIUM_ADMIN
        ),
    }[target_is]()
    before = reload(target)

    with pytest.raises(Forbidden):
        services.set_librarian_role(librarian=target, role=role, acting_user=boss.user)

    after = reload(target)
    assert after.role == before.role
    assert after.user.is_staff == before.user.is_staff
    assert after.user.is_superuser == before.user.is_superuser


def test_plain_librarian_cannot_change_roles(springfield, make_librarian):
    lisa = make_librarian(springfield)
    ned = make_librarian(springfield)

    with pytest.raises(Forbidden):
        services.set_librarian_role(
            librarian=ned, role=Role.LIBRARY_ADMIN, acting_user=lisa.user
        )
    with pytest.raises(Forbidden):
        services.set_librarian_role(
            librarian=lisa, role=Role.LIBRARY_ADMIN, acting_user=lisa.user
        )

    assert reload(ned).role == Role.LIBRARIAN
    assert reload(lisa).role == Role.LIBRARIAN


def test_deactivated_library_admin_cannot_change_roles(springfield, make_librarian):
    boss = make_librarian(springfield, role=Role.LIBRARY_ADMIN)
    lisa = make_librarian(springfield)
    boss.user.is_active = False
    boss.user.save(update_fields=["is_active"])

    with pytest.raises(Forbidden):
        services.set_librarian_role(
            librarian=lisa, role=Role.LIBRARY_ADMIN, acting_user=boss.user
        )


def test_consortium_admin_without_library_cannot_become_librarian(make_librarian):
    admin = make_librarian(None, role=Role.CONSORTIUM_ADMIN)
    other = make_librarian(None, role=Role.CONSORTIUM_ADMIN)

    with pytest.raises(ValidationFailed):
        services.set_librarian_role(
            librarian=other, role=Role.LIBRARIAN, acting_user=admin.user
        )

    assert reload(other).role == Role.CONSORTIUM_ADMIN


def test_unknown_role_is_refused(springfield, make_librarian):
    admin = make_librarian(None, role=Role.CONSORTIUM_ADMIN)
    lisa = make_librarian(springfield)

    with pytest.raises(ValidationFailed):
        services.set_librarian_role(
            librarian=lisa, role="wizard", acting_user=admin.user
        )


# mark_local_info_verified
# ----------------------------------------------------------------------


def test_library_admin_marks_their_local_info_verified(springfield, make_librarian):
    boss = make_librarian(springfield, role=Role.LIBRARY_ADMIN)

    library = services.mark_local_info_verified(
        library=springfield, user=boss.user, now=NOW
    )

    assert library.local_info_verified_at == NOW
    assert library.local_info_verified_by == boss.user


def test_consortium_admin_verifies_any_library(shelbyville, make_librarian):
    admin = make_librarian(None, role=Role.CONSORTIUM_ADMIN)

    library = services.mark_local_info_verified(
        library=shelbyville, user=admin.user, now=NOW
    )

    assert library.local_info_verified_by == admin.user


def test_nobody_verifies_another_librarys_local_info(
    springfield, shelbyville, make_librarian
):
    boss = make_librarian(springfield, role=Role.LIBRARY_ADMIN)

    with pytest.raises(Forbidden):
        services.mark_local_info_verified(library=shelbyville, user=boss.user, now=NOW)

    shelbyville.refresh_from_db()
    assert shelbyville.local_info_verified_at is None


# service areas
# ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "stored"),
    [
        pytest.param(ServiceAreaKind.POSTAL_CODE, " sw1a 1aa ", "SW1A1AA", id="uk"),
        pytest.param(ServiceAreaKind.POSTAL_CODE, "62701", "62701", id="zip"),
        pytest.param(
            ServiceAreaKind.PLACE, "  North   Haverbrook ", "North Haverbrook"
        ),
        pytest.param(
            ServiceAreaKind.PLACE, "Springfield\tHeights", "Springfield Heights"
        ),
    ],
)
def test_add_service_area_normalises_the_value(springfield, kind, value, stored):
    area = services.add_service_area(library=springfield, kind=kind, value=value)

    assert ServiceArea.objects.get(pk=area.pk).value == stored


def test_add_service_area_is_idempotent_across_spelling(springfield):
    first = services.add_service_area(
        library=springfield, kind=ServiceAreaKind.PLACE, value="Capital City"
    )
    again = services.add_service_area(
        library=springfield, kind=ServiceAreaKind.PLACE, value=" capital  city"
    )

    assert again.pk == first.pk
    assert ServiceArea.objects.filter(library=springfield).count() == 1


def test_save_service_area_normalises_an_edited_value(springfield):
    area = ServiceArea(library=springfield, kind=ServiceAreaKind.POSTAL_CODE)
    area.value = "ec1a 1bb"

    services.save_service_area(area=area)

    assert ServiceArea.objects.get(pk=area.pk).value == "EC1A1BB"


def test_blank_service_area_is_refused(springfield):
    with pytest.raises(ValidationFailed):
        services.add_service_area(
            library=springfield, kind=ServiceAreaKind.PLACE, value="   "
        )
