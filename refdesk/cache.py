"""Django's Redis cache with one connection pool per process.

Django keeps a cache object per async context (`CacheHandler` is not thread
critical), and `RedisCache` builds its client, and so its redis-py connection
pool, on first use of each object. Under ASGI every request and every
`sync_to_async` call of a consumer runs in a new context: each one opened a new
TCP connection to Redis (about 3 ms here, on every rate-limited request and
every presence read) and left it to the garbage collector
(https://code.djangoproject.com/ticket/35651). Here every cache object of a
process with the same servers and options shares one client. redis-py's pools
are thread safe and reopen their connections after a fork.
"""

import threading

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.utils.functional import cached_property

_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


class RedisCache(DjangoRedisCache):
    @cached_property
    def _cache(self):
        key = (self._class, tuple(self._servers), repr(sorted(self._options.items())))
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = self._class(self._servers, **self._options)
            return client
