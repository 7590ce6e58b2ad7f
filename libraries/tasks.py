"""Celery entry points for libraries: stale local info notices and outdated reports."""

from datetime import datetime

from celery import shared_task

from libraries import local_info
from refdesk.celery import MAIL_TASK_OPTIONS


@shared_task(acks_late=True, ignore_result=True)
def flag_stale_local_info() -> None:
    """Periodically: flag cards not verified within the stale period."""
    local_info.flag_stale_local_info()


@shared_task(**MAIL_TASK_OPTIONS)
def send_stale_local_info_email(library_id: int, notified_at: str) -> None:
    local_info.send_stale_local_info_email(
        library_id=library_id, notified_at=datetime.fromisoformat(notified_at)
    )


@shared_task(**MAIL_TASK_OPTIONS)
def send_outdated_report_email(report_id: int) -> None:
    local_info.send_outdated_report_email(report_id=report_id)
