"""`apost_message`, the sockets' message path: one statement on the event loop's
psycopg pool, against real PostgreSQL and the Redis channel layer.

It must keep every promise `post_message` keeps (gap-free `seq`, a retried
`client_id` stored once, the same refusals) and publish each message once.
"""

import asyncio
import contextlib
import uuid

import psycopg
import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection

from chat import events, protocol, selectors, services
from chat.exceptions import ConversationClosed, ConversationNotFound, NotYours
from chat.models import Conversation, ConversationStatus, Message, Sender
from refdesk import asyncdb
from tests.conftest import test_database_url as database_url

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def waiting_chat(springfield, staffed, start_chat):
    """A springfield chat waiting for its staffed library: (conversation, librarian)."""
    librarian = staffed(springfield)
    conversation, _ = start_chat(name="Ada")
    return conversation, librarian


@pytest.fixture
def active_chat(waiting_chat):
    conversation, librarian = waiting_chat
    services.accept_conversation(conversation_id=conversation.id, librarian=librarian)
    return conversation, librarian


@database_sync_to_async
def stored(conversation: Conversation) -> list[tuple[int, str, str]]:
    return list(
        Message.objects.filter(conversation=conversation).values_list(
            "seq", "sender", "body"
        )
    )


@database_sync_to_async
def message(conversation: Conversation, seq: int) -> Message:
    return Message.objects.get(conversation=conversation, seq=seq)


@database_sync_to_async
def refreshed(conversation: Conversation) -> Conversation:
    conversation.refresh_from_db()
    return conversation


async def test_patron_message_is_stored_and_framed_like_the_history(waiting_chat):
    conversation, _ = waiting_chat

    frame, created = await services.apost_message(
        conversation_id=conversation.id,
        sender=Sender.PATRON,
        body="Is the <b>branch</b> open?",
        client_id="c1",
    )

    assert created is True
    row = await message(conversation, 2)
    assert frame == protocol.message(row)
    assert (frame["seq"], frame["name"], frame["client_id"]) == (2, "Ada", "c1")
    assert frame["body"] == "Is the <b>branch</b> open?"


async def test_librarian_message_carries_their_name_and_sets_first_reply(
    active_chat,
):
    conversation, librarian = active_chat

    frame, _ = await services.apost_message(
        conversation_id=conversation.id,
        sender=Sender.LIBRARIAN,
        body="Yes, until 9.",
        librarian=librarian,
    )
    await services.apost_message(
        conversation_id=conversation.id,
        sender=Sender.LIBRARIAN,
        body="Anything else?",
        librarian=librarian,
    )

    row = await message(conversation, 2)
    assert row.librarian_id == librarian.pk
    assert frame["name"] == librarian.display_name == row.name
    conversation = await refreshed(conversation)
    assert conversation.first_reply_at == row.sent_at
    assert conversation.last_seq == 3


async def test_seq_has_no_gaps_with_concurrent_senders(active_chat):
    conversation, librarian = active_chat

    async def patron(lane: str) -> None:
        for n in range(25):
            await services.apost_message(
                conversation_id=conversation.id,
                sender=Sender.PATRON,
                body=f"{lane}{n}",
                client_id=f"{lane}{n}",
            )

    async def desk() -> None:
        for n in range(25):
            await services.apost_message(
                conversation_id=conversation.id,
                sender=Sender.LIBRARIAN,
                body=f"l{n}",
                librarian=librarian,
            )

    await asyncio.gather(patron("p"), patron("q"), desk())

    rows = await stored(conversation)
    assert [seq for seq, _, _ in rows] == list(range(1, 77))
    bodies = [body for _, _, body in rows]
    for lane in "pql":
        assert [b for b in bodies if b[0] == lane] == [f"{lane}{n}" for n in range(25)]
    assert (await refreshed(conversation)).last_seq == 76


