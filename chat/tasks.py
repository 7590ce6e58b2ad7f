"""Celery entry points for the chat: timers and sweeps, one service call each."""

from uuid import UUID

from celery import shared_task
from django.utils import timezone

from chat import selectors, services


@shared_task(acks_late=True, ignore_result=True)
def escalate_conversation(conversation_id: str) -> None:
    services.escalate_if_due(conversation_id=UUID(conversation_id))


@shared_task(acks_late=True, ignore_result=True)
def sweep_due_conversations() -> None:
    """Every few seconds: overdue steps, silent desks, patrons who left."""
    now = timezone.now()
    services.sweep_due_conversations(now=now)
    services.expire_silent_desks(now=now)
    services.sign_off_after_closing(now=now)
    for conversation_id in selectors.abandoned_candidates(now=now):
        services.abandon_if_gone(conversation_id=conversation_id, now=now)


@shared_task(acks_late=True, ignore_result=True)
def reroute_unstaffed() -> None:
    services.reroute_unstaffed()
