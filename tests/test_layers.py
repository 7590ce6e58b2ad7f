"""refdesk.layers: the pub/sub channel layer, publishing without a convoy."""

import asyncio
import uuid

import pytest
import pytest_asyncio
from channels.layers import get_channel_layer
from channels_redis import pubsub
from django.conf import settings

from refdesk.layers import RedisPubSubChannelLayer

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def layer():
    """A layer of its own on the test's Redis, flushed (connections closed) after."""
    made = RedisPubSubChannelLayer(**settings.CHANNEL_LAYERS["default"]["CONFIG"])
    yield made
    await made.flush()


async def _member(layer) -> tuple[str, str]:
    group = f"layer-test-{uuid.uuid4().hex}"
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return group, channel


async def test_the_configured_layer_is_refdesks():
    assert isinstance(get_channel_layer(), RedisPubSubChannelLayer)


async def test_a_publish_does_not_wait_for_the_shards_lock(layer):
    """channels_redis holds this lock across each publish's round trip, and
    while a subscribe is sent; a publish of ours goes out regardless."""
    group, channel = await _member(layer)
    (shard,) = layer._get_layer()._shards
    async with shard._lock:
        await asyncio.wait_for(layer.group_send(group, {"type": "t", "n": 1}), 2)
    assert await asyncio.wait_for(layer.receive(channel), 2) == {"type": "t", "n": 1}


async def test_the_stock_layer_would_have_waited(layer):
    """The control: the same held lock stops channels_redis's own publish, which
    is what made a process's publishes a convoy under load."""
    stock = pubsub.RedisPubSubChannelLayer(
        **settings.CHANNEL_LAYERS["default"]["CONFIG"]
    )
    try:
        group, _ = await _member(stock)
        (shard,) = stock._get_layer()._shards
        async with shard._lock:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(stock.group_send(group, {"type": "t"}), 0.3)
    finally:
        await stock.flush()


async def test_one_tasks_publishes_arrive_in_order(layer):
    group, channel = await _member(layer)
    for n in range(50):
        await layer.group_send(group, {"type": "t", "n": n})
    received = [(await layer.receive(channel))["n"] for _ in range(50)]
    assert received == list(range(50))


async def test_concurrent_publishes_all_arrive(layer):
    group, channel = await _member(layer)
    await asyncio.gather(
        *(layer.group_send(group, {"type": "t", "n": n}) for n in range(200))
    )
    received = [(await layer.receive(channel))["n"] for _ in range(200)]
    assert sorted(received) == list(range(200))