async def test_a_retried_client_id_is_stored_once_without_a_gap(waiting_chat):
    conversation, _ = waiting_chat
    send = {
        "conversation_id": conversation.id,
        "sender": Sender.PATRON,
        "body": "hello",
        "client_id": "c1",
    }

    first, created = await services.apost_message(**send)
    retried, created_again = await services.apost_message(**{**send, "body": "hel"})
    after, _ = await services.apost_message(**{**send, "client_id": "c2"})

    assert (created, created_again) == (True, False)
    assert retried == first  # the stored message, body and time included
    assert after["seq"] == 3
    assert (await refreshed(conversation)).last_seq == 3


async def test_racing_retries_of_one_message_are_stored_once(waiting_chat):
    conversation, _ = waiting_chat

    results = await asyncio.gather(
        *(
            services.apost_message(
                conversation_id=conversation.id,
                sender=Sender.PATRON,
                body="hi",
                client_id="c1",
            )
            for _ in range(5)
        )
    )

    assert sorted(created for _, created in results) == [False] * 4 + [True]
    assert {frame["seq"] for frame, _ in results} == {2}
    assert [seq for seq, _, _ in await stored(conversation)] == [1, 2]
    assert (await refreshed(conversation)).last_seq == 2


async def test_the_same_client_id_from_the_other_side_is_another_message(
    active_chat,
):
    conversation, librarian = active_chat

    await services.apost_message(
        conversation_id=conversation.id, sender=Sender.PATRON, body="a", client_id="x"
    )
    frame, created = await services.apost_message(
        conversation_id=conversation.id,
        sender=Sender.LIBRARIAN,
        body="b",
        client_id="x",
        librarian=librarian,
    )

    assert (created, frame["seq"], frame["sender"]) == (True, 3, "librarian")


async def test_unknown_conversation_is_not_found():
    with pytest.raises(ConversationNotFound):
        await services.apost_message(
            conversation_id=uuid.uuid4(), sender=Sender.PATRON, body="hi"
        )


async def test_closed_chats_refuse_both_sides_and_keep_their_seq(active_chat):
    conversation, librarian = active_chat
    await database_sync_to_async(services.close_conversation)(
        conversation_id=conversation.id, librarian=librarian
    )

    with pytest.raises(ConversationClosed):
        await services.apost_message(
            conversation_id=conversation.id, sender=Sender.PATRON, body="hi"
        )
    with pytest.raises(ConversationClosed):
        await services.apost_message(
            conversation_id=conversation.id,
            sender=Sender.LIBRARIAN,
            body="bye",
            librarian=librarian,
        )

    conversation = await refreshed(conversation)
    assert conversation.status == ConversationStatus.CLOSED
    assert conversation.last_seq == 1
    assert len(await stored(conversation)) == 1


async def test_a_librarian_cannot_post_to_a_chat_that_is_not_theirs(
    waiting_chat, springfield, make_librarian
):
    conversation, librarian = waiting_chat

    with pytest.raises(NotYours):  # still waiting: nobody's yet
        await services.apost_message(
            conversation_id=conversation.id,
            sender=Sender.LIBRARIAN,
            body="hello?",
            librarian=librarian,
        )
    await database_sync_to_async(services.accept_conversation)(
        conversation_id=conversation.id, librarian=librarian
    )
    colleague = await database_sync_to_async(make_librarian)(springfield)
    with pytest.raises(NotYours):
        await services.apost_message(
            conversation_id=conversation.id,
            sender=Sender.LIBRARIAN,
            body="I'll take this",
            librarian=colleague,
        )

    assert (await refreshed(conversation)).last_seq == 1


