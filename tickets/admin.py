"""Admin for tickets and inbound email, scoped like the rest of refdesk's admin:
consortium admins see everything, library admins their own library's rows.

Tickets are worked on the ticket pages; here they are read-only records. An
inbound message that needs attention is listed with its raw bytes and can be
filed again.
"""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from libraries.admin import LibraryScopedAdmin, admin_scope
from tickets import services
from tickets.models import (
    Attachment,
    InboundEmail,
    InboundStatus,
    Ticket,
    TicketMessage,
)

RAW_PREVIEW_BYTES = 200_000


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return admin_scope(request).is_admin


class TicketMessageInline(ReadOnlyInline):
    model = TicketMessage
    fields = (
        "created_at",
        "direction",
        "kind",
        "author",
        "body",
        "is_auto_reply",
        "sent_at",
    )
    readonly_fields = fields
    ordering = ("created_at", "id")


@admin.register(Ticket)
class TicketAdmin(LibraryScopedAdmin):
    library_admin_may_add = False
    library_admin_may_delete = False

    list_display = (
        "reference",
        "subject",
        "library",
        "status",
        "source",
        "patron_email",
        "claimed_by",
        "due_by",
        "at_risk",
        "is_overdue",
        "in_pool",
        "created_at",
    )
    list_filter = (
        "status",
        "source",
        "in_pool",
        "at_risk",
        "is_overdue",
        ("library", admin.RelatedOnlyFieldListFilter),
    )
    list_select_related = ("library", "claimed_by")
    search_fields = ("reference", "subject", "patron_email", "patron_name")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    inlines = (TicketMessageInline,)

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class AttentionFilter(admin.SimpleListFilter):
    title = "attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [("needed", "Needs attention"), ("unfiled", "Not filed yet (pending)")]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        if self.value() == "needed":
            return queryset.filter(status=InboundStatus.NEEDS_ATTENTION)
        if self.value() == "unfiled":
            return queryset.filter(status=InboundStatus.PENDING)
        return queryset


@admin.register(InboundEmail)
class InboundEmailAdmin(LibraryScopedAdmin):
    library_admin_may_add = False
    library_admin_may_delete = False

    list_display = (
        "received_at",
        "status",
        "from_address",
        "subject",
        "ticket",
        "library",
        "size",
        "error",
    )
    list_filter = (
        AttentionFilter,
        "status",
        ("library", admin.RelatedOnlyFieldListFilter),
    )
    list_select_related = ("ticket", "library")
    search_fields = (
        "from_address",
        "subject",
        "message_id_header",
        "ticket__reference",
    )
    ordering = ("-received_at",)
    actions = ("retry_filing",)
    fields = (
        "received_at",
        "status",
        "error",
        "attempts",
        "processed_at",
        "message_id_header",
        "from_address",
        "subject",
        "library",
        "ticket",
        "size",
        "raw_text",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).defer("raw")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.has_view_permission(request, obj)

    @admin.display(description="raw message")
    def raw_text(self, obj: InboundEmail) -> str:
        raw = bytes(InboundEmail.objects.values_list("raw", flat=True).get(pk=obj.pk))
        text = raw[:RAW_PREVIEW_BYTES].decode("utf-8", errors="replace")
        more = " (truncated)" if len(raw) > RAW_PREVIEW_BYTES else ""
        return format_html(
            '<pre style="white-space:pre-wrap;max-height:40rem;overflow:auto">{}</pre>{}',
            text,
            more,
        )

    @admin.action(description="Retry filing", permissions=["change"])
    def retry_filing(self, request: HttpRequest, queryset: QuerySet) -> None:
        outcomes: dict[str, int] = {}
        for inbound_id in queryset.values_list("pk", flat=True):
            result = services.retry_inbound_email(inbound_id=inbound_id)
            outcomes[result.status] = outcomes.get(result.status, 0) + 1
        summary = ", ".join(
            f"{count} {status}" for status, count in sorted(outcomes.items())
        )
        self.message_user(
            request, f"Filed again: {summary or 'nothing'}.", messages.INFO
        )


@admin.register(Attachment)
class AttachmentAdmin(LibraryScopedAdmin):
    library_lookup = "message__ticket__library"
    library_admin_may_add = False
    library_admin_may_delete = False

    list_display = (
        "filename",
        "content_type",
        "size",
        "is_dropped",
        "ticket_reference",
    )
    list_select_related = ("message__ticket",)
    search_fields = ("filename", "message__ticket__reference")
    fields = ("filename", "content_type", "size", "is_dropped", "message")
    readonly_fields = fields

    def library_id_of(self, obj: Attachment) -> int | None:
        return obj.message.ticket.library_id

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).defer("data")

    @admin.display(description="ticket", ordering="message__ticket__reference")
    def ticket_reference(self, obj: Attachment) -> str:
        return obj.message.ticket.reference

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
