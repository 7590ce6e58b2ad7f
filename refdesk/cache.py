"""Django's Redis cache with one connection pool per process, and window counters.

Django keeps a cache object per async context (`CacheHandler` is not thread
critical), and `RedisCache` builds its client, and so its redis-py connection
pool, on first use of each object. Under ASGI every request and every
`sync_to_async` call of a consumer runs in a new context: each one opened a new
TCP connection to Redis (about 3 ms here, on every rate-limited request and
every presence read) and left it to the garbage collector
(https://code.djangoproject.com/ticket/35651). Here every cache object of a
process with the same servers and options shares one client. redis-py's pools
are thread safe and reopen their connections after a fork.

Django's client also builds a new `redis.Redis` for every command (about
0.1 ms of CPU: it fills a table of some 170 reply callbacks); this one builds
one per pool and reuses it (redis-py clients are thread safe).
"""

import threading

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisClient
from django.utils.functional import cached_property

_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


class RedisCacheClient(DjangoRedisClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._redis_by_pool: dict[object, object] = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._redis_by_pool.get(pool)
        if client is None:
            # A race builds two clients over the same pool: harmless.
            client = self._redis_by_pool[pool] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisCacheClient

    @cached_property
    def _cache(self):
        key = (self._class, tuple(self._servers), repr(sorted(self._options.items())))
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = self._class(self._servers, **self._options)
            return client

    def incr_window(self, key: str, *, timeout: int, version=None) -> int:
        """Add one to the counter at `key`, created at 0 to live `timeout` seconds
        if missing, and return it: one round trip (MULTI, SET NX EX, INCR, EXEC),
        and the counter never exists without its expiry."""
        key = self.make_and_validate_key(key, version=version)
        pipe = self._cache.get_client(key, write=True).pipeline(transaction=True)
        pipe.set(key, 0, ex=timeout, nx=True)
        pipe.incr(key)
        return pipe.execute()[1]


def incr_window(key: str, *, timeout: int) -> int:
    """Count a hit on `key` in the default cache; the count lives `timeout`
    seconds from the first hit. Redis does it in one round trip; other
    backends (LocMem in the embedded default) with `add` and `incr`."""
    cache = caches["default"]
    if isinstance(cache, RedisCache):
        return cache.incr_window(key, timeout=timeout)
    cache.add(key, 0, timeout=timeout)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=timeout)
        return 1