async def test_each_message_is_published_once_to_the_conversation_group(
    active_chat,
):
    conversation, librarian = active_chat
    layer = get_channel_layer()
    listener = await layer.new_channel()
    await layer.group_add(events.conversation_group(conversation.id), listener)
    desk_listener = await layer.new_channel()
    await layer.group_add(events.librarian_desks_group(librarian.pk), desk_listener)
    try:
        frame, _ = await services.apost_message(
            conversation_id=conversation.id, sender=Sender.PATRON, body="hi"
        )

        event = await asyncio.wait_for(layer.receive(listener), 3)
        assert event == {
            "type": "conversation.message",
            "message": frame,
            "conversation": str(conversation.id),
        }
        for channel in (listener, desk_listener):  # nothing else, anywhere
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(layer.receive(channel), 0.3)
    finally:
        await layer.group_discard(events.conversation_group(conversation.id), listener)
        await layer.group_discard(
            events.librarian_desks_group(librarian.pk), desk_listener
        )


async def _three_more_messages(conversation, librarian) -> None:
    """seq 2..4, from both sides, with HTML in the bodies."""
    for n in range(3):
        await services.apost_message(
            conversation_id=conversation.id,
            sender=Sender.PATRON if n % 2 else Sender.LIBRARIAN,
            body=f"<i>line {n}</i>",
            client_id=f"c{n}",
            librarian=None if n % 2 else librarian,
        )


# A desk's history reads: alibrarian_messages_after
# ----------------------------------------------------------------------
async def test_a_desks_history_read_matches_the_orm_read(active_chat):
    conversation, librarian = active_chat
    await _three_more_messages(conversation, librarian)

    for after in (0, 2, 4):
        frames = await services.alibrarian_messages_after(
            conversation_id=conversation.id, librarian=librarian, after_seq=after
        )
        assert frames == await database_sync_to_async(
            services.librarian_messages_after
        )(conversation_id=conversation.id, librarian=librarian, after_seq=after)
        assert [f["seq"] for f in frames] == list(range(after + 1, 5))
    assert frames == []
    first = (
        await services.alibrarian_messages_after(
            conversation_id=conversation.id, librarian=librarian, after_seq=0
        )
    )[0]
    assert first["conversation"] == str(conversation.id)
    assert first["sent_at"].endswith("+00:00")


async def test_a_desks_history_read_refuses_others_and_unknown_chats(
    active_chat, springfield, make_librarian
):
    conversation, _ = active_chat
    colleague = await database_sync_to_async(make_librarian)(springfield)

    with pytest.raises(NotYours):
        await services.alibrarian_messages_after(
            conversation_id=conversation.id, librarian=colleague, after_seq=0
        )
    with pytest.raises(ConversationNotFound):
        await services.alibrarian_messages_after(
            conversation_id=uuid.uuid4(), librarian=colleague, after_seq=0
        )


# A patron socket's gap fill: amessages_after
# ----------------------------------------------------------------------
async def test_a_patrons_gap_read_matches_the_orm_read(active_chat):
    conversation, librarian = active_chat
    await _three_more_messages(conversation, librarian)

    for after in (0, 2, 4):
        frames = await services.amessages_after(
            conversation_id=conversation.id, after_seq=after
        )
        assert frames == await database_sync_to_async(selectors.messages_after)(
            conversation.id, after
        )
        assert [f["seq"] for f in frames] == list(range(after + 1, 5))
    assert frames == []
    first = (
        await services.amessages_after(conversation_id=conversation.id, after_seq=0)
    )[0]
    assert "conversation" not in first  # the patron shape
    assert first["sent_at"].endswith("+00:00")

    with pytest.raises(ConversationNotFound):
        await services.amessages_after(conversation_id=uuid.uuid4(), after_seq=0)


