"""`aaccept_conversation` and `apatron_opened`: the desk's accept and the patron
socket's opening on the event loop's psycopg pool, against real PostgreSQL and
the Redis channel layer.

Each must leave the database and say to the sockets exactly what its ORM twin
(`accept_conversation`, `patron_opened`) does: the tests run both on the same
kind of chat and compare.
"""

import asyncio
import contextlib
import uuid
from datetime import datetime, timedelta

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from chat import events, selectors, services
from chat.exceptions import AlreadyTaken, ConversationNotFound, NotYours
from chat.models import (
    Conversation,
    ConversationStatus,
    ConversationStep,
    QueueStep,
    Sender,
)
from chat.services import queue
from libraries import directory
from refdesk import asyncdb

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

start = database_sync_to_async(services.start_conversation)
orm_accept = database_sync_to_async(services.accept_conversation)
orm_opened = database_sync_to_async(services.patron_opened)
orm_status = database_sync_to_async(services.patron_status)
accepted_payloads = database_sync_to_async(selectors.accepted_payloads)


@database_sync_to_async
def refreshed(conversation_id) -> Conversation:
    return Conversation.objects.get(pk=conversation_id)


@database_sync_to_async
def steps(conversation_id) -> list[tuple]:
    return list(
        ConversationStep.objects.filter(conversation_id=conversation_id)
        .order_by("entered_at")
        .values_list("step", "left_because", "left_at")
    )


