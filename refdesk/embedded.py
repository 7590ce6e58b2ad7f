"""The embedded default's Celery: a real worker and beat inside the web process.

With no `REDIS_URL` the broker is `memory://`, which only reaches consumers in
the same process, so the web process runs a thread-pool worker and a threaded
beat itself. Timed tasks (`eta`/`countdown`) therefore fire on time, exactly as
they do with a separate worker; nothing runs eagerly.
"""

import logging
import threading

from celery.beat import EmbeddedService
from django.conf import settings

logger = logging.getLogger(__name__)

_started = threading.Event()
_lock = threading.Lock()


def start_embedded_celery() -> None:
    """Start one worker and one beat in daemon threads, once per process."""
    with _lock:
        if _started.is_set() or not settings.REFDESK_EMBEDDED_WORKER:
            return
        _started.set()
    from refdesk.celery import app

    worker = app.WorkController(
        app=app,
        pool="threads",
        concurrency=4,
        hostname="embedded@refdesk",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        loglevel="WARNING",
    )
    threading.Thread(target=worker.start, name="celery-worker", daemon=True).start()
    beat = EmbeddedService(app, thread=True, scheduler_cls="celery.beat:Scheduler")
    beat.start()
    logger.info("embedded Celery worker and beat started on memory://")
