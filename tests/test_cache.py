"""refdesk.cache: one Redis client per process, whatever the async context;
window counters in one round trip."""

import asyncio
import contextvars
import time
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import caches
from django.test import override_settings

from refdesk.cache import RedisCache, incr_window


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


def test_every_command_shares_one_redis_client():
    """Django's client builds a `redis.Redis` per command (~0.1 ms of CPU each)."""
    client = caches["default"]._cache

    assert client.get_client() is client.get_client("any-key", write=True)


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


# Window counters (rate limits)
# ----------------------------------------------------------------------
@pytest.fixture
def window_key():
    key = f"cache-test-window-{uuid.uuid4()}"
    yield key
    caches["default"].delete(key)


def test_window_counter_counts_from_one(window_key):
    assert [incr_window(window_key, timeout=61) for _ in range(3)] == [1, 2, 3]
    assert caches["default"].get(window_key) == 3


def test_window_counter_expires_with_its_window(window_key):
    cache = caches["default"]
    client = cache._cache.get_client(write=True)
    stored = cache.make_and_validate_key(window_key)
    incr_window(window_key, timeout=61)
    first_ttl = client.ttl(stored)
    incr_window(window_key, timeout=61)

    assert 0 < client.ttl(stored) <= first_ttl <= 61  # a hit does not extend it
    client.pexpire(stored, 1)
    deadline = time.monotonic() + 5
    while client.exists(stored) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert incr_window(window_key, timeout=61) == 1
    assert 0 < client.ttl(stored) <= 61


def test_window_counter_works_on_the_in_process_cache(window_key):
    locmem = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with override_settings(CACHES=locmem):
        counts = [incr_window(window_key, timeout=61) for _ in range(3)]
        stored = caches["default"].get(window_key)

    assert counts == [1, 2, 3]
    assert stored == 3