@contextlib.asynccontextmanager
async def listening(*groups: str):
    """One channel joined to `groups`; yields a function returning every event
    it gets until 0.3 s pass without one."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    for group in groups:
        await layer.group_add(group, channel)

    async def heard() -> list[dict]:
        got = []
        with contextlib.suppress(TimeoutError):
            while True:
                got.append(await asyncio.wait_for(layer.receive(channel), 0.3))
        return got

    try:
        yield heard
    finally:
        for group in groups:
            await layer.group_discard(group, channel)


def by_type(heard: list[dict]) -> dict[str, dict]:
    found = {event["type"]: event for event in heard}
    assert len(found) == len(heard), heard  # each kind once
    return found


# The accept
# ----------------------------------------------------------------------
async def test_an_accept_on_the_pool_leaves_the_chat_as_the_orm_accept_does(
    springfield, staffed
):
    librarian = await database_sync_to_async(staffed)(springfield)
    by_orm, _ = await start(library_slug="springfield", question="One?")
    on_pool, _ = await start(library_slug="springfield", question="Two?")
    await orm_accept(conversation_id=by_orm.id, librarian=librarian)

    await services.aaccept_conversation(conversation_id=on_pool.id, librarian=librarian)

    orm_row, pool_row = await refreshed(by_orm.id), await refreshed(on_pool.id)
    for row in (orm_row, pool_row):
        assert row.status == ConversationStatus.ACTIVE
        assert row.librarian_id == librarian.pk
        assert row.answering_library_id == springfield.id
        assert row.accepted_at is not None
        assert row.escalate_at is None
    assert [s[:2] for s in await steps(on_pool.id)] == [("local", "accepted")]
    assert [s[:2] for s in await steps(by_orm.id)] == [("local", "accepted")]
    assert (await steps(on_pool.id))[0][2] == pool_row.accepted_at


async def test_an_accept_on_the_pool_publishes_what_the_orm_accept_would(
    springfield, staffed
):
    librarian = await database_sync_to_async(staffed)(springfield)
    conversation, _ = await start(
        library_slug="springfield",
        question="Is the <b>annex</b> open?",
        name="Ada",
        home_library="springfield",
        postal_code="12345",
    )
    await services.apost_message(
        conversation_id=conversation.id, sender=Sender.PATRON, body="Hello?"
    )
    groups = (
        events.library_desks_group(springfield.id),
        events.librarian_desks_group(librarian.pk),
        events.conversation_group(conversation.id),
    )

    async with listening(*groups) as heard:
        await services.aaccept_conversation(
            conversation_id=conversation.id, librarian=librarian
        )
        got = by_type(await heard())

    stored = await refreshed(conversation.id)
    assert set(got) == {"queue.withdraw", "desk.accepted", "conversation.status"}
    assert got["queue.withdraw"] == {
        "type": "queue.withdraw",
        "conversation": str(conversation.id),
        "reason": "accepted",
    }
    frame = got["desk.accepted"]["frame"]
    assert frame == (await accepted_payloads([stored]))[0]
    assert [m["seq"] for m in frame["history"]] == [1, 2]
    assert frame["patron"]["home_library"] == "springfield"
    assert got["conversation.status"] == {
        "type": "conversation.status",
        "status": await orm_status(stored),
        "librarian_id": librarian.pk,
    }
    assert got["conversation.status"]["status"]["status"] == "active"


async def test_exactly_one_of_ten_accepts_racing_on_the_pool_wins(
    springfield, staffed, make_librarian
):
    librarians = [await database_sync_to_async(staffed)(springfield)]
    for _ in range(9):
        librarians.append(await database_sync_to_async(make_librarian)(springfield))
    conversation, _ = await start(library_slug="springfield", question="Race?")

    outcomes = await asyncio.gather(
        *(
            services.aaccept_conversation(
                conversation_id=conversation.id, librarian=librarian
            )
            for librarian in librarians
        ),
        return_exceptions=True,
    )

    winners = [i for i, outcome in enumerate(outcomes) if outcome is None]
    assert len(winners) == 1, outcomes
    losers = [outcome for outcome in outcomes if outcome is not None]
    assert all(isinstance(error, AlreadyTaken) for error in losers), losers
    stored = await refreshed(conversation.id)
    assert stored.librarian_id == librarians[winners[0]].pk
    assert [s[:2] for s in await steps(conversation.id)] == [("local", "accepted")]


async def test_an_accept_on_the_pool_racing_one_through_the_orm_has_one_winner(
    springfield, staffed, make_librarian
):
    first = await database_sync_to_async(staffed)(springfield)
    second = await database_sync_to_async(make_librarian)(springfield)
    for _ in range(5):
        conversation, _ = await start(library_slug="springfield", question="Race?")

        outcomes = await asyncio.gather(
            orm_accept(conversation_id=conversation.id, librarian=first),
            services.aaccept_conversation(
                conversation_id=conversation.id, librarian=second
            ),
            return_exceptions=True,
        )

        errors = [o for o in outcomes if isinstance(o, Exception)]
        assert len(errors) == 1, outcomes
        assert isinstance(errors[0], AlreadyTaken), outcomes
        winner = first if errors[0] is outcomes[1] else second
        assert (await refreshed(conversation.id)).librarian_id == winner.pk


async def test_a_chat_that_moves_on_while_being_accepted_is_read_again(
    springfield, staffed, monkeypatch
):
    """Escalated between the read and the take: the take loses, the accept reads
    the chat again and wins it at its new step, where this library still may."""
    librarian = await database_sync_to_async(staffed)(springfield)
    conversation, _ = await start(library_slug="springfield", question="Move?")
    assert conversation.queue == QueueStep.LOCAL
    reads = []
    real = asyncdb.fetchall

    async def escalated_after_the_first_read(sql, params):
        rows = await real(sql, params)
        if sql == queue._SEEN:
            reads.append(rows[0])
            if len(reads) == 1:
                await database_sync_to_async(
                    Conversation.objects.filter(pk=conversation.id).update
                )(queue=QueueStep.OVERFLOW)
        return rows

    monkeypatch.setattr(asyncdb, "fetchall", escalated_after_the_first_read)

    await services.aaccept_conversation(
        conversation_id=conversation.id, librarian=librarian
    )

    stored = await refreshed(conversation.id)
    assert len(reads) == 2  # read, lost the take; read again, won
    assert (stored.status, stored.queue) == (ConversationStatus.ACTIVE, "overflow")
    assert stored.librarian_id == librarian.pk


async def test_the_accept_on_the_pool_keeps_the_orm_accepts_refusals(
    springfield, shelbyville, make_library, staffed, make_librarian
):
    ogdenville = await database_sync_to_async(make_library)(
        "ogdenville", takes_overflow=False
    )
    staff = database_sync_to_async(staffed)
    librarian = await staff(springfield)
    local, _ = await start(library_slug="springfield", question="Local?")

    with pytest.raises(NotYours):  # another library's local chat
        await services.aaccept_conversation(
            conversation_id=local.id,
            librarian=await database_sync_to_async(make_librarian)(shelbyville),
        )
    await services.aaccept_conversation(conversation_id=local.id, librarian=librarian)
    with pytest.raises(AlreadyTaken):
        await services.aaccept_conversation(
            conversation_id=local.id,
            librarian=await database_sync_to_async(make_librarian)(springfield),
        )
    with pytest.raises(ConversationNotFound):
        await services.aaccept_conversation(
            conversation_id=uuid.uuid4(), librarian=librarian
        )
    # Back in the queue at the overflow step: not for a library that takes none.
    await database_sync_to_async(
        lambda: Conversation.objects.filter(pk=local.id).update(
            status=ConversationStatus.WAITING,
            queue=QueueStep.OVERFLOW,
            librarian=None,
            escalate_at=timezone.now() + timedelta(minutes=1),
        )
    )()
    with pytest.raises(NotYours):
        await services.aaccept_conversation(
            conversation_id=local.id,
            librarian=await database_sync_to_async(make_librarian)(ogdenville),
        )
    stored = await refreshed(local.id)
    assert (stored.status, stored.librarian_id) == (ConversationStatus.WAITING, None)


async def test_partners_that_take_no_overflow_may_not_accept_on_the_pool(
    springfield, shelbyville, make_library, staffed, make_librarian
):
    ogdenville = await database_sync_to_async(make_library)(
        "ogdenville", takes_overflow=False
    )
    await database_sync_to_async(springfield.partners.add)(shelbyville, ogdenville)
    staff = database_sync_to_async(staffed)
    from_shelbyville = await staff(shelbyville)
    await staff(ogdenville)
    conversation, _ = await start(library_slug="springfield", question="Partner?")
    assert conversation.queue == QueueStep.PARTNER

    with pytest.raises(NotYours):
        await services.aaccept_conversation(
            conversation_id=conversation.id,
            librarian=await database_sync_to_async(make_librarian)(ogdenville),
        )
    await services.aaccept_conversation(
        conversation_id=conversation.id, librarian=from_shelbyville
    )
    assert (await refreshed(conversation.id)).librarian_id == from_shelbyville.pk


# The patron socket's opening
# ----------------------------------------------------------------------
async def test_opening_on_the_pool_sends_what_the_orm_opening_sends(
    springfield, staffed
):
    librarian = await database_sync_to_async(staffed)(springfield)
    conversation, _ = await start(library_slug="springfield", question="Hi <b>?</b>")
    for n in range(3):
        await services.apost_message(
            conversation_id=conversation.id, sender=Sender.PATRON, body=f"<i>{n}</i>"
        )

    for after_seq in (0, 2, 4):  # waiting: the status carries the estimate
        assert await services.apatron_opened(
            conversation_id=conversation.id, after_seq=after_seq
        ) == await orm_opened(conversation_id=conversation.id, after_seq=after_seq)
    await orm_accept(conversation_id=conversation.id, librarian=librarian)
    status, frames = await services.apatron_opened(conversation_id=conversation.id)
    assert (status, frames) == await orm_opened(conversation_id=conversation.id)
    assert status["status"] == "active"
    assert [m["seq"] for m in frames] == [1, 2, 3, 4]
    assert frames[1]["body"] == "<i>0</i>"  # stored as sent; escaped when shown
    assert (await refreshed(conversation.id)).patron_sockets == 8


async def test_opening_an_offline_chat_on_the_pool_promises_the_same_answer_time(
    springfield,
):
    conversation, _ = await start(library_slug="springfield", question="Anyone?")
    assert conversation.status == ConversationStatus.OFFLINE

    status, _ = await services.apatron_opened(conversation_id=conversation.id)

    by_orm, _ = await orm_opened(conversation_id=conversation.id)
    assert status.keys() == by_orm.keys() >= {"answer_by"}
    promised = [datetime.fromisoformat(s.pop("answer_by")) for s in (status, by_orm)]
    assert status == by_orm
    assert abs(promised[0] - promised[1]) < timedelta(seconds=2)  # each its own now


async def test_opening_an_unknown_chat_on_the_pool_is_not_found():
    with pytest.raises(ConversationNotFound):
        await services.apatron_opened(conversation_id=uuid.uuid4())


async def test_the_wait_estimate_read_on_the_pool_matches_the_orm_read(
    springfield, staffed
):
    now = timezone.now()
    for n, seconds in enumerate((30, 50, 70, 400)):
        librarian = await database_sync_to_async(staffed)(springfield)  # room for one
        conversation, _ = await start(library_slug="springfield", question=f"{n}?")
        entered = now - timedelta(hours=1, seconds=n)
        await orm_accept(conversation_id=conversation.id, librarian=librarian)
        await database_sync_to_async(
            lambda c=conversation, e=entered, s=seconds: (
                ConversationStep.objects.filter(conversation=c).update(
                    entered_at=e, left_at=e + timedelta(seconds=s)
                )
            )
        )()

    on_pool = await selectors.aestimated_wait_seconds(step="local", now=now)
    by_orm = await database_sync_to_async(selectors.estimated_wait_seconds)(
        step="local", now=now
    )
    assert on_pool == by_orm == 60  # the median of 30, 50, 70 and 400
    assert await selectors.aestimated_wait_seconds(
        step="overflow", now=now
    ) == await database_sync_to_async(selectors.estimated_wait_seconds)(
        step="overflow", now=now
    )


async def test_the_directory_is_read_on_the_loop_and_loaded_off_it(springfield):
    directory.forget()

    loaded = await directory.alibraries()  # the load: queries, off the loop

    assert loaded[springfield.id].slug == "springfield"
    assert await directory.alibraries() is loaded  # fresh: the same copy
    assert (await directory.alibrary(springfield.id)).slug == "springfield"
