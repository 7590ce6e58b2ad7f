"""State changes for libraries and their staff: every write starts here."""

import logging
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from libraries import directory, selectors
from libraries.models import Librarian, Library, Role, ServiceArea
from refdesk.errors import Forbidden, StateConflict, ValidationFailed

logger = logging.getLogger(__name__)

LIBRARY_ADMIN_ROLES = frozenset({Role.LIBRARIAN, Role.LIBRARY_ADMIN})


def _user_flags(role: str) -> dict[str, bool]:
    """Django's admin flags follow the role: staff for admins, superuser for the
    consortium admin. Nobody gets Django model permissions; admin access is
    granted by role in `libraries.admin`."""
    return {
        "is_staff": role in {Role.LIBRARY_ADMIN, Role.CONSORTIUM_ADMIN},
        "is_superuser": role == Role.CONSORTIUM_ADMIN,
    }


def _check_role(role: str, library: Library | None) -> None:
    if role not in Role.values:
        raise ValidationFailed(
            f"unknown role {role!r}", errors={"role": [f"Choose one of {Role.values}."]}
        )
    if role != Role.CONSORTIUM_ADMIN and library is None:
        raise ValidationFailed(
            "a librarian or library admin belongs to a library",
            errors={"library": ["Choose the library this person works for."]},
        )


@transaction.atomic
def create_librarian(
    *,
    library: Library | None,
    username: str,
    email: str,
    display_name: str,
    role: str,
    password: str | None = None,
) -> Librarian:
    """Create the Django user and its librarian record; no password: unusable."""
    _check_role(role, library)
    try:
        with transaction.atomic():
            user = get_user_model().objects.create_user(
                username=username, email=email, password=password, **_user_flags(role)
            )
    except IntegrityError:
        raise StateConflict(
            f"the username {username!r} is taken",
            errors={"username": ["A user with that username already exists."]},
        ) from None
    librarian = Librarian.objects.create(
        user=user, library=library, role=role, display_name=display_name
    )
    logger.info(
        "librarian %s created in library %s as %s",
        librarian.pk,
        library.pk if library else None,
        role,
    )
    return librarian


def _refuse_role_change(
    acting_user: AbstractBaseUser, target: Librarian, role: str
) -> str | None:
    """Why `acting_user` may not give `target` the role, or None when allowed."""
    if selectors.is_consortium_admin(acting_user):
        return None
    actor = selectors.librarian_for(acting_user)
    if actor is None or actor.role != Role.LIBRARY_ADMIN or not acting_user.is_active:
        return "only administrators may change roles"
    if target.user_id == acting_user.pk:
        return "you cannot change your own role"
    if target.library_id != actor.library_id:
        return "you may only change the roles of your own library's staff"
    if target.role not in LIBRARY_ADMIN_ROLES or role not in LIBRARY_ADMIN_ROLES:
        return "only a consortium admin may grant or remove the consortium admin role"
    return None


@transaction.atomic
def set_librarian_role(
    *, librarian: Librarian, role: str, acting_user: AbstractBaseUser
) -> Librarian:
    """Give a librarian a role, keeping the user's is_staff/is_superuser in sync.

    A library admin may only move their own library's librarians and library
    admins between those two roles, never their own; a consortium admin may do
    anything. Anything else raises `Forbidden`.
    """
    target = (
        Librarian.objects.select_for_update(no_key=True)
        .select_related("user")
        .get(pk=librarian.pk)
    )
    if reason := _refuse_role_change(acting_user, target, role):
        raise Forbidden(reason)
    _check_role(role, target.library)
    Librarian.objects.filter(pk=target.pk).update(role=role)
    get_user_model().objects.filter(pk=target.user_id).update(**_user_flags(role))
    logger.info(
        "librarian %s role %s -> %s by user %s",
        target.pk,
        target.role,
        role,
        acting_user.pk,
    )
    return Librarian.objects.select_related("user", "library").get(pk=target.pk)


@transaction.atomic
def mark_local_info_verified(
    *, library: Library, user: AbstractBaseUser, now: datetime | None = None
) -> Library:
    """Record that `user` checked the library's local info card at `now`.

    Consortium admins may verify any library, anyone else only their own.
    """
    if not selectors.is_consortium_admin(user):
        librarian = selectors.librarian_for(user)
        if librarian is None or librarian.library_id != library.pk:
            raise Forbidden("you may only verify your own library's local info")
    Library.objects.filter(pk=library.pk).update(
        local_info_verified_at=now or timezone.now(), local_info_verified_by=user
    )
    directory.changed()
    return Library.objects.get(pk=library.pk)


def _normalised_area_value(kind: str, value: str) -> str:
    normalised = selectors.normalise_service_area_value(kind, value)
    if not normalised:
        raise ValidationFailed(
            "empty service area", errors={"value": ["Enter a postal code or place."]}
        )
    return normalised


@transaction.atomic
def save_service_area(*, area: ServiceArea) -> ServiceArea:
    """Store a new or edited service area with its value normalised."""
    area.value = _normalised_area_value(area.kind, area.value)
    area.save()
    return area


@transaction.atomic
def add_service_area(*, library: Library, kind: str, value: str) -> ServiceArea:
    """Add a postal code or place to the library's area; an existing one is kept."""
    normalised = _normalised_area_value(kind, value)
    try:
        with transaction.atomic():
            return ServiceArea.objects.create(
                library=library, kind=kind, value=normalised
            )
    except IntegrityError:  # already there, perhaps spelled in another case
        return ServiceArea.objects.get(
            library=library, kind=kind, value__iexact=normalised
        )


def sign_off_librarian(
    *, librarian: Librarian, acting_user: AbstractBaseUser | None
) -> int:
    """Take a librarian off the desk: every desk socket of theirs turns away.

    Consortium admins may sign off anyone; a library admin only their own
    library's staff; `acting_user=None` is the system at closing time. Returns
    how many desk sockets were present.
    """
    from libraries import presence
    from libraries.signals import librarian_signed_off

    if (
        acting_user is not None
        and not selectors.libraries_administered_by(acting_user)
        .filter(pk=librarian.library_id)
        .exists()
    ):
        raise Forbidden("you can sign off only your own library's librarians")
    dropped = presence.drop_librarian(librarian_id=librarian.pk)
    logger.info("librarian %s signed off (%d desk sockets)", librarian.pk, len(dropped))
    transaction.on_commit(
        lambda: librarian_signed_off.send(sender=Librarian, librarian_id=librarian.pk)
    )
    return len(dropped)
