"""Truthful staffing: sign-off by an admin and at closing time."""

import pytest
from asgiref.sync import sync_to_async

from chat import services, tasks
from libraries import presence
from libraries.models import Role
from libraries.services import sign_off_librarian
from refdesk.errors import Forbidden
from tests.chat.conftest import open_desk, receive, session_cookie

db = sync_to_async


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_admin_sign_off_turns_the_desk_away_and_moves_chats_on(
    springfield, shelbyville, make_librarian, staffed, client
):
    librarian = await db(make_librarian)(springfield)
    desk, _, _ = await open_desk(await db(session_cookie)(librarian.user))
    await db(staffed)(shelbyville)
    conversation, _ = await db(services.start_conversation)(
        library_slug="springfield", question="Q?"
    )
    assert conversation.queue == "local"
    await receive(desk)  # the offer
    admin = await db(make_librarian)(springfield, role=Role.LIBRARY_ADMIN)
    await db(client.force_login)(admin.user)

    response = await db(client.post)(
        "/admin/libraries/librarian/",
        {"action": "sign_off", "_selected_action": [librarian.pk]},
    )

    assert response.status_code == 302
    assert await receive(desk) == {
        "type": "presence",
        "status": "away",
        "heartbeat_seconds": 10,
    }
    refreshed = await db(type(conversation).objects.get)(pk=conversation.pk)
    assert refreshed.queue == "overflow"
    await desk.disconnect()


@pytest.mark.django_db
def test_library_admin_cannot_sign_off_another_librarys_staff(
    springfield, shelbyville, make_librarian
):
    admin = make_librarian(springfield, role=Role.LIBRARY_ADMIN)
    other = make_librarian(shelbyville)
    with pytest.raises(Forbidden):
        sign_off_librarian(librarian=other, acting_user=admin.user)


@pytest.mark.django_db(transaction=True)
def test_closing_time_signs_off_idle_librarians_but_not_those_mid_chat(
    springfield, make_librarian
):
    idle = make_librarian(springfield)
    busy = make_librarian(springfield)
    for librarian in (idle, busy):
        presence.touch(
            library_id=springfield.id,
            librarian_id=librarian.id,
            socket_id=f"desk-{librarian.id}",
            available=True,
        )
    conversation, _ = services.start_conversation(
        library_slug="springfield", question="Q?"
    )
    services.accept_conversation(conversation_id=conversation.id, librarian=busy)
    springfield.always_open = False  # and no hours: the library has closed
    springfield.save()

    tasks.sweep_due_conversations()

    assert presence.available_librarians() == {springfield.id: {busy.id}}
