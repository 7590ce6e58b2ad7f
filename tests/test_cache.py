"""refdesk.cache: one Redis client per process, whatever the async context."""

import asyncio
import contextvars
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import caches
from django.test import override_settings

from refdesk.cache import RedisCache


def _one_request(key: str) -> tuple[object, object, object]:
    """What one request sees: its cache object, that object's connection pool,
    and the value under `key` (the objects are kept, so their ids stay theirs)."""
    cache = caches["default"]
    value = cache.get(key)
    return cache, cache._cache._get_connection_pool(write=False), value


def _requests(key: str, n: int) -> list[tuple]:
    """`n` requests as uvicorn runs them: each in a task of its own, started
    from a context that has not used the cache, with one hop onto a thread."""

    async def serve() -> list[tuple]:
        return [
            await asyncio.create_task(sync_to_async(_one_request)(key))
            for _ in range(n)
        ]

    return contextvars.Context().run(asyncio.run, serve())


def test_the_configured_cache_is_refdesks():
    assert isinstance(caches["default"], RedisCache)


@pytest.mark.django_db
def test_every_request_shares_one_connection_pool():
    key = f"cache-test-{uuid.uuid4()}"
    caches["default"].set(key, "shared", 30)
    seen = _requests(key, 20)
    # Django hands each request its own cache object (that is its design) ...
    assert len({id(cache) for cache, _, _ in seen}) == 20
    # ... and they all talk to Redis through one pool, and see the same data.
    assert len({id(pool) for _, pool, _ in seen}) == 1
    assert {value for _, _, value in seen} == {"shared"}
    caches["default"].delete(key)


def test_djangos_own_backend_opens_a_pool_per_request(settings):
    """The control: with Django's backend every request built a new pool, and
    so opened a new TCP connection to Redis (Django ticket #35651)."""
    config = {
        **settings.CACHES["default"],
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
    }
    with override_settings(CACHES={"default": config}):
        seen = _requests(f"cache-test-{uuid.uuid4()}", 5)
    assert len({id(pool) for _, pool, _ in seen}) == 5
