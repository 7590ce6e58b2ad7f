"""Django admin for consortium admins (everything) and library admins (their own
library, its calendar, local info and staff).

Access is granted by role through `has_*_permission`, never by Django model
permissions, which nobody but a superuser holds: Django's own User and Group
admins therefore stay superuser-only. A library admin's querysets are filtered
through `selectors.libraries_administered_by`; another library's objects answer
403 rather than "doesn't exist".
"""

from contextvars import ContextVar
from dataclasses import dataclass
from typing import ClassVar

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils.safestring import SafeString

from libraries import forms, local_info, presence, rendering, selectors, services
from libraries.models import (
    Closure,
    Librarian,
    Library,
    LocalInfoSection,
    Role,
    ServiceArea,
    SpecialHours,
    WeeklyHours,
    WidgetOrigin,
)
from refdesk.errors import Forbidden

# Fields of a library only a consortium admin may change: identity, overflow.
CONSORTIUM_ONLY_LIBRARY_FIELDS = (
    "slug",
    "partners",
    "sends_overflow",
    "takes_overflow",
    "local_wait_seconds",
    "partner_wait_seconds",
    "chats_per_librarian",
)


@dataclass(frozen=True)
class AdminScope:
    """What the signed-in person administers, worked out once per request."""

    is_consortium_admin: bool
    librarian: Librarian | None
    library_ids: frozenset[int]

    @property
    def is_admin(self) -> bool:
        return self.is_consortium_admin or bool(self.library_ids)

    @property
    def own_library(self) -> Library | None:
        """A library admin's library; None for consortium admins."""
        if self.is_consortium_admin or self.librarian is None:
            return None
        return self.librarian.library

    def covers(self, library_id: int | None) -> bool:
        return self.is_consortium_admin or library_id in self.library_ids


def admin_scope(request: HttpRequest) -> AdminScope:
    scope = getattr(request, "_refdesk_admin_scope", None)
    if scope is None:
        user = request.user
        consortium = selectors.is_consortium_admin(user)
        library_ids = (
            frozenset()
            if consortium
            else frozenset(
                selectors.libraries_administered_by(user).values_list("pk", flat=True)
            )
        )
        scope = AdminScope(consortium, selectors.librarian_for(user), library_ids)
        request._refdesk_admin_scope = scope
    return scope


class LibraryScopedAdmin(admin.ModelAdmin):
    """A model admin whose rows belong to a library, scoped to the editor's.

    `library_lookup` is the ORM path from the model to its library ("pk" for
    `Library` itself).
    """

    library_lookup: ClassVar[str] = "library"
    library_admin_may_add: ClassVar[bool] = True
    library_admin_may_delete: ClassVar[bool] = True

    def library_id_of(self, obj: Model) -> int | None:
        if self.library_lookup == "pk":
            return obj.pk
        return getattr(obj, f"{self.library_lookup}_id")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        scope = admin_scope(request)
        if scope.is_consortium_admin:
            return queryset
        return queryset.filter(**{f"{self.library_lookup}__in": scope.library_ids})

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None or admin_scope(request).is_consortium_admin:
            return obj
        # Outside the editor's scope: return the row so that the permission
        # checks refuse it with 403 instead of "doesn't exist".
        field = self.opts.pk if from_field is None else self.opts.get_field(from_field)
        try:
            return self.model._default_manager.get(
                **{field.name: field.to_python(object_id)}
            )
        except (self.model.DoesNotExist, ValidationError, ValueError):
            return None

    def has_module_permission(self, request: HttpRequest) -> bool:
        return admin_scope(request).is_admin

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        scope = admin_scope(request)
        return scope.is_admin and (obj is None or scope.covers(self.library_id_of(obj)))

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        scope = admin_scope(request)
        return scope.is_consortium_admin or (
            self.library_admin_may_add and scope.is_admin
        )

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        scope = admin_scope(request)
        if scope.is_consortium_admin:
            return True
        return self.library_admin_may_delete and self.has_change_permission(
            request, obj
        )


