"""Settings for the MLOps portal.

Everything that differs between a laptop, CI and production comes from environment variables. With none set, the
portal runs on an embedded default: SQLite and Celery's filesystem transport under ./var, no server needed.
"""
import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from whitenoise.compress import Compressor

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {value!r}") from None


DATA_DIR = Path(os.environ.get("MLOPS_DATA_DIR", BASE_DIR / "var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    if key := os.environ.get("DJANGO_SECRET_KEY"):
        return key
    # Zero-setup default: a random key kept beside the local database, never committed.
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "django_celery_beat",
    "axes",
    "simple_history",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "audit",
    "models_registry",
    "deployments",
    "workspaces",
    "notifications",
    "webhooks",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # NUL characters in a URL or a field get 404 / 400 (PostgreSQL cannot take them), before any view or query.
    "mlopsportal.lib.nul.RefuseNulMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs a login unless its view is explicitly marked public (only the login page is).
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # Times in the user's own zone (their settings), else TIME_ZONE.
    "accounts.middleware.UserTimeZoneMiddleware",
    # Revisions of the configuration models (django-simple-history) record who saved them.
    "simple_history.middleware.HistoryRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "mlopsportal.urls"
WSGI_APPLICATION = "mlopsportal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.tz",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.roles",
                "deployments.promotions.context_processors.waiting",
            ],
            "builtins": ["template_partials.templatetags.partials"],
            "libraries": {"charts": "mlopsportal.lib.charts"},  # {% chart %}: the one chart component
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{DATA_DIR / 'portal.sqlite3'}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker write to the same file: wait for the lock instead of failing, and take the write
    # lock at the start of a transaction so two writers never deadlock on an upgrade.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test_portal.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "models_registry:model_list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")  # the default zone of the pages; each user may choose theirs
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", DATA_DIR / "staticfiles"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "mlopsportal.lib.staticfiles.HashedCompressedStorage"},
}
# Source maps are read only by a browser's developer tools: served as they are, not compressed.
WHITENOISE_SKIP_COMPRESS_EXTENSIONS = (*Compressor.SKIP_COMPRESS_EXTENSIONS, "map")

# The cache holds sessions (written through to the database) and each user's permissions. It must be shared by all
# web processes: Redis when REDIS_CACHE_URL is set, otherwise files under the data folder (one machine).
REDIS_CACHE_URL = os.environ.get("REDIS_CACHE_URL", "")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_CACHE_URL}
    if REDIS_CACHE_URL else {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                             "LOCATION": str(DATA_DIR / "cache")}
}
# django-axes first: it refuses a sign-in while the account is locked out, before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "accounts.backends.CachedPermissionBackend"]
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
CSRF_FAILURE_VIEW = "accounts.views.csrf_failure"
SESSION_COOKIE_HTTPONLY = True
# Serving over HTTPS (README, "Running in production"): cookies only over HTTPS, http redirected to https, HSTS.
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
# Behind a TLS-terminating proxy the request reaches gunicorn as http: trust the header the proxy sets (and only
# then: a client could send it to a server that is reached directly), e.g. X-Forwarded-Proto, whose value is https.
if _proxy_header := os.environ.get("DJANGO_SECURE_PROXY_SSL_HEADER", "").strip():
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_header.upper().replace("-", "_"), "https")

# Sign-in throttling (django-axes): after MLOPS_LOGIN_FAILURE_LIMIT wrong passwords the account is locked for
# MLOPS_LOGIN_LOCKOUT_MINUTES, from the address that tried (MLOPS_LOGIN_LOCK_BY=account+ip, the default, so a
# stranger cannot lock a colleague out from elsewhere), from everywhere (account) or for every account (ip).
# A successful sign-in clears the count. Admins unlock early in Django admin (Axes > Access attempts) or with
# `manage.py axes_reset_username <name>`.
_LOCK_BY = {"account+ip": [["username", "ip_address"]], "account": ["username"], "ip": ["ip_address"]}
_lock_by = os.environ.get("MLOPS_LOGIN_LOCK_BY", "account+ip").strip().lower()
if _lock_by not in _LOCK_BY:
    raise ValueError(f"MLOPS_LOGIN_LOCK_BY must be one of {', '.join(_LOCK_BY)}, not {_lock_by!r}")
