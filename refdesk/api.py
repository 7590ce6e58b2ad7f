"""The JSON API's edge: methods, CORS, bodies, errors and rate limits, one way.

Views decorated with `json_api` return plain data (or `(status, data)`) and
raise `RefdeskError`s; this module turns both into PROTOCOL.md responses.
"""

import functools
import hashlib
import hmac
import ipaddress
import json
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from refdesk.cache import incr_window
from refdesk.errors import (
    MalformedJson,
    MethodNotAllowed,
    RateLimited,
    RefdeskError,
    TooLarge,
    UnsupportedMediaType,
)

Origins = Callable[..., Iterable[str]]


def error_response(error: RefdeskError) -> JsonResponse:
    response = JsonResponse(error.as_dict(), status=error.status)
    if isinstance(error, RateLimited):
        response["Retry-After"] = str(error.retry_after)
    return response


def json_api(*, methods: tuple[str, ...], origins: Origins | None = None):
    """Serve a JSON endpoint: `origins(request, **kwargs)` lists the CORS origins."""

    def decorate(view):
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, **kwargs: Any) -> HttpResponse:
            origin = request.headers.get("Origin", "")
            allowed = _cors_allowed(origins, request, origin, kwargs)
            try:
                if request.method == "OPTIONS":
                    response = HttpResponse(status=204)
                    if allowed:
                        response["Access-Control-Allow-Methods"] = ", ".join(
                            (*methods, "OPTIONS")
                        )
                        response["Access-Control-Allow-Headers"] = (
                            "Content-Type, Authorization"
                        )
                        response["Access-Control-Max-Age"] = "600"
                elif request.method not in methods:
                    response = error_response(
                        MethodNotAllowed(f"use {' or '.join(methods)}")
                    )
                    response["Allow"] = ", ".join(methods)
                else:
                    result = view(request, **kwargs)
                    status, data = (
                        result if isinstance(result, tuple) else (200, result)
                    )
                    response = JsonResponse(data, status=status, safe=False)
            except RefdeskError as error:
                response = error_response(error)
            if allowed:
                response["Access-Control-Allow-Origin"] = origin
            response["Vary"] = "Origin"
            response["Cache-Control"] = "no-store"
            return response

        return wrapper

    return decorate


def _cors_allowed(origins: Origins | None, request, origin: str, kwargs: dict) -> bool:
    """`origins` must not raise: an unknown library simply has no origins."""
    if not origin or origins is None:
        return False
    return origin in set(origins(request, **kwargs))


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object, or the PROTOCOL.md error for what is wrong with it."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType("send the body as application/json")
    try:
        raw = request.body
    except RequestDataTooBig:
        raise TooLarge("the request body is over 64 KiB") from None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # too deep nests recurse
        raise MalformedJson("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise MalformedJson("the body must be a JSON object")
    return data


def bearer_token(request: HttpRequest) -> str:
    """The credentials of an `Authorization: Bearer …` header, or ""."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def client_address(request: HttpRequest) -> str:
    """The client's address; `X-Forwarded-For` counts only from trusted proxies."""
    address = request.META.get("REMOTE_ADDR", "")
    trusted = settings.REFDESK_TRUSTED_PROXIES
    if not trusted or not _in(address, trusted):
        return address
    forwarded = [
        a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",")
    ]
    for hop in reversed([a for a in forwarded if a]):
        if not _in(hop, trusted):
            return hop
    return address


def _in(address: str, networks: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n, strict=False) for n in networks)


def rate_limit(request: HttpRequest, *, scope: str, per_minute: int) -> None:
    """Count this attempt for the client address; raise RateLimited over the limit.

    A fixed one-minute window in the cache (Redis in production). The address
    is kept only as a keyed hash, only for the window, and never logged.
    """
    window = int(time.time() // 60)
    digest = hmac.new(
        settings.SECRET_KEY.encode(), client_address(request).encode(), hashlib.sha256
    ).hexdigest()[:32]
    count = incr_window(f"ratelimit:{scope}:{digest}:{window}", timeout=61)
    if count > per_minute:
        retry_after = max(1, math.ceil((window + 1) * 60 - time.time()))
        raise RateLimited(
            "too many requests from this address; try again shortly",
            retry_after=retry_after,
        )
