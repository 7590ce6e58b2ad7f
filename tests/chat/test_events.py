"""Publishing from sync code outside the ASGI server (the Celery worker's case)."""

import asyncio

import pytest
from channels.layers import get_channel_layer

from chat import events

pytestmark = pytest.mark.asyncio


async def test_send_now_off_the_server_publishes_in_order_from_one_loop():
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("test.publisher", channel)
    try:
        # A plain thread, as in a Celery worker: no server loop to borrow.
        for n in range(3):
            await asyncio.to_thread(
                events.send_now, ["test.publisher"], {"type": "test.event", "n": n}
            )

        received = [await asyncio.wait_for(layer.receive(channel), 3) for _ in "abc"]
        assert [event["n"] for event in received] == [0, 1, 2]
        loops = {await asyncio.to_thread(events._publisher) for _ in range(3)}
        assert len(loops) == 1
        assert next(iter(loops)).is_running()
    finally:
        await layer.group_discard("test.publisher", channel)
