"""The Celery app: settings come from Django's (`CELERY_*`), tasks from the apps."""

import os
from smtplib import SMTPException

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refdesk.settings")

app = Celery("refdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Options of every task that sends mail: only outside I/O is retried (SMTP and
# network errors), with jittered backoff and a cap; domain errors are not.
MAIL_TASK_OPTIONS = {
    "acks_late": True,
    "ignore_result": True,
    "autoretry_for": (SMTPException, OSError),
    "retry_backoff": True,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 8,
}
