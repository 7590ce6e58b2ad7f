"""refdesk.layers: the pub/sub channel layer, sending queued publishes together,
on the test's real Redis."""

import asyncio
import socket
import uuid

import pytest
import pytest_asyncio
from channels.layers import get_channel_layer
from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError

from refdesk.layers import MOST_PER_BATCH, RedisPubSubChannelLayer

pytestmark = pytest.mark.asyncio


def _config(address: str | None = None) -> dict:
    config = dict(settings.CHANNEL_LAYERS["default"]["CONFIG"])
    if address:
        config["hosts"] = [{**config["hosts"][0], "address": address}]
    return config


@pytest_asyncio.fixture
async def layer():
    """A layer of its own, flushed (connections closed) after."""
    made = RedisPubSubChannelLayer(**_config())
    yield made
    await made.flush()


@pytest_asyncio.fixture
async def listener():
    """A second layer, as another process would be, to receive on."""
    made = RedisPubSubChannelLayer(**_config())
    yield made
    await made.flush()


async def _member(layer) -> tuple[str, str]:
    group = f"layer-test-{uuid.uuid4().hex}"
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return group, channel


def _shard(layer):
    (shard,) = layer._get_layer()._shards
    return shard


async def _received(layer, channel, count: int) -> list[int]:
    return [
        (await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(count)
    ]


async def test_the_configured_layer_is_refdesks():
    assert isinstance(get_channel_layer(), RedisPubSubChannelLayer)


async def test_a_lone_publish_is_one_round_trip(layer, listener):
    group, channel = await _member(listener)
    await layer.group_send(group, {"type": "t", "n": 1})
    assert await _received(listener, channel, 1) == [1]
    assert (_shard(layer).round_trips, _shard(layer).published) == (1, 1)


async def test_a_lone_publish_is_sent_before_its_caller_yields(layer, listener):
    """The shard's sender starts at once (`refdesk.aio.start_now`): the
    PUBLISH is written in the caller's own turn of the loop, not the next."""
    group, channel = await _member(listener)
    await layer.group_send(group, {"type": "t", "n": 0})  # connects
    shard = _shard(layer)
    publishing = asyncio.create_task(layer.group_send(group, {"type": "t", "n": 1}))
    await asyncio.sleep(0)  # the task has run once, up to waiting for Redis
    assert shard.round_trips == 2
    await publishing
    assert await _received(listener, channel, 2) == [0, 1]


async def test_publishes_queued_together_share_a_round_trip_in_order(layer, listener):
    """Publishes made while the sender is busy go out in one pipeline each
    time it comes free, in the order they were made."""
    group, channel = await _member(listener)
    count = 2 * MOST_PER_BATCH + 1
    await asyncio.gather(
        *(layer.group_send(group, {"type": "t", "n": n}) for n in range(count))
    )
    assert await _received(listener, channel, count) == list(range(count))
    shard = _shard(layer)
    # every task queued its publish before the sender first ran
    assert shard.published == count
    assert shard.round_trips == 3


async def test_one_tasks_publishes_arrive_in_order(layer, listener):
    group, channel = await _member(listener)
    for n in range(50):
        await layer.group_send(group, {"type": "t", "n": n})
    assert await _received(listener, channel, 50) == list(range(50))
    assert _shard(layer).round_trips == 50  # nothing waited to make a batch


async def test_a_publish_does_not_wait_for_a_subscribe(layer, listener):
    """channels_redis holds the shard's lock while a subscribe is sent;
    publishes no longer take it."""
    group, channel = await _member(listener)
    async with _shard(layer)._lock:
        await asyncio.wait_for(layer.group_send(group, {"type": "t", "n": 1}), 2)
    assert await _received(listener, channel, 1) == [1]


async def test_a_cancelled_publish_that_was_still_queued_is_not_sent(layer, listener):
    group, channel = await _member(listener)
    first = asyncio.create_task(layer.group_send(group, {"type": "t", "n": 1}))
    second = asyncio.create_task(layer.group_send(group, {"type": "t", "n": 2}))
    await asyncio.sleep(0)  # both queued; the sender has not run yet
    second.cancel()
    await first
    with pytest.raises(asyncio.CancelledError):
        await second
    await layer.group_send(group, {"type": "t", "n": 3})
    assert await _received(listener, channel, 2) == [1, 3]
    assert _shard(layer).published == 2


async def test_flush_sends_what_is_queued_first(layer, listener):
    group, channel = await _member(listener)
    sends = [
        asyncio.create_task(layer.group_send(group, {"type": "t", "n": n}))
        for n in range(5)
    ]
    await asyncio.sleep(0)
    await layer.flush()
    await asyncio.gather(*sends)
    assert await _received(listener, channel, 5) == list(range(5))


async def test_a_dead_redis_fails_every_publish_of_the_batch_and_recovers():
    """Each caller gets the error, as with channels_redis's own publish; the
    sender does not hang, and the next publish tries again."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # closed again before the publishes
    dead = RedisPubSubChannelLayer(**_config(f"redis://127.0.0.1:{port}/0"))
    try:
        outcomes = await asyncio.wait_for(
            asyncio.gather(
                *(dead.group_send("nobody", {"type": "t", "n": n}) for n in range(3)),
                return_exceptions=True,
            ),
            30,
        )
        assert all(isinstance(outcome, RedisConnectionError) for outcome in outcomes)
        shard = _shard(dead)
        assert shard._sender is None
        assert not shard._queued
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(dead.group_send("nobody", {"type": "t"}), 30)
    finally:
        await dead.flush()