AXES_LOCKOUT_PARAMETERS = _LOCK_BY[_lock_by]
AXES_FAILURE_LIMIT = int(os.environ.get("MLOPS_LOGIN_FAILURE_LIMIT", "10"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("MLOPS_LOGIN_LOCKOUT_MINUTES", "15")))
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.views.login_locked_out"

# --- Celery -----------------------------------------------------------------------------------------------------
BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    # A task that sat in a dead worker's prefetch buffer is redelivered after this long. It must be longer than the
    # longest task time limit (a stress shard: 3720 s), or a task still running is delivered a second time.
    # Publishing tries to connect twice, 0.2 s apart (a broker restarting), then gives up: kombu's default kept
    # retrying for the connect timeout with 2 s waits, so a page took 6 s to say the queue was down.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 7200, "max_retries": 1, "interval_start": 0.2,
                                       "interval_step": 0.2, "interval_max": 0.5}
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE", "mlops")
# Publishing must fail fast when the broker is down, so the launch page can say so instead of hanging.
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_PUBLISH_RETRY = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True  # durable state lives in our rows; the UI never reads AsyncResult
CELERY_TASK_SOFT_TIME_LIMIT = 300
CELERY_TASK_TIME_LIMIT = 360
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "resume-stale-training-runs": {
        "task": "models_registry.tasks.training_runs_resume_stale",
        "schedule": timedelta(seconds=int(os.environ.get("MLOPS_RESUME_STALE_EVERY", "30"))),
    },
    "resume-stale-promotions": {
        "task": "deployments.tasks.promotions_resume",
        "schedule": timedelta(seconds=int(os.environ.get("MLOPS_RESUME_STALE_EVERY", "30"))),
    },
    "azureml-sync": {  # does nothing on a backend without an inventory of its own (local)
        "task": "workspaces.tasks.azureml_sync",
        "schedule": timedelta(seconds=int(os.environ.get("MLOPS_SYNC_SECONDS", "300"))),
    },
    "confirm-traffic": {  # splits the platform has not been seen applying: ask again, send again, or put back
        "task": "deployments.tasks.endpoints_traffic_confirm",
        "schedule": timedelta(seconds=int(os.environ.get("MLOPS_RECONCILE_EVERY", "30"))),
    },
    "resume-capacity-tests": {  # steps a dead worker held, or whose task was lost
        "task": "deployments.tasks.capacity_tests_resume",
        "schedule": timedelta(seconds=int(os.environ.get("MLOPS_RESUME_STALE_EVERY", "30"))),
    },
    "resume-webhook-deliveries": {  # deliveries made while the queue was down, or whose worker died
        "task": "webhooks.tasks.deliveries_resume",
        "schedule": timedelta(seconds=int(os.environ.get("MLOPS_RESUME_STALE_EVERY", "30"))),
    },
    "resume-deliveries": {  # notifications made while the queue was down
        "task": "notifications.tasks.deliveries_resume",
        "schedule": timedelta(seconds=int(os.environ.get("MLOPS_RESUME_STALE_EVERY", "30"))),
    },
    "reconcile-deployments": {
        "task": "deployments.tasks.deployments_reconcile",
        "schedule": timedelta(seconds=int(os.environ.get("MLOPS_RECONCILE_EVERY", "30"))),
    },
}