async def test_times_read_on_the_pool_are_utc_whatever_the_servers_zone(
    active_chat,
):
    """The pool's sessions keep the server's TimeZone (Django sets UTC only on
    its own connections); frames must not change shape with it."""
    conversation, librarian = active_chat
    frame, _ = await services.apost_message(
        conversation_id=conversation.id,
        sender=Sender.PATRON,
        body="hi",
        client_id="tz",
    )
    database = await database_sync_to_async(connection_name)()
    await alter_time_zone(database, "'America/Chicago'")
    try:
        await asyncdb.close_pools()  # new sessions take the database's zone
        pool = await asyncdb.pool()
        async with pool.connection() as conn:
            zone = await (await conn.execute("SHOW TimeZone")).fetchone()
        assert zone == ("America/Chicago",)

        again, created = await services.apost_message(
            conversation_id=conversation.id,
            sender=Sender.PATRON,
            body="hi",
            client_id="tz",
        )
        history = await services.alibrarian_messages_after(
            conversation_id=conversation.id, librarian=librarian, after_seq=1
        )
    finally:
        await alter_time_zone(database, "DEFAULT")

    assert created is False
    assert again == frame
    assert history == [protocol.desk_message(frame, conversation.id)]


def connection_name() -> str:
    return connection.settings_dict["NAME"]


@database_sync_to_async
def alter_time_zone(database: str, zone: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER DATABASE "{database}" SET TimeZone TO {zone}')


# Group commit: messages queued behind busy writers share one transaction
# ----------------------------------------------------------------------
@pytest.fixture
def one_writer(settings):
    """One writer per process, so that anything sent while it is busy queues."""
    settings.REFDESK_DB_ASYNC_WRITERS = 1


@pytest.fixture
def three_active_chats(active_chats):
    return active_chats(3)


@pytest.fixture
def active_chats(springfield, staffed, start_chat):
    """`active_chats(n)`: n chats accepted by one librarian, and the librarian."""
    librarian = staffed(springfield)

    def make(count: int):
        # Room at the library for every chat, all with one librarian.
        springfield.chats_per_librarian = max(springfield.chats_per_librarian, count)
        springfield.save(update_fields=["chats_per_librarian"])
        chats = []
        for n in range(count):
            conversation, _ = start_chat(name=f"Patron {n}")
            services.accept_conversation(
                conversation_id=conversation.id, librarian=librarian
            )
            chats.append(conversation)
        return chats, librarian

    return make


def patron_says(conversation, body: str, client_id: str = ""):
    return services.apost_message(
        conversation_id=conversation.id,
        sender=Sender.PATRON,
        body=body,
        client_id=client_id or body,
    )


@database_sync_to_async
def insertion_order(conversations) -> list[tuple[uuid.UUID, str]]:
    return list(
        Message.objects.filter(conversation__in=conversations, seq__gt=1)
        .order_by("pk")
        .values_list("conversation_id", "body")
    )


async def test_messages_sent_while_the_writer_is_busy_commit_as_one_group(
    one_writer, three_active_chats
):
    chats, librarian = three_active_chats
    await patron_says(chats[0], "alone")  # an idle writer takes it by itself
    writing = asyncdb.committer()
    assert (writing.alone, writing.groups) == (1, 0)

    sends = [(chats[n % 3], f"{n % 3}-{n}") for n in range(1, 10)]
    frames = await asyncio.gather(*(patron_says(c, body) for c, body in sends))

    # The idle writer sent the first at once, alone; the eight made while it
    # was busy waited and committed together.
    assert (writing.alone, writing.groups, writing.grouped) == (2, 1, 8)
    assert all(created for _, created in frames)
    for n, conversation in enumerate(chats):
        rows = await stored(conversation)
        assert [seq for seq, _, _ in rows] == list(range(1, len(rows) + 1))
        mine = [body for c, body in sends if c == conversation]
        assert [body for _, _, body in rows[1:]] == (["alone"] if n == 0 else []) + mine
        assert (await refreshed(conversation)).last_seq == len(rows)
    # The group took its row locks in conversation order, keeping each
    # conversation's own order.
    inserted = await insertion_order(chats)
    assert inserted[1] == (sends[0][0].id, sends[0][1])
    grouped = inserted[2:]
    assert [c for c, _ in grouped] == sorted(c for c, _ in grouped)
    assert grouped == [
        (c.id, body) for c, body in sorted(sends[1:], key=lambda send: send[0].id)
    ]


async def test_a_retried_message_in_a_group_is_stored_once_and_the_rest_normally(
    one_writer, three_active_chats
):
    """The retry's unique violation rolls the whole group back; each message is
    then written alone and gets exactly what it would have got ungrouped."""
    chats, _ = three_active_chats
    first, _ = await patron_says(chats[0], "hello", client_id="c1")

    results = await asyncio.gather(
        patron_says(chats[1], "before"),
        patron_says(chats[0], "hello again?", client_id="c1"),
        patron_says(chats[0], "after"),
        patron_says(chats[2], "elsewhere"),
    )

    writing = asyncdb.committer()
    assert (writing.failed_groups, writing.groups) == (1, 0)
    assert [created for _, created in results] == [True, False, True, True]
    assert results[1][0] == first
    assert [(seq, body) for seq, _, body in await stored(chats[0])][1:] == [
        (2, "hello"),
        (3, "after"),
    ]
    for conversation, body in ((chats[1], "before"), (chats[2], "elsewhere")):
        assert [(s, b) for s, _, b in await stored(conversation)][1:] == [(2, body)]
        assert (await refreshed(conversation)).last_seq == 2


async def test_a_closed_chat_refuses_its_message_and_the_group_commits_the_rest(
    one_writer, three_active_chats
):
    chats, librarian = three_active_chats
    await database_sync_to_async(services.close_conversation)(
        conversation_id=chats[1].id, librarian=librarian
    )
    await patron_says(chats[0], "warm")

    # The idle writer sends the first alone; the three behind it form the group.
    results = await asyncio.gather(
        patron_says(chats[2], "lead"),
        patron_says(chats[0], "kept"),
        patron_says(chats[1], "too late"),
        patron_says(chats[2], "kept too"),
        return_exceptions=True,
    )

    assert isinstance(results[2], ConversationClosed)
    assert [created for _, created in (results[1], results[3])] == [True, True]
    writing = asyncdb.committer()
    assert (writing.groups, writing.grouped, writing.failed_groups) == (1, 3, 0)
    closed = await refreshed(chats[1])
    assert [body for _, _, body in await stored(closed)][-1] != "too late"


@contextlib.asynccontextmanager
async def row_locked(conversation):
    """Another session holds `conversation`'s row lock until the block ends."""
    locker = await psycopg.AsyncConnection.connect(database_url())
    try:
        await locker.execute(
            "SELECT 1 FROM chat_conversation WHERE id = %s FOR UPDATE",
            [conversation.id],
        )
        yield locker
    finally:
        await locker.rollback()
        await locker.close()


async def waiters(locker, count: int) -> None:
    """Wait until `count` sessions wait on a lock."""
    for _ in range(200):
        cursor = await locker.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        if (await cursor.fetchone())[0] >= count:
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"{count} session(s) never waited on a lock")


