"""Settings, read from the environment (see `.env.example` for every variable)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import environ
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A developer's `.env` file; production sets real environment variables instead.
if (BASE_DIR / ".env").is_file():
    env.read_env(str(BASE_DIR / ".env"))
# Where the embedded defaults keep their files (SQLite database, file-system queue, beat
# schedule, worker logs, demo warehouse); the `make run` test points it at a temporary folder.
VAR_DIR: Path = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG: bool = env.bool("DEBUG", default=False)

# Never a hard-coded or random key in production: without DEBUG the key must be given.
# The fixed development key only ever exists with DEBUG on.
SECRET_KEY: str = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (see .env.example).")
    SECRET_KEY = "django-insecure-development-only-key"  # noqa: S105

ALLOWED_HOSTS: list[str] = env.list(
    "ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_filters",
    "template_partials",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "csp",
    # Ours, from the bottom layer up (docs/architecture.md): each imports only those above it
    # in this list.
    "bizdevops",
    "notifications",
    "initiatives",
    "phases",
    "kpis",
    "jobs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The user's time zone (a Preference), read once per session.
    "bizdevops.middleware.TimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "bizdevops.middleware.DomainErrorMiddleware",
    # Last (django-axes): turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# DEBUG_PAGES=1 (with DEBUG): Django's technical 404 and traceback pages. Otherwise the
# friendly 404 / 500 pages, as in production, also under `make run` (bizdevops/web.py).
DEBUG_PAGES: bool = DEBUG and env.bool("DEBUG_PAGES", default=False)
if DEBUG and not DEBUG_PAGES:
    MIDDLEWARE.insert(
        MIDDLEWARE.index("bizdevops.middleware.DomainErrorMiddleware"),
        "bizdevops.web.FriendlyErrorPagesMiddleware",
    )

ROOT_URLCONF = "bizdevops.urls"
WSGI_APPLICATION = "bizdevops.wsgi.application"

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
                "bizdevops.context_processors.navigation",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'bizdevops.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web server and the workers share the file.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# PostgreSQL: the role the web, worker and beat connect as (it must own nothing). `migrate`,
# run as the owner, grants it INSERT and SELECT on history tables and SELECT, INSERT, UPDATE,
# DELETE on the others (bizdevops.history). Empty: no grants.
DATABASE_RUNTIME_ROLE = env.str("DATABASE_RUNTIME_ROLE", default="")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out username or client before the password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # The model backend, selecting each request's user with their preference (time zone).
    "bizdevops.backends.PreferenceBackend",
]
# Login throttling (HTML login, admin login and POST /api/v1/auth/token/), counted in the
# database: after AXES_FAILURE_LIMIT failures the username is locked out (whatever the client:
# a guess spread over many addresses) and so is the client (whatever the username: a spray of
# many usernames), until AXES_COOLOFF_MINUTES pass without a new failure or an admin deletes
# the attempts (admin "Access attempts", `manage.py axes_reset_username`). 0: until reset.
AXES_FAILURE_LIMIT: int = env.int("AXES_FAILURE_LIMIT", default=5)
_cooloff_minutes: float = env.float("AXES_COOLOFF_MINUTES", default=15)
AXES_COOLOFF_TIME = dt.timedelta(minutes=_cooloff_minutes) if _cooloff_minutes > 0 else None
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# A success must not reset the counters: an attacker could clear its address's count by
# signing in to its own account between guesses.
AXES_RESET_ON_SUCCESS = False
# Every failure is also logged (admin "Access failures"), at most 1000 rows per username.
AXES_ENABLE_ACCESS_FAILURE_LOG = True
# No banner on every manage.py command.
AXES_VERBOSE = False
# Clients are identified like the API throttles identify them (API_NUM_PROXIES).
AXES_CLIENT_IP_CALLABLE = "bizdevops.accounts.client_ip"
AXES_LOCKOUT_CALLABLE = "bizdevops.accounts.lockout_response"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE: str = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=VAR_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL: str = env.str("DEFAULT_FROM_EMAIL", default="bizdevops@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Plain HTTP is redirected to https (behind a TLS proxy: it must set X-Forwarded-Proto);
    # /healthz stays reachable over plain HTTP for a load balancer's probe. HSTS tells browsers
    # to use https only for this long; 0 sends no header (docker-compose on plain localhost).
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)

# Content-Security-Policy on every response, with DEBUG too (so the browser tests see any
# violation): scripts, styles, images, fonts and connections from this origin only, no inline
# script and no eval. The Swagger UI page's init script carries the request's nonce; the ReDoc
# page alone allows inline styles and blob: workers (bizdevops/api_urls.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "worker-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Celery: Redis when REDIS_URL is set; otherwise kombu's filesystem transport under var/,
# so `make run` needs no server.
REDIS_URL: str = env.str("REDIS_URL", default="")
# The host in the file-system URL only keeps kombu from warning that none was given.
CELERY_BROKER_URL: str = env.str(
    "CELERY_BROKER_URL", default=REDIS_URL or "filesystem://localhost/"
)
# The cache holds the API throttle counters: in Redis when REDIS_URL is set, so that every web
# process counts against one budget; otherwise in this process's memory, which is enough for
# the embedded default (one web process). Several web processes need REDIS_URL.
CACHE_KEY_PREFIX: str = env.str("CACHE_KEY_PREFIX", default="bizdevops")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": CACHE_KEY_PREFIX,
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
    if REDIS_URL
    else {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "KEY_PREFIX": CACHE_KEY_PREFIX,
    }
}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "celery"
    for _folder in ("queue", "processed", "control"):
        (_queue_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "queue"),
        "data_folder_out": str(_queue_dir / "queue"),
        "processed_folder": str(_queue_dir / "processed"),
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
    }
else:
    # Redis redelivers a message that was taken but never acknowledged (a worker killed
    # mid-run) after this many seconds; the reaper resends lost runs much sooner. It must
    # exceed the longest run (job timeouts go up to 3600 s) or a live run is redelivered.
    # A Redis that hangs (frozen, not refusing) must not hang a request: every command gives
    # up after socket_timeout (a frozen Redis held a "run now" for as long as it was frozen;
    # the worker's own polling waits 1 s at a time, well below it).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=7200),
        "socket_timeout": 3,
        "socket_connect_timeout": 2,
    }
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes the database connections before and after every task unless
# this is set, and then every this many tasks: a new connection per task. The workers apply
# Django's own rules around each task instead (CONN_MAX_AGE, CONN_HEALTH_CHECKS, a connection
# with errors: bizdevops/celery.py), as for a request.
CELERY_DB_REUSE_MAX = 1000
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.5}
CELERY_BROKER_CONNECTION_TIMEOUT = 5
# Workers and beat reconnect for as long as the broker is away (Celery's default gives up
# after 100 tries and exits).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Queues (docs/reliability.md): `control` (dispatcher, reaper, outbox sweep) is never behind a
# backlog of runs, and a slow webhook receiver never holds up KPI runs. A worker started
# without -Q consumes all four; production runs one worker per queue group.
CELERY_TASK_DEFAULT_QUEUE = "runs"
CELERY_TASK_QUEUES = {
    name: {"exchange": name, "routing_key": name}
    for name in ("control", "runs", "webhooks", "notifications")
}
CELERY_TASK_ROUTES = {
    "jobs.tasks.dispatch": {"queue": "control"},
    "jobs.tasks.reap": {"queue": "control"},
    "notifications.tasks.reap_deliveries": {"queue": "control"},
    "bizdevops.tasks.outbox_relay": {"queue": "control"},
    "jobs.tasks.execute_run": {"queue": "runs"},
    "notifications.tasks.deliver_webhook": {"queue": "webhooks"},
    "notifications.tasks.send_alert_email": {"queue": "notifications"},
    "bizdevops.tasks.demo_warehouse_tick": {"queue": "control"},
    "kpis.tasks.maintain_partitions": {"queue": "control"},
}
# A control message that waited longer is dropped: the next one does the same work.
CONTROL_EXPIRES_SECONDS: float = env.float("CONTROL_EXPIRES_SECONDS", default=60.0)
# How often the outbox sweep sends what the relay after commit could not (broker away, or a
# retry's backoff due).
OUTBOX_SWEEP_INTERVAL_SECONDS: float = env.float("OUTBOX_SWEEP_INTERVAL_SECONDS", default=2.0)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Stopping a worker (docs/reliability.md): SIGTERM alone is a warm shutdown, which waits for
# the runs in hand however long they take. With REMAP_SIGTERM=SIGQUIT in the worker's
# environment (docker-compose.yml) it is a cold shutdown that gives them this many seconds
# (all of them, whenever a task is in hand), then stops the rest: the broker gets their
# messages back, their rows go back to queued, and another worker runs them. The worker exits
# about 2 s after this timeout: keep it that far below the stop timeout.
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT: float = env.float(
    "CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT", default=5.0
)

# Fernet key that encrypts data source URLs at rest (required without DEBUG when a data source
# is given a URL rather than an environment variable).
DATA_SOURCE_KEY: str = env.str("DATA_SOURCE_KEY", default="")

# KPI jobs: how often the dispatcher looks for due jobs, and how long a run may sit queued or
# running past its time limit before the reaper sends it again.
KPI_DISPATCH_INTERVAL_SECONDS: float = env.float("KPI_DISPATCH_INTERVAL_SECONDS", default=5.0)
# One dispatch claims due jobs this many at a time (a transaction and four queries each, its
# messages sent as it commits) until none is due or this many seconds are spent (checked
# between batches; under the interval, or ticks queue up behind each other: 3 s of 5).
KPI_DISPATCH_BATCH: int = env.int("KPI_DISPATCH_BATCH", default=1000)
KPI_DISPATCH_BUDGET_SECONDS: float = env.float(
    "KPI_DISPATCH_BUDGET_SECONDS", default=0.6 * KPI_DISPATCH_INTERVAL_SECONDS
)
KPI_REAPER_INTERVAL_SECONDS: float = env.float("KPI_REAPER_INTERVAL_SECONDS", default=60.0)
KPI_RUN_GRACE_SECONDS: int = env.int("KPI_RUN_GRACE_SECONDS", default=120)
KPI_RUN_MAX_DELIVERIES: int = env.int("KPI_RUN_MAX_DELIVERIES", default=5)
# SQL sources: the largest value (as text, in bytes) a query may return; on SQLite also the
# largest string or blob it may build.
KPI_SQL_MAX_BYTES: int = env.int("KPI_SQL_MAX_BYTES", default=65_536)
# SQL sources: a worker keeps its PostgreSQL connection to a source between runs. Every run
# checks the session's role attributes (superuser, CREATEROLE, ...); the whole role check
# (memberships, grants) runs on each new connection and again when this many seconds have
# passed since the last one (0: on every run).
KPI_SQL_ROLE_CHECK_SECONDS: float = env.float("KPI_SQL_ROLE_CHECK_SECONDS", default=60.0)
# Outbound HTTP for sources: timeouts and the largest response read.
KPI_HTTP_CONNECT_TIMEOUT: float = env.float("KPI_HTTP_CONNECT_TIMEOUT", default=5.0)
KPI_HTTP_MAX_BYTES: int = env.int("KPI_HTTP_MAX_BYTES", default=1_000_000)
# CA certificates (PEM file) that outbound https trusts; empty: certifi's bundle.
OUTBOUND_CA_BUNDLE: str = env.str("OUTBOUND_CA_BUNDLE", default="")
# Webhooks: attempts per delivery (exponential backoff), the deadline of one POST, and the
# Celery time limits of a delivery task (margins for the database work around the POST).
WEBHOOK_MAX_ATTEMPTS: int = env.int("WEBHOOK_MAX_ATTEMPTS", default=6)
WEBHOOK_TIMEOUT_SECONDS: float = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
WEBHOOK_SOFT_TIME_LIMIT: float = env.float(
    "WEBHOOK_SOFT_TIME_LIMIT", default=WEBHOOK_TIMEOUT_SECONDS + 10
)
WEBHOOK_TIME_LIMIT: float = env.float("WEBHOOK_TIME_LIMIT", default=WEBHOOK_TIMEOUT_SECONDS + 30)
# The address links in e-mails (alerts, requests to engineers) point to. Default: what
# `make run` prints, http://HOST:PORT, with its HOST and PORT (make puts them in the
# environment when given on its command line: `make run PORT=8001`), else its defaults.
SITE_URL: str = env.str(
    "SITE_URL",
    default=f"http://{env.str('HOST', default='') or '127.0.0.1'}:"
    f"{env.str('PORT', default='') or '8000'}",
)
# The demo warehouse (a SQLite file built by seed_demo; refreshed every minute with DEBUG on).
DEMO_WAREHOUSE_PATH = env.path("DEMO_WAREHOUSE_PATH", default=VAR_DIR / "warehouse.sqlite3")
# Input bounds: how deep a JSON document (API body, fetched source) may nest; the largest
# |value| of a measurement and how far in the future its as_of may lie.
JSON_MAX_DEPTH: int = env.int("JSON_MAX_DEPTH", default=64)
MEASUREMENT_MAX_ABS_VALUE: float = env.float("MEASUREMENT_MAX_ABS_VALUE", default=1e15)
MEASUREMENT_MAX_FUTURE_SECONDS: int = env.int("MEASUREMENT_MAX_FUTURE_SECONDS", default=300)
if not 0 < MEASUREMENT_MAX_ABS_VALUE < float("inf") or JSON_MAX_DEPTH < 1:
    raise ImproperlyConfigured(
        "MEASUREMENT_MAX_ABS_VALUE must be a positive finite number and JSON_MAX_DEPTH ≥ 1."
    )
# PostgreSQL keeps measurements in monthly partitions (kpis/partitions.py, docs/measurements.md):
# this month and MEASUREMENT_PARTITIONS_AHEAD months after it have one, made by `migrate`, the
# periodic task (every MEASUREMENT_PARTITIONS_INTERVAL_SECONDS) or `manage.py
# measurement_partitions`. Raw values older than MEASUREMENT_RAW_RETENTION_DAYS days are
# dropped, their hourly and daily rollups kept (empty: kept for ever). At least 30: the charts
# of up to 30 days read raw values.
MEASUREMENT_PARTITIONS_AHEAD: int = env.int("MEASUREMENT_PARTITIONS_AHEAD", default=12)
MEASUREMENT_PARTITIONS_INTERVAL_SECONDS: float = env.float(
    "MEASUREMENT_PARTITIONS_INTERVAL_SECONDS", default=3600.0
)
_retention_days = env.str("MEASUREMENT_RAW_RETENTION_DAYS", default="").strip()
MEASUREMENT_RAW_RETENTION_DAYS: int | None = int(_retention_days) if _retention_days else None
if MEASUREMENT_PARTITIONS_AHEAD < 0 or (
    MEASUREMENT_RAW_RETENTION_DAYS is not None and MEASUREMENT_RAW_RETENTION_DAYS < 30
):
    raise ImproperlyConfigured(
        "MEASUREMENT_PARTITIONS_AHEAD must be ≥ 0 and MEASUREMENT_RAW_RETENTION_DAYS empty "
        "(keep raw values for ever) or ≥ 30 (the charts of up to 30 days read raw values)."
    )

REST_FRAMEWORK = {
    "DEFAULT_PARSER_CLASSES": [
        "bizdevops.parsers.DepthLimitedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "bizdevops.api.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "bizdevops.schema.DocumentedErrorsSchema",
    "EXCEPTION_HANDLER": "bizdevops.api.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "bizdevops.throttling.AnonRateThrottle",
        "bizdevops.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("API_THROTTLE_ANON", default="30/minute"),
        "user": env.str("API_THROTTLE_USER", default="1200/minute"),
    },
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # Proxies in front of the app: 0 identifies clients by REMOTE_ADDR (X-Forwarded-For is
    # ignored, so it cannot reset a throttle budget); 1 behind one reverse proxy.
    "NUM_PROXIES": env.int("API_NUM_PROXIES", default=0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "BizDevOps API",
    "DESCRIPTION": (
        "Initiatives, gates, KPIs, measurements and jobs. Authenticate with "
        "`Authorization: Token <token>` (POST /api/v1/auth/token/) or a session."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "bizdevops.schema.refuse_unknown_fields",
    ],
    "ENUM_NAME_OVERRIDES": {
        "PhaseEnum": "initiatives.models.Phase",
        "StatusEnum": "initiatives.models.Status",
        "DecisionEnum": "phases.models.Decision",
        "RunStateEnum": "jobs.models.RunState",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # Django's own console handler (DEBUG only) would print every `django.*` line a second
    # time beside the root's ("Watching for file changes" twice): `django` logs through the
    # root alone (no ADMINS are set, so Django's mail_admins handler sent nothing).
    "loggers": {"django": {"handlers": [], "level": "INFO", "propagate": True}},
}
