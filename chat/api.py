"""The patron HTTP API (PROTOCOL.md): libraries, their status, starting a chat."""

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from chat import forms, selectors, services
from libraries import cors
from libraries.selectors import get_library
from refdesk.api import json_api, json_body, rate_limit


@json_api(methods=("GET",), origins=cors.member_origins)
def library_list(request: HttpRequest):
    return selectors.library_list()


@json_api(methods=("GET",), origins=cors.library_origins)
def library_status(request: HttpRequest, slug: str):
    return selectors.library_status(get_library(slug=slug), now=timezone.now())


@json_api(methods=("POST",), origins=cors.library_origins)
def start_conversation(request: HttpRequest, slug: str):
    rate_limit(request, scope="start", per_minute=settings.REFDESK_CHAT_RATE_PER_MINUTE)
    get_library(slug=slug)  # an unknown library is 404 before the body is judged
    data = forms.StartConversationForm(json_body(request)).cleaned()
    conversation, token = services.start_conversation(library_slug=slug, **data)
    return 201, {
        "id": str(conversation.id),
        "token": token,
        "status": conversation.status,
        "websocket": f"/ws/chat/{conversation.id}/?token={token}",
    }
