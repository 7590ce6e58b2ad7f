"""WebSocket routes. The patron socket accepts any Origin (the signed token is its
credential); the desk socket rides on the session cookie, so it accepts only
the service's own origins (ALLOWED_HOSTS) and refuses others with HTTP 403."""

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from chat.consumers import DeskConsumer, PatronConsumer

websocket_urlpatterns = [
    path("ws/chat/<uuid:conversation_id>/", PatronConsumer.as_asgi()),
    path(
        "ws/desk/",
        AllowedHostsOriginValidator(AuthMiddlewareStack(DeskConsumer.as_asgi())),
    ),
]
