"""The Celery app: settings come from Django's (`CELERY_*`), tasks from the apps."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refdesk.settings")

app = Celery("refdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
