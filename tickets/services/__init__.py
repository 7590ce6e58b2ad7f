"""Every change to tickets: creating them from each source, the librarians' work,
the SLA sweep, outgoing mail and inbound email.

`services.creation` makes tickets, `services.work` is the librarians' work on
them and the SLA sweep, `services.outbound` stores and sends mail,
`services.inbound` files raw inbound messages.
"""

from tickets.services.creation import (
    create_ticket_from_conversation,
    create_ticket_from_question,
    email_transcript,
    follow_up_conversation,
    next_reference,
)
from tickets.services.inbound import (
    file_inbound_email,
    process_inbound_email,
    retry_inbound_email,
    store_inbound_email,
)
from tickets.services.outbound import (
    deliver_chat_transcript,
    deliver_ticket_message,
    queue_transcript,
    resend_unsent,
)
from tickets.services.work import (
    add_internal_note,
    claim_ticket,
    release_ticket,
    reply_to_ticket,
    set_ticket_status,
    sweep_ticket_sla,
)

__all__ = [
    "add_internal_note",
    "claim_ticket",
    "create_ticket_from_conversation",
    "create_ticket_from_question",
    "deliver_chat_transcript",
    "deliver_ticket_message",
    "email_transcript",
    "file_inbound_email",
    "follow_up_conversation",
    "next_reference",
    "process_inbound_email",
    "queue_transcript",
    "release_ticket",
    "reply_to_ticket",
    "resend_unsent",
    "retry_inbound_email",
    "set_ticket_status",
    "store_inbound_email",
    "sweep_ticket_sla",
]
