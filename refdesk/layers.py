"""The channel layer: channels_redis's pub/sub layer, with a process's
publishes sent together instead of one round trip each.

`channels_redis.pubsub` sends every publish of a process under one
`asyncio.Lock` per Redis host, held for the whole round trip: publishes queue,
and each waits for every earlier one to be answered *and* for the busy event
loop to get round to reading that answer. At 1000 conversations that convoy
was the longest part of a message's tail (issue 7: the publish after the
message statement took p99 21-376 ms per process and window).

Here a shard's publishes still go out one batch at a time, on one pooled
connection, but a batch is everything queued when the last one came back:
under load, N waiting publishes cost one round trip (a redis-py pipeline
without MULTI), not N. Nothing waits to make a batch bigger: a lone publish
is the single PUBLISH it always was, sent by a task of the shard's that
starts at once (`refdesk.aio.start_now`), so the PUBLISH is written before
the publishing task yields (about 0.01 ms more CPU than channels_redis's,
`python -m bench.micro publishes`).
Publishes made together, as the callers of one group commit resume together,
share a round trip. No extra connections open in a burst. (The first attempt,
commit ae0f3fd, let each publish take a pooled connection of its own: one per
concurrent publish. It slowed the opening burst of accepts, probably for that
reason, and was reverted.)

Order is kept as before: a process's publishes reach Redis in the order they
were made (one queue, one batch in flight). Subscribes keep channels_redis's
lock and its pub/sub connection. Receivers put each conversation's messages in
`seq` order anyway (`chat.ordering`).
"""

import asyncio
from collections import deque

from channels_redis import pubsub
from channels_redis.utils import _wrap_close, decode_hosts

from refdesk.aio import start_now

# Publishes sent in one round trip at most; more wait for the next.
MOST_PER_BATCH = 100


class ShardConnection(pubsub.RedisSingleShardConnection):
    """One Redis host: channels_redis's connection, publishing in batches."""

    def __init__(self, host, channel_layer):
        super().__init__(host, channel_layer)
        self._queued: deque[tuple[str, bytes, asyncio.Future]] = deque()
        self._sender: asyncio.Task | None = None
        self.round_trips = 0  # publishing round trips made
        self.published = 0  # publishes they carried

    async def publish(self, channel, message):
        self._ensure_redis()  # synchronous: no other task runs in between
        published = asyncio.get_running_loop().create_future()
        self._queued.append((channel, message, published))
        if self._sender is None:
            # Started now: a lone publish is written before this task yields.
            # Should it end without ever waiting, it has already cleared
            # `_sender` itself.
            sender = start_now(self._send_queued())
            if not sender.done():
                self._sender = sender
        await published

    async def _send_queued(self) -> None:
        try:
            while self._queued:
                batch = []
                while self._queued and len(batch) < MOST_PER_BATCH:
                    queued = self._queued.popleft()
                    if not queued[2].done():  # its caller was cancelled: not sent
                        batch.append(queued)
                if batch:
                    await self._send(batch)
        finally:
            self._sender = None
            # Cancelled with the loop's shutdown: callers still waiting learn
            # that their publish did not go out.
            _closed(self._queued)
            self._queued.clear()

    async def _send(self, batch: list[tuple[str, bytes, asyncio.Future]]) -> None:
        self.round_trips += 1
        self.published += len(batch)
        try:
            if len(batch) == 1:
                channel, message, _ = batch[0]
                outcomes = [await self._redis.publish(channel, message)]
            else:
                pipe = self._redis.pipeline(transaction=False)
                for channel, message, _ in batch:
                    pipe.publish(channel, message)
                outcomes = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:
            _closed(batch)
            raise
        except Exception as error:
            # The connection failed: every publish of the batch shares the error
            # (each caller decides, as with channels_redis's own publish).
            outcomes = [error] * len(batch)
        for (_, _, published), outcome in zip(batch, outcomes, strict=True):
            if published.done():
                continue
            if isinstance(outcome, Exception):
                published.set_exception(outcome)
            else:
                published.set_result(outcome)

    async def flush(self):
        """Send what is queued, then close (channels_redis's flush, which waits
        for a publish in flight in the same way)."""
        if self._sender is not None:
            await asyncio.wait([self._sender])
        await super().flush()


def _closed(publishes) -> None:
    for _, _, published in publishes:
        if not published.done():
            published.set_exception(ConnectionError("channel layer closed"))


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
