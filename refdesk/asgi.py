"""ASGI entry point: Django over HTTP, Channels consumers over WebSocket.

The patron socket accepts any Origin (its signed token is the credential); the
desk socket, which rides on the session cookie, accepts only the service's own
origins (see `chat.ws_urls`).
"""

import gc
import os
import sys

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refdesk.settings")
# Build Django's app (and so set up the apps) before importing any consumer.
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chat.ws_urls import websocket_urlpatterns  # noqa: E402
from refdesk.embedded import start_embedded_celery  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": URLRouter(websocket_urlpatterns),
    }
)

start_embedded_celery()

# Everything loaded so far (Django, the apps, the URLconf: ~130,000 objects)
# lives as long as the process. Left to the collector, each full pass walked
# all of it: ~100 ms pauses every few seconds under load, in the middle of
# whatever the process was delivering (issue 7). Frozen, full passes skip it.
gc.collect()
gc.freeze()

# The event loop shares the GIL with the thread running views and the
# consumers' database calls. When that thread is busy (a chat starting, an
# accept), the loop waits up to the switch interval each time it needs the GIL
# back: at the default 5 ms a message waited that long at each of its steps.
# 1 ms: delivery p99 at 200 conversations 10.9 vs 12.7 ms (issue 7).
sys.setswitchinterval(0.001)