class LibraryChildInline:
    """Inline rows of a library: editable by whoever administers the library."""

    def _administers(self, request: HttpRequest, library: Library | None) -> bool:
        scope = admin_scope(request)
        return scope.is_admin and (library is None or scope.covers(library.pk))

    def has_view_permission(self, request, obj=None):
        return self._administers(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._administers(request, obj)

    def has_add_permission(self, request, obj):
        return self._administers(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._administers(request, obj)


class WidgetOriginInline(LibraryChildInline, admin.TabularInline):
    model = WidgetOrigin
    form = forms.WidgetOriginForm
    extra = 0


class WeeklyHoursInline(LibraryChildInline, admin.TabularInline):
    model = WeeklyHours
    form = forms.WeeklyHoursForm
    formset = forms.WeeklyHoursFormSet
    extra = 0


class SpecialHoursInline(LibraryChildInline, admin.TabularInline):
    model = SpecialHours
    form = forms.SpecialHoursForm
    formset = forms.SpecialHoursFormSet
    extra = 0


class ClosureInline(LibraryChildInline, admin.TabularInline):
    model = Closure
    form = forms.ClosureForm
    extra = 0


class ServiceAreaInline(LibraryChildInline, admin.TabularInline):
    model = ServiceArea
    form = forms.ServiceAreaForm
    formset = forms.ServiceAreaFormSet
    extra = 0


class LocalInfoSectionInline(LibraryChildInline, admin.StackedInline):
    model = LocalInfoSection
    fields = ["kind", "title", "body", "position"]
    extra = 0


@admin.register(Library)
class LibraryAdmin(LibraryScopedAdmin):
    library_lookup = "pk"
    library_admin_may_add = False
    library_admin_may_delete = False

    form = forms.LibraryForm
    list_display = (
        "name",
        "slug",
        "timezone",
        "takes_overflow",
        "sends_overflow",
        "local_info_verified_at",
    )
    list_filter = ("takes_overflow", "sends_overflow", "always_open", "timezone")
    search_fields = ("name", "slug", "website", "contact_email")
    filter_horizontal = ("partners",)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "name",
                    "slug",
                    "timezone",
                    "website",
                    "contact_email",
                    "brand_color",
                    "always_open",
                )
            },
        ),
        (
            "Overflow (set by the consortium)",
            {
                "fields": (
                    "partners",
                    "sends_overflow",
                    "takes_overflow",
                    "local_wait_seconds",
                    "partner_wait_seconds",
                    "chats_per_librarian",
                )
            },
        ),
        (
            "Local info",
            {"fields": ("local_info_verified_at", "local_info_verified_by")},
        ),
    )
    inlines = (
        WidgetOriginInline,
        WeeklyHoursInline,
        SpecialHoursInline,
        ClosureInline,
        ServiceAreaInline,
        LocalInfoSectionInline,
    )
    actions = ("mark_local_info_verified",)

    def get_readonly_fields(self, request, obj=None):
        readonly = ("local_info_verified_at", "local_info_verified_by")
        if admin_scope(request).is_consortium_admin:
            return readonly
        return readonly + CONSORTIUM_ONLY_LIBRARY_FIELDS

    def get_prepopulated_fields(self, request, obj=None):
        if obj is None and admin_scope(request).is_consortium_admin:
            return {"slug": ("name",)}
        return {}

    def get_list_filter(self, request):
        stale = local_info_admin.StaleLocalInfoFilter
        return (*super().get_list_filter(request), stale)

    def save_formset(self, request, form, formset, change):
        if formset.model is LocalInfoSection:  # every save is a version
            for section in formset.save(commit=False):
                local_info.save_local_info_section(section=section, user=request.user)
            for section in formset.deleted_objects:
                local_info.delete_local_info_section(section=section, user=request.user)
            return
        if formset.model is not ServiceArea:
            return super().save_formset(request, form, formset, change)
        for area in formset.save(commit=False):
            services.save_service_area(area=area)
        for area in formset.deleted_objects:
            area.delete()

    @admin.action(
        description="Mark local info verified",
        permissions=["change"],
        location=[admin.ActionLocation.CHANGE_LIST, admin.ActionLocation.CHANGE_FORM],
    )
    def mark_local_info_verified(self, request, queryset):
        count = 0
        for library in queryset:
            services.mark_local_info_verified(library=library, user=request.user)
            count += 1
        noun = "library" if count == 1 else "libraries"
        self.message_user(
            request, f"Local info marked verified for {count} {noun}.", messages.SUCCESS
        )


@admin.register(LocalInfoSection)
class LocalInfoSectionAdmin(LibraryScopedAdmin):
    form = forms.LocalInfoSectionForm
    list_display = ("title", "library", "kind", "position", "updated_at")
    list_filter = (("library", admin.RelatedOnlyFieldListFilter), "kind")
    list_select_related = ("library",)
    search_fields = ("title", "body", "library__name")
    autocomplete_fields = ("library",)
    ordering = ("library__name", "position", "id")
    readonly_fields = ("preview", "updated_at")
    fields = ("library", "kind", "title", "body", "position", "preview", "updated_at")

    @admin.display(description="Preview")
    def preview(self, obj: LocalInfoSection) -> SafeString | str:
        return rendering.render_markdown(obj.body) if obj.body else "—"

    def get_form(self, request, obj=None, change=False, **kwargs):
        scope = admin_scope(request)
        kwargs["form"] = self.form.scoped(library=scope.own_library)
        return super().get_form(request, obj, change=change, **kwargs)

    def get_inlines(self, request, obj):
        return (local_info_admin.LocalInfoVersionInline,) if obj is not None else ()

    def save_model(self, request, obj, form, change):
        local_info.save_local_info_section(section=obj, user=request.user)

    def delete_model(self, request, obj):
        local_info.delete_local_info_section(section=obj, user=request.user)

    def delete_queryset(self, request, queryset):
        for section in queryset:
            local_info.delete_local_info_section(section=section, user=request.user)


