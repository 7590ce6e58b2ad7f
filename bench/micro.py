"""Micro-benchmarks of the costs the load bench cannot separate (issue 7).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/refdesk_micro \\
    REDIS_URL=redis://127.0.0.1:6379/0 REFDESK_REDIS_PREFIX=micro \\
    python -m bench.micro ops        # CPU per step of a chat's life
    python -m bench.micro statements # PostgreSQL CPU per stored message, by shape
    python -m bench.micro groups     # client and PostgreSQL CPU, by group size
    python -m bench.micro publishes  # channel layer: client and Redis CPU, by burst
    python -m bench.micro dispatch   # a socket's event loop: CPU and GC per event

Run it on a scratch database (it migrates, seeds the demo and starts chats
there) with nothing else busy: figures are CPU time, but a loaded machine
inflates them.

`ops` times, in this process, the work a web process does for each chat
besides its messages: the start request (through Django's test client and the
whole middleware stack), the accept, the patron socket opening and a desk's
catch-up read (each on the event loop's pool as served, and through the ORM as
before) and a desk heartbeat. In a web process the ORM versions and the rest
run on the one thread that Django gives all sync work, sharing the GIL with
the event loop that delivers messages; the pool versions run on that loop.
The publishes they make are counted: the ORM versions' go through this
process's publisher loop (`chat.events`), the pool versions' through the loop
they run on.

`statements` stores messages with the statement the sockets use
(`chat.services.messages`) and reads the CPU time of every PostgreSQL process
from /proc around it: one autocommit statement per message (as served), the
same without the foreign-key triggers (`session_replication_role = replica`:
what the checks cost), one pipeline per message, batches of 5 and 20
messages per transaction (what group commit would save), and two lower
bounds of the `seq` update: the conversation updated by id alone (no status
or ownership check), and a two-column counter table instead of the
conversation row.

`groups` stores patron messages through `refdesk.asyncdb.GroupCommit` (one
writer) in groups of 1, 2, 3, 5 and 10 sent at once, and reads this process's
CPU (the client side: psycopg, asyncio, the writer) and PostgreSQL's per
message: what group commit saves at each size it forms at.

`publishes` needs only Redis. It sends `group_send`s in bursts of 1, 2, 5, 10
and 20 made at once (as a busy socket process does), each to a conversation
group that another layer in this process listens on, through channels_redis's
own pub/sub layer and through refdesk's (`refdesk.layers`, which sends what
queued together in one round trip), and reads this process's CPU and Redis's
per publish, and the wall time until the burst is published.

`dispatch` needs nothing. On uvloop, as the sockets run, it opens 1000
stand-ins for idle sockets (two queues each: the socket and the layer), each read by
Channels' `await_many_dispatch` or by `refdesk.aio.dispatch_each`, and hands
them events at random, ten per loop pass, with the collector at its default
thresholds. It reads the CPU per event and times every young collection (the
loop's pauses): how many, their median and longest, and their total.
"""

import argparse
import asyncio
import gc
import json
import os
import random
import time
from collections.abc import Callable
from functools import partial

import django

BODY = "Hello there, a message body of ordinary length for a reference chat."


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "what", choices=("ops", "statements", "groups", "publishes", "dispatch")
    )
    parser.add_argument("-n", type=int, default=0, help="repetitions")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refdesk.settings")
    os.environ.setdefault("REFDESK_CHAT_RATE_PER_MINUTE", "1000000")
    django.setup()
    if args.what == "publishes":
        asyncio.run(_publishes(args.n or 5000))
        return
    if args.what == "dispatch":
        import uvloop

        uvloop.run(_dispatch(args.n or 100_000))
        return
    librarian = _prepare()
    try:
        if args.what == "ops":
            _ops(librarian, args.n or 150)
        elif args.what == "groups":
            asyncio.run(_groups(librarian, args.n or 3000))
        else:
            _statements(librarian, args.n or 3000)
    finally:
        # Each chat started here queued its escalation timer, and no worker
        # consumes this prefix's queue: drop them rather than leave thousands.
        from refdesk.celery import app

        dropped = app.control.purge()
        print(f"dropped {dropped} queued timer task(s) of this run")


def _prepare():
    from django.core.management import call_command

    from chat import services
    from libraries.models import Librarian, Library

    call_command("migrate", verbosity=0)
    call_command("seed_demo", verbosity=0, always_open=True)
    Library.objects.update(chats_per_librarian=1000)  # capacity never routes
    librarian = (
        Librarian.objects.select_related("library", "user")
        .filter(library__slug="springfield")
        .order_by("pk")
        .first()
    )
    services.desk_heard(librarian=librarian, socket_id="micro-desk", available=True)
    return librarian


