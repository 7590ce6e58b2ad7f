"""refdesk settings: one file for demo, tests and production.

Everything that differs between machines is an environment variable with a
default that works on a laptop (see the README's configuration table). With
nothing set, refdesk runs on SQLite, the in-memory channel layer and a Celery
worker and beat inside the web process; `DATABASE_URL` and `REDIS_URL` switch
to PostgreSQL and Redis with no code change.
"""

import os
import warnings
from datetime import timedelta
from pathlib import Path

import dj_database_url
import dj_email_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_seconds(name: str, default: int) -> timedelta:
    return timedelta(seconds=env_int(name, default))


def env_list(name: str, default: str = "") -> list[str]:
    return [
        item.strip()
        for item in os.environ.get(name, default).split(",")
        if item.strip()
    ]


# Core
# ----------------------------------------------------------------------
DEBUG = env_bool("DJANGO_DEBUG")
SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY", "insecure-embedded-default-set-DJANGO_SECRET_KEY-in-production"
)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
ROOT_URLCONF = "refdesk.urls"
ASGI_APPLICATION = "refdesk.asgi.application"
WSGI_APPLICATION = None
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/desk/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES")
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
if env_bool("DJANGO_BEHIND_TLS_PROXY"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Page frames: refdesk's own pages may not be framed, except the widget panel,
# whose view sets a per-library CSP frame-ancestors instead.
X_FRAME_OPTIONS = "DENY"
# A request body over 64 KiB is refused with 413 too_large (PROTOCOL.md).
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024

# Apps and middleware
# ----------------------------------------------------------------------
INSTALLED_APPS = [
    "daphne",  # first, so that runserver serves WebSockets too
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # SearchVectorField and GIN indexes of the FAQ search; harmless on SQLite
    "django.contrib.postgres",
    "channels",
    "libraries",
    "chat",
    "tickets",
    "faq",
    "reports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "chat.pages.consortium",
            ],
        },
    }
]

STATIC_URL = "/static/"
# WhiteNoise streams files with synchronous iterators, which Django's ASGI
# handler serves through a thread and warns about on every file; production
# puts a caching proxy in front of /static/, so the warning is only noise.
warnings.filterwarnings(
    "ignore",
    message="StreamingHttpResponse must consume synchronous iterators",
    module="django.core.handlers.asgi",
)
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve straight from the app folders when collectstatic has not run (demo, tests).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Database: SQLite file unless DATABASE_URL is set
# ----------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_max_age=0
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Under ASGI every request and consumer call runs on a fresh thread, so
    # persistent connections would pile up: use psycopg's pool instead.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env_int("REFDESK_DB_POOL_MIN", 2),
        "max_size": env_int("REFDESK_DB_POOL_MAX", 20),
        "timeout": 10,
    }
# How old a process's copy of the library calendars may get when a change sent
# no signal (libraries/directory.py); changes through models/admin are seen at once.
REFDESK_LIBRARY_CACHE_SECONDS = env_int("REFDESK_LIBRARY_CACHE_SECONDS", 30)
# The chat message path's asyncio pool (refdesk/asyncdb.py), per process serving
# sockets. Small on purpose: at 1000 conversations on 2 cores, 4 connections per
# process cost PostgreSQL 8% less CPU per message than 8 and kept the p99 lower
# (README, Performance, item 19); 2 gave a higher p99.
REFDESK_DB_ASYNC_POOL_MAX = env_int("REFDESK_DB_ASYNC_POOL_MAX", 4)
# How many of those connections store chat messages at once; past that,
# messages queue and the next free writer commits all queued in one
# transaction (group commit, refdesk/asyncdb.py). The rest serve reads.
REFDESK_DB_ASYNC_WRITERS = env_int("REFDESK_DB_ASYNC_WRITERS", 3)

# Redis: channel layer, cache (rate limits, presence) and Celery broker;
# in-process fallbacks when unset
# ----------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
# Namespace for channel-layer and cache names, so that several deployments
# (or parallel test runs) can share one Redis.
REFDESK_REDIS_PREFIX = os.environ.get("REFDESK_REDIS_PREFIX", "refdesk")

CHANNEL_LAYERS = {
    "default": (
        {
            # pub/sub layer: cheaper and degrades by queueing (STACK-NOTES.md),
            # with a process's queued publishes sent in one round trip
            # (refdesk/layers.py); redis-py 8 needs the timeout and pool
            # settings below
            "BACKEND": "refdesk.layers.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": None,
                        "socket_connect_timeout": 5,
                        "max_connections": 10000,
                    }
                ],
                "prefix": f"{REFDESK_REDIS_PREFIX}.asgi",
            },
        }
        if REDIS_URL
        else {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    )
}

