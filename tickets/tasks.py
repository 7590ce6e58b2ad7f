"""Celery entry points for tickets: sending mail and the SLA sweep."""

from smtplib import SMTPException
from uuid import UUID

from celery import shared_task

from tickets import services


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(SMTPException, OSError),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def send_ticket_email(message_id: int) -> None:
    """Send one stored outbound message; retried on SMTP and network errors."""
    services.deliver_ticket_message(message_id=message_id)


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(SMTPException, OSError),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def send_chat_transcript(conversation_id: str, to_address: str) -> None:
    services.deliver_chat_transcript(
        conversation_id=UUID(conversation_id), to_address=to_address
    )


@shared_task(acks_late=True, ignore_result=True)
def sweep_ticket_sla() -> None:
    """Every minute: at-risk, pool and overdue flags; mail whose task was lost."""
    services.sweep_ticket_sla()
    services.resend_unsent()