def _summary(name: str, ms: list[float], unit: str = "CPU ms") -> None:
    ms = sorted(ms)
    print(
        f"{name:18} {unit}: mean {sum(ms) / len(ms):.3f}  p50 {ms[len(ms) // 2]:.3f}"
        f"  p90 {ms[int(len(ms) * 0.9)]:.3f}  (n={len(ms)})"
    )


def _ops(librarian, n: int) -> None:
    from django.test import Client

    from chat import services
    from refdesk import asyncdb

    client = Client(REMOTE_ADDR="10.0.0.9", HTTP_HOST="127.0.0.1")
    body = json.dumps({"question": "Do you have Moby-Dick?", "name": "Ann"})

    def start() -> str:
        response = client.post(
            "/api/v1/libraries/springfield/conversations",
            data=body,
            content_type="application/json",
            HTTP_ORIGIN="http://127.0.0.1:8000",
        )
        assert response.status_code == 201, response.content
        return response.json()["id"]

    steps: dict[str, list[float]] = {
        name: []
        for name in (
            "start",
            "accept (ORM)",
            "accept",
            "patron opens (ORM)",
            "patron opens",
            "catch-up (ORM)",
            "catch-up",
            "heartbeat",
        )
    }
    loop = asyncio.new_event_loop()  # the sockets' reads run on the server's loop

    def timed(name: str, work: Callable, record: bool):
        t = time.process_time()
        out = work()
        if record:
            steps[name].append((time.process_time() - t) * 1000)
        return out

    for i in range(n + 20):  # the first 20 warm the caches up
        record = i >= 20
        cid = timed("start", start, record)
        other = start()  # for the ORM versions of the accept and the opening
        for name, work in (
            (
                "accept (ORM)",
                partial(
                    services.accept_conversation,
                    conversation_id=other,
                    librarian=librarian,
                ),
            ),
            (
                "accept",
                lambda cid=cid: loop.run_until_complete(
                    services.aaccept_conversation(
                        conversation_id=cid, librarian=librarian
                    )
                ),
            ),
            (
                "patron opens (ORM)",
                partial(services.patron_opened, conversation_id=other),
            ),
            (
                "patron opens",
                lambda cid=cid: loop.run_until_complete(
                    services.apatron_opened(conversation_id=cid)
                ),
            ),
            (
                "catch-up (ORM)",
                partial(
                    services.librarian_messages_after,
                    conversation_id=cid,
                    librarian=librarian,
                    after_seq=1,
                ),
            ),
            (
                "catch-up",
                lambda cid=cid: loop.run_until_complete(
                    services.alibrarian_messages_after(
                        conversation_id=cid, librarian=librarian, after_seq=1
                    )
                ),
            ),
            (
                "heartbeat",
                partial(
                    services.desk_heard,
                    librarian=librarian,
                    socket_id="micro-desk",
                    available=True,
                ),
            ),
        ):
            timed(name, work, record)
        for done in (cid, other):
            services.close_conversation(conversation_id=done, librarian=librarian)
    for name, ms in steps.items():
        _summary(name, ms)
    loop.run_until_complete(asyncdb.close_pools())
    loop.close()


def _postgres_cpu_s() -> float:
    """CPU seconds of every PostgreSQL process on this machine."""
    return _cpu_s("postgres")


def _cpu_s(command: str) -> float:
    """CPU seconds of every process on this machine whose name starts so."""
    ticks = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                line = stat.read()
        except OSError:
            continue
        if line[line.index("(") + 1 : line.rindex(")")].startswith(command):
            fields = line[line.rindex(")") + 2 :].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _active_chats(librarian, count: int = 100) -> list:
    """`count` chats the librarian has accepted, started here if need be."""
    from chat.models import Conversation, ConversationStatus
    from chat.services import queue, routing

    active = list(
        Conversation.objects.filter(
            librarian=librarian, status=ConversationStatus.ACTIVE
        )[:count]
    )
    for _ in range(count - len(active)):
        conversation, _ = routing.start_conversation(
            library_slug=librarian.library.slug, question="A question?"
        )
        active.append(
            queue.accept_conversation(
                conversation_id=conversation.id, librarian=librarian
            )
        )
    return active


