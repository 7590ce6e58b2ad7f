"""The plain Channels reference: the tutorial-style chat a Django developer writes.

One consumer per socket joins a group per pair (`/ws/pair/<id>/`), decodes each
JSON frame, relays it to the group with `group_send`, and every member (sender
included, as in the tutorial) sends it on. No persistence, no authentication.
Served by the same uvicorn command and channel layer as refdesk.
"""

import json
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.plain_settings")
django_application = get_asgi_application()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

urlpatterns: list = []


class PairConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.group = f"pair.{self.scope['url_route']['kwargs']['pair']}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        message = json.loads(text_data)
        await self.channel_layer.group_send(
            self.group, {"type": "chat.message", "message": message}
        )

    async def chat_message(self, event):
        await self.send(text_data=json.dumps(event["message"]))


application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": URLRouter([path("ws/pair/<str:pair>/", PairConsumer.as_asgi())]),
    }
)
