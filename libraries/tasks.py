"""Celery entry points for libraries: stale local info notices and outdated reports."""

from datetime import datetime
from smtplib import SMTPException

from celery import shared_task

from libraries import local_info

_MAIL_RETRIES = {
    "autoretry_for": (SMTPException, OSError),
    "retry_backoff": True,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 8,
}


@shared_task(acks_late=True, ignore_result=True)
def flag_stale_local_info() -> None:
    """Periodically: flag cards not verified within the stale period."""
    local_info.flag_stale_local_info()


@shared_task(acks_late=True, ignore_result=True, **_MAIL_RETRIES)
def send_stale_local_info_email(library_id: int, notified_at: str) -> None:
    local_info.send_stale_local_info_email(
        library_id=library_id, notified_at=datetime.fromisoformat(notified_at)
    )


@shared_task(acks_late=True, ignore_result=True, **_MAIL_RETRIES)
def send_outdated_report_email(report_id: int) -> None:
    local_info.send_outdated_report_email(report_id=report_id)