async def _groups(librarian, n: int) -> None:
    from asgiref.sync import sync_to_async
    from django.utils import timezone

    from chat.models import Sender
    from chat.services import messages
    from refdesk import asyncdb

    active = await sync_to_async(_active_chats)(librarian)
    writing = asyncdb.GroupCommit(writers=1)

    def store(tag: str):
        conversation = random.choice(active)
        now = timezone.now()
        update, params = messages._seq_update(conversation.id, Sender.PATRON, None, now)
        insert = [
            Sender.PATRON,
            None,
            None,
            BODY,
            f"{tag}-{random.getrandbits(64):x}",
            now,
        ]
        return writing.fetchone(
            messages._INSERT_TAKING_SEQ.format(update=update),
            [*params, *insert],
            order=conversation.id,
        )

    try:
        for _ in range(50):  # prepared after five uses
            await store("warm")
        for round_ in (1, 2):
            for size in (1, 2, 3, 5, 10):
                client, postgres = time.process_time(), _postgres_cpu_s()
                wall = time.perf_counter()
                for _ in range(n // size):
                    await asyncio.gather(*(store(f"g{size}") for _ in range(size)))
                print(
                    f"round {round_}  groups of {size:2}  client CPU "
                    f"{(time.process_time() - client) * 1000 / n:.3f} ms/msg  "
                    f"PostgreSQL CPU {(_postgres_cpu_s() - postgres) * 1000 / n:.3f}  "
                    f"wall {(time.perf_counter() - wall) * 1000 / n:.3f}",
                    flush=True,
                )
        assert writing.failed_groups == 0
    finally:
        await asyncdb.close_pools()


async def _publishes(n: int) -> None:
    from channels_redis import pubsub
    from django.conf import settings

    from refdesk import layers

    config = settings.CHANNEL_LAYERS["default"]["CONFIG"]
    listener = pubsub.RedisPubSubChannelLayer(**config)
    groups = [f"micro.conversation.{i}" for i in range(100)]
    channel = await listener.new_channel()
    for group in groups:
        await listener.group_add(group, channel)

    async def drain() -> None:
        while True:
            await listener.receive(channel)

    draining = asyncio.create_task(drain())
    event = {"type": "chat.message", "message": {"seq": 1, "body": BODY}}
    kinds = {
        "channels_redis": pubsub.RedisPubSubChannelLayer,
        "refdesk.layers": layers.RedisPubSubChannelLayer,
    }
    try:
        for round_ in (1, 2):
            for size in (1, 2, 5, 10, 20):
                for name, kind in kinds.items():
                    layer = kind(**config)
                    for _ in range(20):
                        await layer.group_send(random.choice(groups), event)
                    client, redis = time.process_time(), _cpu_s("redis-server")
                    wall = time.perf_counter()
                    for _ in range(n // size):
                        await asyncio.gather(
                            *(
                                layer.group_send(random.choice(groups), event)
                                for _ in range(size)
                            )
                        )
                    wall = (time.perf_counter() - wall) * 1000 / n
                    print(
                        f"round {round_}  bursts of {size:2}  {name:14}  client CPU "
                        f"{(time.process_time() - client) * 1000 / n:.3f} ms/publish  "
                        f"Redis CPU {(_cpu_s('redis-server') - redis) * 1000 / n:.3f}  "
                        f"wall {wall:.3f}",
                        flush=True,
                    )
                    await layer.flush()
    finally:
        draining.cancel()
        await listener.flush()


async def _dispatch(n: int) -> None:
    from channels.utils import await_many_dispatch

    from refdesk.aio import dispatch_each

    loops = {"channels": await_many_dispatch, "refdesk.aio": dispatch_each}
    for round_ in (1, 2):
        for name, loop_function in loops.items():
            cpu, pauses = await _dispatch_round(loop_function, n)
            pauses.sort()
            print(
                f"round {round_}  {name:12}  CPU {cpu:.1f} µs/event  young "
                f"collections {len(pauses)}, median "
                f"{pauses[len(pauses) // 2] if pauses else 0:.2f} ms, longest "
                f"{pauses[-1] if pauses else 0:.2f} ms, total {sum(pauses):.0f} ms",
                flush=True,
            )


async def _dispatch_round(loop_function, n: int, sockets: int = 1000):
    """CPU µs per event and the young collections' pauses (ms) of one loop."""
    event = {"type": "websocket.receive", "text": BODY}
    queues = [(asyncio.Queue(), asyncio.Queue()) for _ in range(sockets)]
    dispatched = 0

    async def dispatch(_event) -> None:
        nonlocal dispatched
        dispatched += 1
        # Real handlers leave some garbage only the collector frees (the
        # sockets' young passes freed 46-300 objects each): one cycle per
        # event, so that young collections come about as they do there.
        cycle: list = []
        cycle.append(cycle)

    async def hand_out(count: int) -> None:
        target = dispatched + count
        for i in range(count):
            random.choice(queues)[random.randrange(2)].put_nowait(event)
            if i % 10 == 9:
                await asyncio.sleep(0)
        while dispatched < target:
            await asyncio.sleep(0)

    runners = [
        asyncio.create_task(loop_function([a.get, b.get], dispatch)) for a, b in queues
    ]
    await hand_out(sockets * 2)  # every loop has run; the rest is warm
    pauses: list[float] = []
    started = [0.0]

    def timer(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif info["generation"] == 0:
            pauses.append((time.perf_counter() - started[0]) * 1000)

    gc.collect()
    gc.callbacks.append(timer)
    cpu = time.process_time()
    try:
        await hand_out(n)
    finally:
        cpu = (time.process_time() - cpu) * 1_000_000 / n
        gc.callbacks.remove(timer)
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)
    return cpu, pauses


def _statements(librarian, n: int) -> None:
    import psycopg
    from django.utils import timezone

    from chat.models import Sender
    from chat.services import messages
    from refdesk.asyncdb import connection_kwargs

    active = _active_chats(librarian)

    # What the conditional update costs: the same insert after an update of
    # the conversation by id alone, and after one of a two-column table (the
    # counter alone). Neither checks status or ownership, so each is a lower
    # bound, not a statement refdesk could use as it is; their seqs are offset
    # far above the real ones.
    offsets = {
        "update by id only": random.randrange(10**7, 10**9),
        "narrow counter": random.randrange(10**9, 2 * 10**9),
    }
    counter = "bench_micro_seq"

    def statement(tag: str) -> tuple[str, list]:
        conversation = random.choice(active)
        by_librarian = random.random() < 0.5
        sender = Sender.LIBRARIAN if by_librarian else Sender.PATRON
        now = timezone.now()
        insert = [
            sender,
            librarian.pk if by_librarian else None,
            librarian.display_name if by_librarian else None,
            BODY,
            f"{tag}-{random.getrandbits(64):x}",
            now,
        ]
        if tag in offsets:
            table = counter if tag == "narrow counter" else messages._CONVERSATION
            return _UNCHECKED.format(table=table, message=messages._MESSAGE), [
                conversation.id,
                offsets[tag],
                *insert,
            ]
        update, params = messages._seq_update(
            conversation.id, sender, librarian if by_librarian else None, now
        )
        return messages._INSERT_TAKING_SEQ.format(update=update), [*params, *insert]

    def run(shape: str) -> tuple[float, float]:
        with psycopg.connect(**connection_kwargs()) as conn:
            if shape == "no foreign keys":
                conn.execute("SET session_replication_role = replica")
            for _ in range(20):  # prepared after five uses
                conn.execute(*statement("warm"))
            cpu, wall = _postgres_cpu_s(), time.perf_counter()
            if shape.startswith("batches of"):
                size = int(shape.rsplit(" ", 1)[1])
                conn.autocommit = False
                for _ in range(n // size):
                    with conn.pipeline():
                        for _ in range(size):
                            conn.execute(*statement(shape))
                    conn.commit()
            elif shape == "one pipeline each":
                for _ in range(n):
                    with conn.pipeline():
                        conn.execute(*statement(shape))
            else:
                for _ in range(n):
                    conn.execute(*statement(shape))
            return (
                (_postgres_cpu_s() - cpu) * 1000 / n,
                (time.perf_counter() - wall) * 1000 / n,
            )

    shapes = (
        "autocommit",
        "no foreign keys",
        "one pipeline each",
        "batches of 5",
        "batches of 20",
        "update by id only",
        "narrow counter",
    )
    with psycopg.connect(**connection_kwargs()) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {counter}")
        conn.execute(
            f"CREATE TABLE {counter} (id uuid PRIMARY KEY, last_seq int NOT NULL)"
        )
        conn.execute(
            f"INSERT INTO {counter} SELECT id, last_seq FROM {messages._CONVERSATION}"
        )
    try:
        for round_ in (1, 2):
            for shape in shapes:
                cpu, wall = run(shape)
                print(
                    f"round {round_}  {shape:18} PostgreSQL CPU {cpu:.3f} ms/msg"
                    f"  wall {wall:.3f} ms/msg",
                    flush=True,
                )
    finally:
        with psycopg.connect(**connection_kwargs()) as conn:
            conn.execute(f"DROP TABLE {counter}")


_UNCHECKED = (
    "WITH taken AS (UPDATE {table} SET last_seq = last_seq + 1 WHERE id = %s "
    "RETURNING id, last_seq) INSERT INTO {message} "
    "(conversation_id, seq, sender, librarian_id, name, body, client_id, sent_at) "
    "SELECT id, last_seq + %s, %s, %s, COALESCE(%s, ''), %s, %s, %s FROM taken"
)


if __name__ == "__main__":
    main()
