"""Public FAQ pages: a library's answers at a stable URL, and one answer each."""

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from faq import search
from libraries.models import Library
from libraries.rendering import render_markdown
from libraries.selectors import get_library
from refdesk.errors import NotFound

MAX_QUERY_CHARS = 200


def _library_or_404(slug: str) -> Library:
    try:
        return get_library(slug=slug)
    except NotFound:
        raise Http404(f"no member library {slug!r}") from None


@require_safe
def faq_list(request: HttpRequest, slug: str) -> HttpResponse:
    library = _library_or_404(slug)
    q = " ".join(request.GET.get("q", "").split())[:MAX_QUERY_CHARS]
    if q:
        answers = search.search_answers(
            q=q, library=library, audience="public", limit=search.MAX_LIMIT
        )
    else:
        answers = search.public_answers(library=library)
    return render(
        request,
        "faq/faq_list.html",
        {
            "consortium_name": settings.REFDESK_CONSORTIUM_NAME,
            "library": library,
            "q": q,
            "answers": answers,
        },
    )


@require_safe
def answer_detail(request: HttpRequest, slug: str, answer_id: int) -> HttpResponse:
    library = _library_or_404(slug)
    try:
        answer = search.get_public_answer(answer_id=answer_id, library=library)
    except NotFound:
        raise Http404("no such answer") from None
    return render(
        request,
        "faq/answer_detail.html",
        {
            "consortium_name": settings.REFDESK_CONSORTIUM_NAME,
            "library": library,
            "answer": answer,
            "answer_html": render_markdown(answer.answer),
        },
    )
