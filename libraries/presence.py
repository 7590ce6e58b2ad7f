"""Librarian presence: which desk sockets are open, available and recently heard.

Presence lives in Redis so that every web and worker process agrees on it; with
no Redis (the embedded default) it lives in this process's memory, which is
the only process there is. Each open desk socket is one entry whose score is
the moment it expires: a socket that goes silent drops out by itself
`REFDESK_PRESENCE_TIMEOUT_SECONDS` after its last frame, so a sleeping tab or a
crashed server never keeps a library looking staffed.
"""

import threading
import time
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings


@dataclass(frozen=True)
class DeskEntry:
    library_id: int
    librarian_id: int
    socket_id: str
    is_available: bool
    expires_at: float


def _member(library_id: int, librarian_id: int, socket_id: str, available: bool) -> str:
    return f"{library_id}|{librarian_id}|{socket_id}|{'a' if available else 'w'}"


def _parse(member: str | bytes, score: float) -> DeskEntry:
    if isinstance(member, bytes):
        member = member.decode()
    library_id, librarian_id, socket_id, flag = member.split("|")
    return DeskEntry(int(library_id), int(librarian_id), socket_id, flag == "a", score)


class RedisPresence:
    """One sorted set of desk sockets scored by expiry, plus a socket → member map."""

    def __init__(self, url: str, prefix: str):
        self.client = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=5
        )
        self.desks = f"{prefix}:presence:desks"
        self.sockets = f"{prefix}:presence:sockets"

    def touch(
        self,
        *,
        library_id: int,
        librarian_id: int,
        socket_id: str,
        available: bool,
        expires_at: float,
    ) -> None:
        member = _member(library_id, librarian_id, socket_id, available)
        old = self.client.hget(self.sockets, socket_id)
        pipe = self.client.pipeline(transaction=True)
        if old is not None and old.decode() != member:
            pipe.zrem(self.desks, old)
        pipe.zadd(self.desks, {member: expires_at})
        pipe.hset(self.sockets, socket_id, member)
        pipe.execute()

    def drop(self, *, socket_id: str) -> None:
        old = self.client.hget(self.sockets, socket_id)
        pipe = self.client.pipeline(transaction=True)
        if old is not None:
            pipe.zrem(self.desks, old)
        pipe.hdel(self.sockets, socket_id)
        pipe.execute()

    def drop_librarian(self, *, librarian_id: int) -> list[str]:
        dropped = [
            e.socket_id for e in self.entries(now=0) if e.librarian_id == librarian_id
        ]
        for socket_id in dropped:
            self.drop(socket_id=socket_id)
        return dropped

    def entries(self, *, now: float) -> list[DeskEntry]:
        rows = self.client.zrangebyscore(self.desks, now, "+inf", withscores=True)
        return [_parse(member, score) for member, score in rows]

    def expire(self, *, now: float) -> list[DeskEntry]:
        """Remove entries that expired before `now` and return them."""
        rows = self.client.zrangebyscore(self.desks, "-inf", f"({now}", withscores=True)
        if not rows:
            return []
        expired = [_parse(member, score) for member, score in rows]
        pipe = self.client.pipeline(transaction=True)
        pipe.zrem(self.desks, *[member for member, _ in rows])
        pipe.hdel(self.sockets, *[e.socket_id for e in expired])
        pipe.execute()
        return expired

    def clear(self) -> None:
        self.client.delete(self.desks, self.sockets)


class MemoryPresence:
    """The same contract held in this process, for the single-process embedded default."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, DeskEntry] = {}

    def touch(
        self,
        *,
        library_id: int,
        librarian_id: int,
        socket_id: str,
        available: bool,
        expires_at: float,
    ) -> None:
        with self._lock:
            self._entries[socket_id] = DeskEntry(
                library_id, librarian_id, socket_id, available, expires_at
            )

    def drop(self, *, socket_id: str) -> None:
        with self._lock:
            self._entries.pop(socket_id, None)

    def drop_librarian(self, *, librarian_id: int) -> list[str]:
        with self._lock:
            dropped = [
                k for k, e in self._entries.items() if e.librarian_id == librarian_id
            ]
            for socket_id in dropped:
                del self._entries[socket_id]
            return dropped

    def entries(self, *, now: float) -> list[DeskEntry]:
        with self._lock:
            return [e for e in self._entries.values() if e.expires_at >= now]

    def expire(self, *, now: float) -> list[DeskEntry]:
        with self._lock:
            expired = [e for e in self._entries.values() if e.expires_at < now]
            for entry in expired:
                del self._entries[entry.socket_id]
            return expired

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@cache
def _store(url: str, prefix: str) -> RedisPresence | MemoryPresence:
    return RedisPresence(url, prefix) if url else MemoryPresence()


def store() -> RedisPresence | MemoryPresence:
    return _store(settings.REDIS_URL, settings.REFDESK_REDIS_PREFIX)


def clock() -> float:
    return time.time()


def touch(
    *, library_id: int, librarian_id: int, socket_id: str, available: bool
) -> None:
    """Record a frame from a desk socket: it stays present for the presence timeout."""
    expires_at = clock() + settings.REFDESK_PRESENCE_TIMEOUT.total_seconds()
    store().touch(
        library_id=library_id,
        librarian_id=librarian_id,
        socket_id=socket_id,
        available=available,
        expires_at=expires_at,
    )


def drop(*, socket_id: str) -> None:
    store().drop(socket_id=socket_id)


def drop_librarian(*, librarian_id: int) -> list[str]:
    return store().drop_librarian(librarian_id=librarian_id)


def present_desks(*, now: float | None = None) -> list[DeskEntry]:
    return store().entries(now=clock() if now is None else now)


def expire_desks(*, now: float | None = None) -> list[DeskEntry]:
    return store().expire(now=clock() if now is None else now)


def available_librarians(*, now: float | None = None) -> dict[int, set[int]]:
    """Library id → ids of its librarians with at least one available, live desk."""
    found: dict[int, set[int]] = {}
    for entry in present_desks(now=now):
        if entry.is_available:
            found.setdefault(entry.library_id, set()).add(entry.librarian_id)
    return found


def desks_by_librarian(*, now: float | None = None) -> dict[int, list[bool]]:
    """Librarian id → availability of each of their live desk sockets."""
    found: dict[int, list[bool]] = {}
    for entry in present_desks(now=now):
        found.setdefault(entry.librarian_id, []).append(entry.is_available)
    return found
