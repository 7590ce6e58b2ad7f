"""The patron HTTP API (PROTOCOL.md): libraries, their status, starting a chat."""

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from chat import forms, selectors, services
from libraries.selectors import all_widget_origins, get_library, widget_origins
from refdesk.api import json_api, json_body, rate_limit


def _library_origins(request: HttpRequest, slug: str) -> set[str]:
    return widget_origins(slug=slug)


def _any_member_origin(request: HttpRequest) -> set[str]:
    return all_widget_origins()


@json_api(methods=("GET",), origins=_any_member_origin)
def library_list(request: HttpRequest):
    return selectors.library_list()


@json_api(methods=("GET",), origins=_library_origins)
def library_status(request: HttpRequest, slug: str):
    return selectors.library_status(get_library(slug=slug), now=timezone.now())


@json_api(methods=("POST",), origins=_library_origins)
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
