"""refdesk.api: the JSON API's edge (rate limits here; the endpoints in each app)."""

import uuid

import pytest
import redis
from django.core.cache import caches
from django.test import RequestFactory, override_settings

from refdesk.api import rate_limit
from refdesk.errors import RateLimited


def _request(address: str):
    return RequestFactory().post("/api/v1/anything", REMOTE_ADDR=address)


@pytest.fixture
def scope():
    """A rate-limit scope of this test's own, its counters deleted afterwards."""
    name = f"test-{uuid.uuid4().hex}"
    yield name
    cache = caches["default"]
    if hasattr(cache._cache, "get_client"):
        client = cache._cache.get_client(write=True)
        keys = list(client.scan_iter(match=cache.make_key(f"ratelimit:{name}:*")))
        if keys:
            client.delete(*keys)


def _redis_sends(monkeypatch) -> list[int]:
    """Count writes to Redis connections: each is one round trip."""
    sends: list[int] = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counted(self, *args, **kwargs):
        sends.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(
        redis.connection.AbstractConnection, "send_packed_command", counted
    )
    return sends


def test_a_rate_limited_request_costs_one_redis_round_trip(scope, monkeypatch):
    rate_limit(_request("192.0.2.1"), scope=scope, per_minute=10)  # connects first
    sends = _redis_sends(monkeypatch)

    rate_limit(_request("192.0.2.2"), scope=scope, per_minute=10)

    assert len(sends) == 1


def _retry_afters(scope: str, per_minute: int, attempts: int) -> list[int | None]:
    """Per attempt from one address: None if let through, else its Retry-After."""
    outcomes: list[int | None] = []
    for _ in range(attempts):
        try:
            rate_limit(_request("192.0.2.3"), scope=scope, per_minute=per_minute)
        except RateLimited as error:
            outcomes.append(error.retry_after)
        else:
            outcomes.append(None)
    return outcomes


def _assert_fourth_and_fifth_refused(outcomes: list[int | None]) -> None:
    assert outcomes[:3] == [None, None, None]
    assert all(1 <= retry_after <= 60 for retry_after in outcomes[3:])
    assert len(outcomes) == 5


def test_attempts_over_the_limit_are_refused(scope):
    _assert_fourth_and_fifth_refused(_retry_afters(scope, 3, 5))


def test_the_in_process_cache_limits_the_same_way(scope):
    locmem = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with override_settings(CACHES=locmem):
        outcomes = _retry_afters(scope, 3, 5)

    _assert_fourth_and_fifth_refused(outcomes)
