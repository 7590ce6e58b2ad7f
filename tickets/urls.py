from django.urls import path

from tickets import api, pages

app_name = "tickets"

urlpatterns = [
    # Patron HTTP API (PROTOCOL.md)
    path(
        "api/v1/conversations/<uuid:conversation_id>/follow-up",
        api.follow_up,
        name="api-follow-up",
    ),
    path(
        "api/v1/conversations/<uuid:conversation_id>/transcript",
        api.email_transcript,
        name="api-transcript",
    ),
    path(
        "api/v1/libraries/<slug:slug>/questions",
        api.ask_question,
        name="api-questions",
    ),
    # Staff ticket API (PROTOCOL.md)
    path("api/v1/tickets/", api.ticket_list, name="api-ticket-list"),
    path("api/v1/tickets/<str:reference>", api.ticket_detail, name="api-ticket-detail"),
    # Mail gateway
    path("api/v1/inbound-email", api.inbound_email, name="api-inbound-email"),
    # Ticket queue pages
    path("desk/tickets/", pages.ticket_list, name="ticket-list"),
    path("desk/tickets/<str:reference>/", pages.ticket_detail, name="ticket-detail"),
    path("desk/tickets/<str:reference>/claim", pages.claim, name="ticket-claim"),
    path("desk/tickets/<str:reference>/release", pages.release, name="ticket-release"),
    path("desk/tickets/<str:reference>/reply", pages.reply, name="ticket-reply"),
    path("desk/tickets/<str:reference>/note", pages.note, name="ticket-note"),
    path(
        "desk/tickets/<str:reference>/status", pages.change_status, name="ticket-status"
    ),
    path(
        "desk/tickets/<str:reference>/attachments/<int:attachment_id>",
        pages.attachment,
        name="ticket-attachment",
    ),
]
