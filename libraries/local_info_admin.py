"""Admin for local info history and outdated reports, and the "stale" filter.

Imported at the end of `libraries.admin` (it builds on `LibraryScopedAdmin`),
which also wires the version inline and the filter into its admins. Versions
and reports are read-only: history is changed only by the services (restore,
resolve), through admin actions scoped like every library admin.
"""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from libraries import local_info, rendering
from libraries.admin import LibraryScopedAdmin, admin_scope
from libraries.models import LocalInfoVersion, OutdatedReport
from refdesk.errors import RefdeskError


class StaleLocalInfoFilter(admin.SimpleListFilter):
    """Libraries whose card was not verified within `REFDESK_LOCAL_INFO_STALE_DAYS`."""

    title = "local info"
    parameter_name = "local_info"

    def lookups(self, request, model_admin):
        days = local_info.stale_days()
        return [
            ("stale", f"stale (not verified for {days} days)"),
            ("fresh", "verified recently"),
        ]

    def queryset(self, request, queryset):
        stale = local_info.stale_condition(now=timezone.now())
        if self.value() == "stale":
            return queryset.filter(stale)
        if self.value() == "fresh":
            return queryset.exclude(stale)
        return queryset


class LocalInfoVersionInline(admin.TabularInline):
    """A section's history on its change page; each row links to the version,
    whose page offers "Restore this version"."""

    model = LocalInfoVersion
    fk_name = "section"
    fields = ("saved_at", "change", "saved_by", "title", "summary_excerpt")
    readonly_fields = fields
    ordering = ("-saved_at", "-id")
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = "versions (newest first)"

    @admin.display(description="what changed")
    def summary_excerpt(self, obj: LocalInfoVersion) -> str:
        first = obj.summary.splitlines()[:3]
        return " / ".join(first) + (" …" if len(obj.summary.splitlines()) > 3 else "")

    def has_view_permission(self, request, obj=None):
        scope = admin_scope(request)
        return scope.is_admin and (obj is None or scope.covers(obj.library_id))

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyHistoryAdmin(LibraryScopedAdmin):
    library_admin_may_add = False
    library_admin_may_delete = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_manage_permission(self, request, obj=None) -> bool:
        """May run this admin's actions: whoever administers the row's library."""
        return self.has_view_permission(request, obj)

    def _run(self, request, queryset: QuerySet, service, done: str) -> None:
        count = 0
        for row in queryset:
            try:
                count += bool(service(row))
            except RefdeskError as error:
                self.message_user(request, error.detail, messages.ERROR)
                return
        self.message_user(request, done.format(count=count), messages.SUCCESS)


@admin.register(LocalInfoVersion)
class LocalInfoVersionAdmin(ReadOnlyHistoryAdmin):
    list_display = ("title", "library", "change", "saved_at", "saved_by")
    list_filter = (("library", admin.RelatedOnlyFieldListFilter), "change", "kind")
    list_select_related = ("library", "saved_by")
    search_fields = ("title", "body", "library__name")
    ordering = ("-saved_at", "-id")
    fields = (
        "library",
        "section_link",
        "change",
        "saved_at",
        "saved_by",
        "kind",
        "title",
        "position",
        "summary_text",
        "preview",
    )
    readonly_fields = fields
    actions = ("restore_version",)

    @admin.display(description="section")
    def section_link(self, obj: LocalInfoVersion) -> SafeString | str:
        if obj.section_id is None:
            return "deleted (restoring brings it back)"
        url = reverse("admin:libraries_localinfosection_change", args=[obj.section_id])
        return format_html('<a href="{}">{}</a>', url, obj.section.title)

    @admin.display(description="what changed")
    def summary_text(self, obj: LocalInfoVersion) -> SafeString:
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', obj.summary)

    @admin.display(description="text as saved")
    def preview(self, obj: LocalInfoVersion) -> SafeString:
        return rendering.render_markdown(obj.body)

    @admin.action(
        description="Restore this version",
        permissions=["manage"],
        location=[admin.ActionLocation.CHANGE_LIST, admin.ActionLocation.CHANGE_FORM],
    )
    def restore_version(self, request, queryset):
        self._run(
            request,
            queryset.order_by("saved_at", "id"),
            lambda v: local_info.restore_local_info_version(
                version_id=v.pk, user=request.user
            ),
            "Restored {count} version(s); each restore is recorded as a new version.",
        )


class ResolvedFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "open"), ("resolved", "resolved")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(OutdatedReport)
class OutdatedReportAdmin(ReadOnlyHistoryAdmin):
    list_display = (
        "section_title",
        "library",
        "librarian",
        "created_at",
        "emailed_at",
        "resolved_at",
    )
    list_filter = (ResolvedFilter, ("library", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("library", "librarian", "librarian__library")
    search_fields = ("section_title", "note", "library__name")
    ordering = ("-created_at", "-id")
    fields = (
        "library",
        "section_link",
        "section_title",
        "librarian",
        "note",
        "created_at",
        "emailed_at",
        "resolved_at",
        "resolved_by",
    )
    readonly_fields = fields
    actions = ("mark_resolved",)

    @admin.display(description="section")
    def section_link(self, obj: OutdatedReport) -> SafeString | str:
        if obj.section_id is None:
            return "deleted since"
        url = reverse("admin:libraries_localinfosection_change", args=[obj.section_id])
        return format_html('<a href="{}">edit the section</a>', url)

    @admin.action(
        description="Mark resolved",
        permissions=["manage"],
        location=[admin.ActionLocation.CHANGE_LIST, admin.ActionLocation.CHANGE_FORM],
    )
    def mark_resolved(self, request, queryset):
        self._run(
            request,
            queryset,
            lambda r: local_info.resolve_outdated_report(
                report_id=r.pk, user=request.user
            ),
            "Marked {count} report(s) resolved.",
        )
