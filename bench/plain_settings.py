"""Minimal settings for the plain Channels reference chat (bench/plain_channels.py).

No database, no refdesk apps: only Channels and the same channel layer as
refdesk's production settings (pub/sub layer with the redis-py 8 options from
refdesk/settings.py), under its own Redis prefix.
"""

import os

SECRET_KEY = "bench-plain-channels-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["channels"]
ROOT_URLCONF = "bench.plain_channels"
ASGI_APPLICATION = "bench.plain_channels.application"
DATABASES = {}
USE_TZ = True
REDIS_URL = os.environ["REDIS_URL"]
PREFIX = os.environ.get("REFDESK_REDIS_PREFIX", "bench") + "-plain"
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": os.environ.get(
            "BENCH_PLAIN_LAYER", "channels_redis.pubsub.RedisPubSubChannelLayer"
        ),
        "CONFIG": {
            "hosts": [
                {
                    "address": REDIS_URL,
                    "socket_timeout": None,
                    "socket_connect_timeout": 5,
                    "max_connections": 10000,
                }
            ],
            "prefix": f"{PREFIX}.asgi",
        },
    }
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"uvicorn.error": {"level": "WARNING"}},
}
