from django.urls import path

from faq import api, pages

app_name = "faq"

urlpatterns = [
    # Patron API (PROTOCOL.md)
    path("api/v1/libraries/<slug:slug>/faq", api.library_faq, name="api-library-faq"),
    path(
        "api/v1/faq/<int:answer_id>/opened", api.answer_opened, name="api-answer-opened"
    ),
    path(
        "api/v1/conversations/<uuid:conversation_id>/self-served",
        api.self_served,
        name="api-self-served",
    ),
    # Desk API (Django session)
    path("api/v1/canned-responses/", api.canned_responses, name="api-canned-responses"),
    path(
        "api/v1/canned-responses/<int:response_id>",
        api.canned_response,
        name="api-canned-response",
    ),
    path("api/v1/desk/suggestions", api.suggestions, name="api-suggestions"),
    path("api/v1/faq/drafts", api.create_draft, name="api-drafts"),
    # Public FAQ pages
    path("faq/<slug:slug>/", pages.faq_list, name="list"),
    path("faq/<slug:slug>/<int:answer_id>/", pages.answer_detail, name="answer"),
]