# --- notifications ------------------------------------------------------------------------------------------------
# Email goes through Django's backend: the console (the worker's log) unless an SMTP server is configured.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(DATA_DIR / "mail"))  # for the file-based backend
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "mlops-portal@localhost")
MLOPS_PORTAL_URL = os.environ.get("MLOPS_PORTAL_URL", "http://127.0.0.1:8000")  # links in notifications
MLOPS_NOTIFY_RETRIES = env_int("MLOPS_NOTIFY_RETRIES", 5)  # then the delivery is marked failed, with the reason
MLOPS_NOTIFY_BACKOFF_SECONDS = float(os.environ.get("MLOPS_NOTIFY_BACKOFF_SECONDS", "10"))  # doubles each retry
MLOPS_NOTIFY_RESUME_SECONDS = env_int("MLOPS_NOTIFY_RESUME_SECONDS", 60)

# --- ML platform ------------------------------------------------------------------------------------------------
MLOPS_BACKEND = os.environ.get("MLOPS_BACKEND", "local")
MLOPS_BACKENDS = {
    "local": "mlopsportal.backends.local.LocalBackend",
    "azureml": "mlopsportal.backends.azureml.AzureMLBackend",
    "fake": "mlopsportal.backends.fake.FakeBackend",  # in memory, for tests only
}
# What a backend is configured with, when the portal keeps it: a callable each backend receives as config_provider.
MLOPS_BACKEND_CONFIG = {
    "azureml": "workspaces.services.azureml_config",
}
# How the azureml backend signs in: a TokenCredential class from azure-identity (never a secret in the database).
MLOPS_AZURE_CREDENTIAL = os.environ.get("MLOPS_AZURE_CREDENTIAL", "azure.identity.DefaultAzureCredential")
MLOPS_ARTIFACT_ROOT = Path(os.environ.get("MLOPS_ARTIFACT_ROOT", DATA_DIR / "artifacts")).resolve()
MLOPS_EXAMPLES_DIRS = [BASE_DIR / "examples", *[Path(p) for p in env_list("MLOPS_EXTRA_EXAMPLES_DIRS")]]
# Hard ceiling on a training run; the launch form may ask for less.
MLOPS_TRAINING_MAX_TIMEOUT = int(os.environ.get("MLOPS_TRAINING_MAX_TIMEOUT", str(6 * 3600)))
# Azure ML's jobs and deployments take minutes and ARM throttles busy callers: poll it less often, wait longer.
_ON_AZURE = MLOPS_BACKEND == "azureml"
MLOPS_TRAINING_POLL_SECONDS = float(os.environ.get("MLOPS_TRAINING_POLL_SECONDS", "15" if _ON_AZURE else "2"))
# A running run nobody has polled for this long lost its worker; beat hands it to another.
MLOPS_TRAINING_STALE_SECONDS = int(os.environ.get("MLOPS_TRAINING_STALE_SECONDS", "60"))
MLOPS_RUN_LOG_MAX_CHARS = 200_000
# Serving: every endpoint's stable scoring URL is on the router (`manage.py run_router`).
MLOPS_ROUTER_URL = os.environ.get("MLOPS_ROUTER_URL", "http://127.0.0.1:8100")
MLOPS_DEPLOY_POLL_SECONDS = float(os.environ.get("MLOPS_DEPLOY_POLL_SECONDS", "10" if _ON_AZURE else "2"))
MLOPS_DEPLOY_TIMEOUT_SECONDS = int(os.environ.get("MLOPS_DEPLOY_TIMEOUT_SECONDS", "1800" if _ON_AZURE else "300"))
# A traffic step whose split the platform has not applied for this long fails (and production's split is restored).
MLOPS_TRAFFIC_TIMEOUT_SECONDS = int(os.environ.get("MLOPS_TRAFFIC_TIMEOUT_SECONDS", "900" if _ON_AZURE else "120"))
# A running promotion nobody advanced for this long lost its worker; beat hands it to another.
MLOPS_PROMOTION_STALE_SECONDS = int(os.environ.get("MLOPS_PROMOTION_STALE_SECONDS", "60"))
# A promotion step that broke this many times (an unexpected error, or a worker that died holding it) fails the
# promotion with the reason instead of being run again forever.
MLOPS_PROMOTION_STEP_RETRIES = int(os.environ.get("MLOPS_PROMOTION_STEP_RETRIES", "3"))
# How long a worker holds a promotion while it runs a step; a worker killed holding it delays the resume this long.
MLOPS_PROMOTION_LEASE_SECONDS = int(os.environ.get("MLOPS_PROMOTION_LEASE_SECONDS", "90"))
# How long past its planned duration a stress run may take before a missing shard fails it.
MLOPS_STRESS_GRACE_SECONDS = int(os.environ.get("MLOPS_STRESS_GRACE_SECONDS", "120"))
# Shards still missing this long past the planned duration are queued again (their worker died).
MLOPS_STRESS_REQUEUE_SECONDS = int(os.environ.get("MLOPS_STRESS_REQUEUE_SECONDS", "30"))
# A capacity test's step holds its lease this long past the step's own duration; a worker killed in a step delays
# the test this long (then it is queued again and the step measured anew).
MLOPS_CAPACITY_LEASE_GRACE_SECONDS = int(os.environ.get("MLOPS_CAPACITY_LEASE_GRACE_SECONDS", "60"))