CACHES = {
    "default": (
        {
            # Django's RedisCache with one connection pool per process: Django's
            # own opens a Redis connection per request under ASGI (refdesk/cache.py)
            "BACKEND": "refdesk.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REFDESK_REDIS_PREFIX,
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
# The web process starts a worker and beat itself when there is no broker to share.
REFDESK_EMBEDDED_WORKER = not REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = f"{REFDESK_REDIS_PREFIX}.tasks"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# An unacknowledged task (acks_late, or an ETA task held by a worker) is
# redelivered after this long. Deadlines are stored in the database and swept,
# so a redelivered or lost timer is harmless; it only must not be shorter than
# the longest task.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("REFDESK_BROKER_VISIBILITY_TIMEOUT_SECONDS", 3600),
    "global_keyprefix": f"{REFDESK_REDIS_PREFIX}.",
}
CELERY_BEAT_SCHEDULE = {
    "sweep-due-conversations": {
        "task": "chat.tasks.sweep_due_conversations",
        "schedule": env_seconds("REFDESK_SWEEP_SECONDS", 5),
        "options": {"expires": env_int("REFDESK_SWEEP_SECONDS", 5)},
    },
    "sweep-ticket-sla": {
        "task": "tickets.tasks.sweep_ticket_sla",
        "schedule": env_seconds("REFDESK_TICKET_SWEEP_SECONDS", 60),
        "options": {"expires": env_int("REFDESK_TICKET_SWEEP_SECONDS", 60)},
    },
    "flag-stale-local-info": {
        "task": "libraries.tasks.flag_stale_local_info",
        "schedule": env_seconds("REFDESK_LOCAL_INFO_CHECK_SECONDS", 3600),
        "options": {"expires": env_int("REFDESK_LOCAL_INFO_CHECK_SECONDS", 3600)},
    },
}

# Email
# ----------------------------------------------------------------------
# EMAIL_URL, e.g. smtp://user:pass@host:587 or smtp+tls://…; unset prints mail
# to the console. Django 6.1's MAILERS replaces the EMAIL_* settings.
_email = dj_email_url.parse(os.environ.get("EMAIL_URL", "console://"))
if _email["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend":
    MAILERS = {
        "default": {
            "BACKEND": _email["EMAIL_BACKEND"],
            "OPTIONS": {
                "host": _email["EMAIL_HOST"],
                "port": _email["EMAIL_PORT"] or None,
                "username": _email["EMAIL_HOST_USER"] or None,
                "password": _email["EMAIL_HOST_PASSWORD"] or None,
                "use_tls": bool(_email["EMAIL_USE_TLS"]),
                "use_ssl": bool(_email["EMAIL_USE_SSL"]),
                "timeout": 20,
            },
        }
    }
else:
    MAILERS = {"default": {"BACKEND": _email["EMAIL_BACKEND"]}}
REFDESK_MAIL_DOMAIN = os.environ.get("REFDESK_MAIL_DOMAIN", "refdesk.localhost")
DEFAULT_FROM_EMAIL = os.environ.get(
    "DJANGO_DEFAULT_FROM_EMAIL", f"refdesk <noreply@{REFDESK_MAIL_DOMAIN}>"
)
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Logging
# ----------------------------------------------------------------------
# Never log tokens, query strings or client addresses (PROTOCOL.md): uvicorn
# writes every WebSocket handshake with both to `uvicorn.error` at INFO, so
# that logger stays at WARNING, and access logs are off.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {
        "handlers": ["console"],
        "level": os.environ.get("REFDESK_LOG_LEVEL", "INFO"),
    },
    "loggers": {
        "uvicorn.error": {"level": "WARNING"},
        "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
        "daphne": {"level": "WARNING"},
        "django.channels.server": {"level": "WARNING"},
        "django.request": {"level": "ERROR"},
        "celery.beat": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.app.trace": {"level": "WARNING"},
    },
}

# refdesk
# ----------------------------------------------------------------------
REFDESK_CONSORTIUM_NAME = os.environ.get("REFDESK_CONSORTIUM_NAME", "Ask a Librarian")
REFDESK_LOCAL_WAIT = env_seconds("REFDESK_LOCAL_WAIT_SECONDS", 45)
REFDESK_OVERFLOW_WAIT = env_seconds("REFDESK_OVERFLOW_WAIT_SECONDS", 120)
REFDESK_PRESENCE_TIMEOUT = env_seconds("REFDESK_PRESENCE_TIMEOUT_SECONDS", 30)
REFDESK_ABANDON_AFTER = env_seconds("REFDESK_ABANDON_SECONDS", 60)
REFDESK_SWEEP_INTERVAL = env_seconds("REFDESK_SWEEP_SECONDS", 5)
REFDESK_TICKET_SLA = timedelta(hours=env_int("REFDESK_TICKET_SLA_HOURS", 24))
REFDESK_CHAT_RATE_PER_MINUTE = env_int("REFDESK_CHAT_RATE_PER_MINUTE", 20)
REFDESK_TRUSTED_PROXIES = env_list("REFDESK_TRUSTED_PROXIES")
REFDESK_INBOUND_SECRET = os.environ.get("REFDESK_INBOUND_SECRET", "")
# Tickets: past this share of the SLA unanswered a ticket joins the shared pool,
# past the risk share it is at risk; attachments over the limit are listed, not kept.
REFDESK_TICKET_POOL_SHARE = float(os.environ.get("REFDESK_TICKET_POOL_SHARE", "0.5"))
REFDESK_TICKET_RISK_SHARE = float(os.environ.get("REFDESK_TICKET_RISK_SHARE", "0.75"))
REFDESK_TICKET_ATTACHMENT_MAX_BYTES = env_int(
    "REFDESK_TICKET_ATTACHMENT_MAX_BYTES", 5 * 1024 * 1024
)
REFDESK_INBOUND_MAX_BYTES = env_int("REFDESK_INBOUND_MAX_BYTES", 10 * 1024 * 1024)
# Local info cards not verified for this many days are flagged (issue 6); the
# FAQ search and "opened" counts are limited per client address.
REFDESK_LOCAL_INFO_STALE_DAYS = env_int("REFDESK_LOCAL_INFO_STALE_DAYS", 90)
REFDESK_FAQ_RATE_PER_MINUTE = env_int("REFDESK_FAQ_RATE_PER_MINUTE", 120)