async def test_two_groups_crossing_the_same_chats_do_not_deadlock(
    settings, active_chats
):
    """Two writers' groups touch the same two chats, sent in opposite orders.
    Taken in the order sent, the second group would hold the last chat while
    waiting for the first, and the first the reverse (PostgreSQL would abort
    one after a second); taken in conversation order, they queue.

    Groups form only behind busy writers, so each writer is first held on a
    chat of its own (`gate_a`, `gate_b`) while its group queues."""
    settings.REFDESK_DB_ASYNC_WRITERS = 2
    chats, _ = await database_sync_to_async(active_chats)(5)
    gate_a, gate_b = chats[3:]
    low, middle, high = sorted(chats[:3], key=lambda c: c.id)
    await patron_says(low, "warm")

    async with (
        row_locked(middle) as locker,
        row_locked(gate_a) as holding_a,
        row_locked(gate_b) as holding_b,
    ):
        held = [
            asyncio.create_task(patron_says(gate, "held")) for gate in (gate_a, gate_b)
        ]
        await waiters(locker, 2)  # both writers wait on their gates
        first = [
            asyncio.create_task(patron_says(c, f"first {n}"))
            for n, c in enumerate((low, middle, high))
        ]
        await asyncio.sleep(0.05)  # queued behind the writers
        # Writer A takes `first`: it holds low and waits for middle.
        await holding_a.rollback()
        await waiters(locker, 2)
        second = [
            asyncio.create_task(patron_says(c, f"second {n}"))
            for n, c in enumerate((high, low))
        ]
        await asyncio.sleep(0.05)
        # Writer B takes `second`: it waits for low, holding nothing.
        await holding_b.rollback()
        await waiters(locker, 2)
    results = await asyncio.wait_for(asyncio.gather(*held, *first, *second), 10)

    writing = asyncdb.committer()
    assert (writing.alone, writing.failed_groups) == (3, 0)  # warm and the gates
    assert (writing.groups, writing.grouped) == (2, 5)
    assert all(created for _, created in results)
    for conversation in chats:
        rows = await stored(conversation)
        assert [seq for seq, _, _ in rows] == list(range(1, len(rows) + 1))