# Webhooks (README "Webhooks"): retries with waits of BACKOFF, 2×, 4×...; private addresses refused unless allowed.
MLOPS_WEBHOOK_RETRIES = env_int("MLOPS_WEBHOOK_RETRIES", 6)
MLOPS_WEBHOOK_BACKOFF_SECONDS = float(os.environ.get("MLOPS_WEBHOOK_BACKOFF_SECONDS", "10"))
MLOPS_WEBHOOK_ALLOW_PRIVATE = env_bool("MLOPS_WEBHOOK_ALLOW_PRIVATE", False)
# How long one attempt waits for the receiver; a worker that died mid-attempt is taken over after 3× this.
MLOPS_WEBHOOK_TIMEOUT_SECONDS = float(os.environ.get("MLOPS_WEBHOOK_TIMEOUT_SECONDS", "10"))

# The REST API (/api/v1/, README "API for pipelines"): bearer tokens, or the portal session for the docs page.
MLOPS_API_RATE = os.environ.get("MLOPS_API_RATE", "600/min")  # per token; DRF's rate format
MLOPS_API_TOKEN_MAX_DAYS = env_int("MLOPS_API_TOKEN_MAX_DAYS", 366)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.auth.BearerTokenAuthentication", "api.auth.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.auth.RolePermission"],
    "DEFAULT_THROTTLE_CLASSES": ["api.auth.TokenRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.StrictJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.problems.handler",
    "UNAUTHENTICATED_USER": None,
    "STRICT_JSON": True,  # NaN and Infinity are refused, in and out
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MLOps portal API",
    "DESCRIPTION": "Train, register, promote and roll back from pipelines, with the portal's own rules. "
                   "Authenticate with `Authorization: Bearer mlp_…` (make a token under Settings → API tokens).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],  # like every page: signed in (or a token)
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "api.schema.problem_responses"],
    "ENUM_NAME_OVERRIDES": {"RunStatusEnum": "models_registry.models.TrainingRun.Status",
                            "DeploymentStatusEnum": "deployments.models.Deployment.Status",
                            "StepStatusEnum": "deployments.models.PromotionStep.Status",
                            "TestOutcomeEnum": "deployments.models.verification.TestOutcome",
                            "PromotionStateEnum": "deployments.models.Promotion.State"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"client_errors_in_one_line": {"()": "mlopsportal.lib.logfilters.ClientErrorsInOneLine"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # The Azure SDK logs every request and response at INFO; keep its warnings and errors only.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "azure": {"level": "WARNING"},
                # apprise names the webhook (a secret) in what it logs: its reasons reach the delivery, scrubbed.
                "apprise": {"level": "CRITICAL", "propagate": False},
                # A 403 or 404 is one line ("Forbidden (Permission denied): /path"), not a traceback.
                "django.request": {"filters": ["client_errors_in_one_line"]}},
}