# Desk presence of the librarians on the changelist page being rendered.
_desks_on_page: ContextVar[dict[int, list[bool]] | None] = ContextVar(
    "desks_on_page", default=None
)


@admin.register(Librarian)
class LibrarianAdmin(LibraryScopedAdmin):
    library_admin_may_delete = False

    form = forms.LibrarianChangeForm
    add_form = forms.LibrarianCreationForm
    list_display = (
        "display_name",
        "login",
        "email_address",
        "library",
        "role",
        "at_desk",
    )
    list_filter = (("library", admin.RelatedOnlyFieldListFilter), "role")
    actions = ("sign_off",)
    list_select_related = ("user", "library")
    search_fields = ("display_name", "user__username", "user__email")
    autocomplete_fields = ("library",)
    ordering = ("library__name", "display_name")
    fieldsets = (
        (
            None,
            {"fields": ("login", "email_address", "library", "role", "display_name")},
        ),
    )
    add_fieldsets = (
        (None, {"fields": ("username", "email", "library", "role", "display_name")}),
        ("Password", {"fields": ("password1", "password2")}),
    )

    @admin.display(description="username", ordering="user__username")
    def login(self, obj: Librarian) -> str:
        return obj.user.get_username()

    @admin.display(description="email", ordering="user__email")
    def email_address(self, obj: Librarian) -> str:
        return obj.user.email

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else self.fieldsets

    def changelist_view(self, request, extra_context=None):
        # One presence read for the whole page, not one per row.
        token = _desks_on_page.set(presence.desks_by_librarian())
        try:
            return super().changelist_view(request, extra_context)
        finally:
            _desks_on_page.reset(token)

    @admin.display(description="at the desk")
    def at_desk(self, obj: Librarian) -> str:
        states = (_desks_on_page.get() or {}).get(obj.pk)
        if not states:
            return "—"
        return "available" if any(states) else "away"

    @admin.action(description="Sign off the selected librarians (set their desks away)")
    def sign_off(self, request, queryset):
        count = 0
        for librarian in queryset.select_related("library"):
            try:
                count += bool(
                    services.sign_off_librarian(
                        librarian=librarian, acting_user=request.user
                    )
                )
            except Forbidden as error:
                self.message_user(request, error.detail, level=messages.ERROR)
                return
        self.message_user(
            request, f"Signed off {count} librarian(s) who were at a desk."
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        readonly = ("login", "email_address")
        if (
            self._is_own_record(request, obj)
            and not admin_scope(request).is_consortium_admin
        ):
            readonly += ("role",)  # nobody below the consortium changes their own role
        return readonly

    def get_form(self, request, obj=None, change=False, **kwargs):
        scope = admin_scope(request)
        base = self.add_form if obj is None else self.form
        kwargs["form"] = base.scoped(
            library=scope.own_library,
            roles=selectors.roles_assignable_by(request.user),
        )
        return super().get_form(request, obj, change=change, **kwargs)

    def has_change_permission(self, request, obj=None):
        if not super().has_change_permission(request, obj):
            return False
        # A library admin sees a consortium admin of their library but
        # cannot edit them.
        return (
            obj is None
            or obj.role != Role.CONSORTIUM_ADMIN
            or admin_scope(request).is_consortium_admin
        )

    def save_model(self, request, obj, form, change):
        try:
            if not change:
                created = services.create_librarian(**form.creation_kwargs())
                # The admin logs and redirects with `obj`: make it the new row.
                obj.pk, obj.user = created.pk, created.user
                return
            self._save_change(request, obj, form)
        except Forbidden as error:
            raise PermissionDenied(error.detail) from error

    def _save_change(self, request, obj: Librarian, form) -> None:
        """Save plain fields with the ORM and the role through its service.

        Clearing the library only suits a consortium admin, so the role goes
        first then; otherwise the library does, so a new role finds it.
        """
        fields = [name for name in form.changed_data if name != "role"]
        role = form.cleaned_data.get("role") if "role" in form.changed_data else None
        role_first = "library" in fields and obj.library_id is None

        def set_role() -> None:
            if role is not None:
                services.set_librarian_role(
                    librarian=obj, role=role, acting_user=request.user
                )

        if role_first:
            set_role()
        if fields:
            obj.save(update_fields=fields)
        if not role_first:
            set_role()

    def _is_own_record(self, request, obj: Librarian) -> bool:
        return obj.user_id == request.user.pk


# Local info versions, outdated reports, the version inline and the stale filter
# (used above at request time); that module builds on LibraryScopedAdmin.
from libraries import local_info_admin  # noqa: E402
