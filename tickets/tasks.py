"""Celery entry points for tickets: sending mail and the SLA sweep."""

from uuid import UUID

from celery import shared_task

from refdesk.celery import MAIL_TASK_OPTIONS
from tickets import services


@shared_task(**MAIL_TASK_OPTIONS)
def send_ticket_email(message_id: int) -> None:
    """Send one stored outbound message; retried on SMTP and network errors."""
    services.deliver_ticket_message(message_id=message_id)


@shared_task(**MAIL_TASK_OPTIONS)
def send_chat_transcript(conversation_id: str, to_address: str) -> None:
    services.deliver_chat_transcript(
        conversation_id=UUID(conversation_id), to_address=to_address
    )


@shared_task(acks_late=True, ignore_result=True)
def sweep_ticket_sla() -> None:
    """Every minute: at-risk, pool and overdue flags; mail whose task was lost."""
    services.sweep_ticket_sla()
    services.resend_unsent()
