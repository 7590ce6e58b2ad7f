"""'This answered my question' as desks and the patron see it, through the ASGI app."""

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from faq.demo import seed_faq_demo
from faq.models import Answer
from tests.chat.conftest import (
    open_desk,
    patron_socket,
    receive,
    receive_until,
    session_cookie,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

db = sync_to_async


def _post_self_served(conversation_id, token: str, answer_id: int):
    return Client().post(
        f"/api/v1/conversations/{conversation_id}/self-served",
        {"answer": answer_id},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


async def test_self_served_withdraws_the_chat_from_desks_and_tells_the_patron(
    springfield, make_librarian, start_chat_for_faq
):
    librarian = await db(make_librarian)(springfield, display_name="Marge")
    desk, _, _ = await open_desk(await db(session_cookie)(librarian.user))
    await db(seed_faq_demo)()
    answer = await db(Answer.objects.get)(
        question="Can I get a library card if I live out of state?"
    )
    conversation, token = await db(start_chat_for_faq)("library card out of state")
    offer = await receive_until(desk, "offer")
    assert offer["conversation"]["id"] == str(conversation.id)
    patron = patron_socket(conversation.id, token)
    connected, _ = await patron.connect()
    assert connected
    await receive_until(patron, "message")

    response = await db(_post_self_served)(conversation.id, token, answer.pk)

    assert response.status_code == 200
    assert await receive(desk) == {
        "type": "withdraw",
        "conversation": str(conversation.id),
        "reason": "self_served",
    }
    status = await receive(patron)
    assert (status["type"], status["status"], status["queue"]) == (
        "status",
        "closed",
        None,
    )
    await patron.disconnect()
    await desk.disconnect()


@pytest.fixture
def start_chat_for_faq(transactional_db):
    from chat import services

    def start(question: str):
        return services.start_conversation(
            library_slug="springfield", question=question
        )

    return start
