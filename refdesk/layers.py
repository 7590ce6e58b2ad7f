"""The channel layer: channels_redis's pub/sub layer, with publishes that do not
queue behind each other.

`channels_redis.pubsub` sends every publish of a process under one
`asyncio.Lock` per Redis host, held for the whole round trip. Its subscribes
need that lock (they share one pub/sub connection); its publishes do not: they
go through redis-py's connection pool, which gives each concurrent command a
connection of its own. Held across the round trip, the lock made a process's
publishes a convoy: each waited for every earlier one to be answered *and* for
the event loop to get round to reading that answer. Under load that wait was
most of a message's delivery time (issue 7: at 1000 conversations the publish
took p50 0.8 ms and p99 80 ms, the database statement before it p99 15 ms).

Publishes from one task still reach Redis in order (each waits for the one
before); publishes from different tasks never had an order to keep, since two
processes publish independently anyway. Receivers put each conversation's
messages back in `seq` order (`chat.ordering`).
"""

import asyncio

from channels_redis import pubsub
from channels_redis.utils import _wrap_close, decode_hosts


class ShardConnection(pubsub.RedisSingleShardConnection):
    async def publish(self, channel, message):
        self._ensure_redis()  # synchronous: no other task runs in between
        await self._redis.publish(channel, message)


class LoopLayer(pubsub.RedisPubSubLoopLayer):
    def __init__(self, hosts=None, *args, **kwargs):
        super().__init__(hosts, *args, **kwargs)
        self._shards = [ShardConnection(host, self) for host in decode_hosts(hosts)]


class RedisPubSubChannelLayer(pubsub.RedisPubSubChannelLayer):
    """`channels_redis.pubsub.RedisPubSubChannelLayer` with `ShardConnection`s."""

    def _get_layer(self):
        loop = asyncio.get_running_loop()
        try:
            return self._layers[loop]
        except KeyError:
            layer = LoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
            return layer
