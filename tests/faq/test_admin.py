"""FAQ admin: library admins publish their own drafts; saving reindexes answers."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from faq import search, services
from faq.models import Answer, CannedResponse, CannedScope
from libraries.models import Role


@pytest.fixture
def springfield_admin(springfield, make_librarian):
    return make_librarian(springfield, role=Role.LIBRARY_ADMIN, username="skinner")


@pytest.fixture
def consortium_admin(make_librarian):
    return make_librarian(None, role=Role.CONSORTIUM_ADMIN, username="admin")


def _draft(library, question="Can I renew a DVD twice?") -> Answer:
    return services.save_answer(
        answer=Answer(
            question=question,
            answer="DVDs renew once.",
            library=library,
            is_public=True,
        )
    )


def test_library_admin_publishes_their_librarys_draft(
    client, springfield, springfield_admin
):
    draft = _draft(springfield)
    client.force_login(springfield_admin.user)

    response = client.post(
        reverse("admin:faq_answer_changelist"),
        {"action": "publish", ACTION_CHECKBOX_NAME: [draft.pk]},
    )

    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.is_published
    assert draft.published_by == springfield_admin.user
    assert draft.published_at is not None
    found = search.search_answers(
        q="renew a DVD", library=springfield, audience="public"
    )
    assert found[0].pk == draft.pk


def test_library_admin_cannot_see_or_publish_other_answers(
    client, springfield_admin, shelbyville
):
    theirs = _draft(shelbyville)
    consortium = _draft(None, "Who can get a card?")
    client.force_login(springfield_admin.user)

    listing = client.get(reverse("admin:faq_answer_changelist"))
    client.post(
        reverse("admin:faq_answer_changelist"),
        {"action": "publish", ACTION_CHECKBOX_NAME: [theirs.pk, consortium.pk]},
    )

    assert list(listing.context["cl"].result_list) == []
    for answer in (theirs, consortium):
        assert (
            client.get(reverse("admin:faq_answer_change", args=[answer.pk])).status_code
            == 403
        )
        answer.refresh_from_db()
        assert not answer.is_published


def test_only_a_consortium_admin_publishes_consortium_answers(
    springfield_admin, consortium_admin
):
    from refdesk.errors import Forbidden

    draft = _draft(None)

    with pytest.raises(Forbidden):
        services.publish_answer(answer_id=draft.pk, user=springfield_admin.user)
    services.publish_answer(answer_id=draft.pk, user=consortium_admin.user)

    draft.refresh_from_db()
    assert draft.is_published


def test_adding_an_answer_in_the_admin_indexes_it(
    client, springfield, springfield_admin
):
    client.force_login(springfield_admin.user)

    response = client.post(
        reverse("admin:faq_answer_add"),
        {
            "question": "Do you lend  museum passes?",
            "answer": "Yes: **two** per card.",
            "tags": "Museum, passes, museum",
            "is_public": "on",
            "is_published": "on",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    answer = Answer.objects.get()
    assert answer.library == springfield  # fixed for a library admin
    assert answer.question == "Do you lend museum passes?"
    assert answer.tags == ["museum", "passes"]
    assert answer.published_at is not None
    assert search.search_answers(
        q="museum pass", library=springfield, audience="public"
    )


def test_library_admin_makes_library_responses_only(
    client, springfield, springfield_admin
):
    client.force_login(springfield_admin.user)

    response = client.post(
        reverse("admin:faq_cannedresponse_add"),
        {
            "scope": "consortium",
            "shortcut": "parking",
            "title": "Parking",
            "body": "Park on Main.",
        },
    )
    assert response.status_code == 200  # consortium scope is not a choice here
    response = client.post(
        reverse("admin:faq_cannedresponse_add"),
        {
            "scope": "library",
            "shortcut": "parking",
            "title": "Parking",
            "body": "Park.",
        },
    )

    assert response.status_code == 302
    stored = CannedResponse.objects.get()
    assert (stored.scope, stored.library, stored.owner) == (
        CannedScope.LIBRARY,
        springfield,
        None,
    )