async def test_a_message_cancelled_before_its_turn_is_not_stored(
    one_writer, three_active_chats
):
    chats, _ = three_active_chats
    async with row_locked(chats[0]) as locker:
        busy = asyncio.create_task(patron_says(chats[0], "held"))
        await waiters(locker, 1)
        gone = asyncio.create_task(patron_says(chats[1], "never mind"))
        await asyncio.sleep(0.05)
        gone.cancel()
        await asyncio.gather(gone, return_exceptions=True)
    await busy
    await patron_says(chats[1], "next")

    assert [body for _, _, body in await stored(chats[1])][1:] == ["next"]


async def test_a_writer_that_cannot_reach_the_database_fails_its_callers_only(
    one_writer, three_active_chats
):
    chats, _ = three_active_chats
    await patron_says(chats[0], "before")
    await (await asyncdb.pool()).close()  # as when the database went away

    results = await asyncio.gather(
        *(patron_says(c, f"lost {n}") for n, c in enumerate(chats)),
        return_exceptions=True,
    )
    assert all(isinstance(r, psycopg.OperationalError) for r in results)

    await asyncdb.close_pools()  # the next write opens a new pool
    frame, created = await patron_says(chats[0], "after")
    assert (created, frame["seq"]) == (True, 3)


async def test_a_group_whose_connection_dies_fails_every_caller_and_stores_nothing(
    one_writer, three_active_chats
):
    """The group's outcome is unknown to it (a lost reply to COMMIT looks the
    same), so it must not write its messages again: each caller hears the
    error, as a single statement's caller would, and may retry."""
    chats, _ = three_active_chats
    await patron_says(chats[1], "warm")
    async with row_locked(chats[0]) as locker, row_locked(chats[1]) as gate:
        # The writer is held on chats[1] while the group queues behind it.
        held = asyncio.create_task(patron_says(chats[1], "held"))
        await waiters(locker, 1)
        group = [
            asyncio.create_task(patron_says(c, f"grouped {n}"))
            for n, c in enumerate(chats)
        ]
        await asyncio.sleep(0.05)
        await gate.rollback()
        await held
        await waiters(locker, 1)  # the group, on chats[0]
        cursor = await locker.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE NOT granted"
        )
        assert await cursor.fetchall() == [(True,)]
        # Bounded: written again, the group's first message would wait for
        # this lock for good.
        done, _ = await asyncio.wait(group, timeout=10)
        assert len(done) == len(group), "the group was written again"
        results = [task.exception() for task in group]

    assert all(isinstance(r, psycopg.OperationalError) for r in results), results
    assert asyncdb.committer().failed_groups == 0
    for conversation in chats:
        bodies = [body for _, _, body in await stored(conversation)]
        assert not [b for b in bodies if b.startswith("grouped")]
