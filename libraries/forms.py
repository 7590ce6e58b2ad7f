"""Admin forms and inline formsets for libraries, their calendars and staff.

Forms validate and normalise input; saving goes through `libraries.services`.
"""

from collections import defaultdict
from collections.abc import Hashable
from datetime import time
from typing import Any, ClassVar
from urllib.parse import urlsplit

from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet

from libraries import hours, selectors
from libraries.models import (
    Closure,
    Librarian,
    Library,
    LocalInfoSection,
    Role,
    ServiceArea,
    ServiceAreaKind,
    SpecialHours,
    Weekday,
    WeeklyHours,
    WidgetOrigin,
)

CLOSES_HELP = (
    "Closing at or before opening runs overnight into the next day "
    "(22:00 to 02:00 is a night shift); 00:00 to 00:00 means open 24 hours."
)
ORIGIN_EXAMPLE = "e.g. https://www.springfieldlibrary.org or http://localhost:8080"
DEFAULT_PORTS = {"http": 80, "https": 443}


class ScopedFormMixin:
    """Class-level scope set by the admin for the person editing.

    `fixed_library`: the only library the editor may use; the `library` field
    then shows it and ignores submitted values. `assignable_roles`: the roles the
    editor may give (None: every role).
    """

    fixed_library: ClassVar[Library | None] = None
    assignable_roles: ClassVar[list[str] | None] = None

    @classmethod
    def scoped(
        cls, *, library: Library | None = None, roles: list[str] | None = None
    ) -> type:
        return type(
            cls.__name__,
            (cls,),
            {"fixed_library": library, "assignable_roles": roles},
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("instance") is None and self.fixed_library is not None:
            kwargs["instance"] = self._meta.model(library=self.fixed_library)
        super().__init__(*args, **kwargs)
        if self.fixed_library is not None and "library" in self.fields:
            field = self.fields["library"]
            field.queryset = Library.objects.filter(pk=self.fixed_library.pk)
            field.disabled = True
        if self.assignable_roles is not None and "role" in self.fields:
            self.fields["role"].choices = [
                (value, label)
                for value, label in Role.choices
                if value in self.assignable_roles
            ]


def _sentence(message: str) -> str:
    return message.rstrip(".") + "."


# Libraries
# ----------------------------------------------------------------------


class LibraryForm(forms.ModelForm):
    class Meta:
        model = Library
        fields = [
            "name",
            "slug",
            "timezone",
            "website",
            "contact_email",
            "brand_color",
            "always_open",
            "partners",
            "sends_overflow",
            "takes_overflow",
            "local_wait_seconds",
            "partner_wait_seconds",
            "chats_per_librarian",
        ]
        help_texts = {
            "timezone": "An IANA time zone name, e.g. America/Chicago; hours and "
            "closures are in this zone.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        partners = self.fields.get("partners")
        if partners is not None and self.instance.pk:
            partners.queryset = partners.queryset.exclude(pk=self.instance.pk)

    def clean_partners(self):
        partners = self.cleaned_data["partners"]
        if self.instance.pk and any(p.pk == self.instance.pk for p in partners):
            raise ValidationError("A library cannot be its own partner.")
        return partners


def normalise_origin(value: str) -> str:
    """Lower-case scheme and host and drop a default port, as browsers send it.

    Raises ValidationError for a trailing slash or a path, which an origin
    never has.
    """
    value = value.strip()
    try:
        parts = urlsplit(value)
    except ValueError:
        return value  # the model's validator explains the expected form
    if not parts.scheme or not parts.netloc:
        return value
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValidationError(
            f"The port must be a number from 1 to 65535, {ORIGIN_EXAMPLE}.",
            code="invalid_origin_port",
        )
    rest = value[len(f"{parts.scheme}://{parts.netloc}") :]
    if rest == "/":
        raise ValidationError(
            "Remove the trailing slash: an origin is only scheme, host and "
            f"optional port, {ORIGIN_EXAMPLE}.",
            code="origin_has_slash",
        )
    if rest:
        raise ValidationError(
            "Remove the path “%(path)s”: an origin is only scheme, host and "
            f"optional port, {ORIGIN_EXAMPLE}.",
            code="origin_has_path",
            params={"path": rest},
        )
    scheme = parts.scheme.lower()
    host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    if port is None or DEFAULT_PORTS.get(scheme) == port:
        return f"{scheme}://{host.lower()}"
    return f"{scheme}://{host.lower()}:{port}"


class WidgetOriginForm(forms.ModelForm):
    class Meta:
        model = WidgetOrigin
        fields = ["origin"]
        help_texts = {
            "origin": f"Scheme, host and optional port, no path: {ORIGIN_EXAMPLE}."
        }

    def clean_origin(self) -> str:
        return normalise_origin(self.cleaned_data["origin"])


# Hours
# ----------------------------------------------------------------------


class _SpanForm(forms.ModelForm):
    """One open span; only an empty span (equal times other than 00:00) is wrong.

    Closing at or before opening is a legal overnight span.
    """

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        opens, closes = cleaned.get("opens"), cleaned.get("closes")
        if opens is not None and closes is not None and opens == closes:
            for message in hours.validate_spans([(opens, closes)]):
                self.add_error("closes", _sentence(message))
        return cleaned


class WeeklyHoursForm(_SpanForm):
    class Meta:
        model = WeeklyHours
        fields = ["weekday", "opens", "closes"]
        help_texts = {"closes": CLOSES_HELP}


class SpecialHoursForm(_SpanForm):
    class Meta:
        model = SpecialHours
        fields = ["day", "opens", "closes", "note"]
        help_texts = {
            "day": "These spans replace the weekly hours of this date.",
            "closes": CLOSES_HELP,
        }


class _SpansFormSet(BaseInlineFormSet):
    """Refuse overlapping spans within one group (a weekday, a date)."""

    group_field: ClassVar[str]

    def group_label(self, key: Hashable) -> str:
        return str(key)

    def clean(self) -> None:
        super().clean()
        groups: dict[Hashable, list[tuple[time, time]]] = defaultdict(list)
        for form in _live_forms(self):
            data = form.cleaned_data
            key, opens, closes = (
                data.get(self.group_field),
                data.get("opens"),
                data.get("closes"),
            )
            if key is not None and opens is not None and closes is not None:
                groups[key].append((opens, closes))
        errors = [
            ValidationError(f"{self.group_label(key)}: {_sentence(message)}")
            for key in sorted(groups)
            for message in hours.validate_spans(groups[key])
        ]
        if errors:
            raise ValidationError(errors)


class WeeklyHoursFormSet(_SpansFormSet):
    group_field = "weekday"

    def group_label(self, key: Hashable) -> str:
        return Weekday(key).label


class SpecialHoursFormSet(_SpansFormSet):
    group_field = "day"  # labelled by its ISO date


class ClosureForm(forms.ModelForm):
    """`Closure.clean` refuses a last day before the first day."""

    class Meta:
        model = Closure
        fields = ["first", "last", "reason"]
        help_texts = {"last": "Inclusive: the same as the first day for one day."}


# Service areas
# ----------------------------------------------------------------------


class ServiceAreaForm(forms.ModelForm):
    class Meta:
        model = ServiceArea
        fields = ["kind", "value"]
        help_texts = {
            "value": "Postal codes are stored without spaces in capitals "
            "(sw1a 1aa becomes SW1A1AA); place names trimmed and single-spaced.",
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        kind, value = cleaned.get("kind"), cleaned.get("value")
        if kind is None or value is None:
            return cleaned
        value = selectors.normalise_service_area_value(kind, value)
        cleaned["value"] = value
        if not value:
            self.add_error("value", "Enter a postal code or place name.")
        elif self._already_listed(kind, value):
            self.add_error(
                "value",
                f"This library already lists the {ServiceAreaKind(kind).label} "
                f"{value}.",
            )
        return cleaned

    def _already_listed(self, kind: str, value: str) -> bool:
        library_id = self.instance.library_id
        if library_id is None:
            return False
        return (
            ServiceArea.objects.filter(
                library_id=library_id, kind=kind, value__iexact=value
            )
            .exclude(pk=self.instance.pk)
            .exists()
        )


class ServiceAreaFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        seen: set[tuple[str, str]] = set()
        errors = []
        for form in _live_forms(self):
            kind, value = form.cleaned_data.get("kind"), form.cleaned_data.get("value")
            if not kind or not value:
                continue
            key = (kind, value.casefold())
            if key in seen:
                errors.append(
                    ValidationError(
                        f"The {ServiceAreaKind(kind).label} {value} is listed twice.",
                        code="duplicate",
                    )
                )
            seen.add(key)
        if errors:
            raise ValidationError(errors)


def _live_forms(formset: BaseInlineFormSet) -> list[forms.Form]:
    """Forms that are valid, filled in and not being deleted."""
    return [
        form
        for form in formset.forms
        if form.is_valid() and not formset._should_delete_form(form)
    ]


# Local info
# ----------------------------------------------------------------------


class LocalInfoSectionForm(ScopedFormMixin, forms.ModelForm):
    class Meta:
        model = LocalInfoSection
        fields = ["library", "kind", "title", "body", "position"]
        widgets = {"body": forms.Textarea(attrs={"rows": 12})}


# Librarians
# ----------------------------------------------------------------------


def _require_library_unless_consortium(form: forms.ModelForm) -> None:
    if "role" in form.fields:
        role = form.cleaned_data.get("role")
    else:
        role = form.instance.role
    library = form.cleaned_data.get("library")
    if role and role != Role.CONSORTIUM_ADMIN and library is None:
        form.add_error(
            "library",
            "Choose the library this person works for; only a consortium admin "
            "may have none.",
        )


class LibrarianChangeForm(ScopedFormMixin, forms.ModelForm):
    """Change display name, library and role; the admin saves the role through
    `services.set_librarian_role`."""

    class Meta:
        model = Librarian
        fields = ["library", "role", "display_name"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        _require_library_unless_consortium(self)
        return cleaned


class LibrarianCreationForm(ScopedFormMixin, forms.ModelForm):
    """A new librarian and their login; saved by `services.create_librarian`."""

    username = forms.CharField(
        max_length=150,
        validators=[UnicodeUsernameValidator()],
        help_text="Used to sign in: letters, digits and @/./+/-/_ only.",
    )
    email = forms.EmailField()
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Password confirmation",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Enter the same password again.",
    )

    class Meta:
        model = Librarian
        fields = ["library", "role", "display_name"]

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        if get_user_model().objects.filter(username__iexact=username).exists():
            raise ValidationError("A user with that username already exists.")
        return username

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        _require_library_unless_consortium(self)
        first, second = cleaned.get("password1"), cleaned.get("password2")
        if first and second and first != second:
            self.add_error("password2", "The two password fields didn’t match.")
        elif first:
            candidate = get_user_model()(
                username=cleaned.get("username", ""), email=cleaned.get("email", "")
            )
            try:
                password_validation.validate_password(first, candidate)
            except ValidationError as error:
                self.add_error("password2", error)
        return cleaned

    def creation_kwargs(self) -> dict[str, Any]:
        """Arguments for `services.create_librarian` from the cleaned form."""
        data = self.cleaned_data
        return {
            "library": data.get("library"),
            "username": data["username"],
            "email": data["email"],
            "display_name": data["display_name"],
            "role": data["role"],
            "password": data["password1"],
        }
