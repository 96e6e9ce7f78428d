"""QMailing settings: one module, every value read through `core.env.env`.

Nothing here differs between development and production except what the environment says. Every read
carries a `help=` text; `python manage.py docs_generate` turns them into docs/operations/configuration.md,
and tests/qmailing/test_docs.py fails when a variable read here is missing from that page.

Importing this module writes nothing, with one exception: without DJANGO_SECRET_KEY the machine's own
random key is read from (or, the first time, made in) $QMAILING_VAR_DIR/secret_key, because Django needs
SECRET_KEY as a value. The folders the embedded default uses (the SQLite file's, the filesystem broker's,
static files, the beat schedule's) are made when Django starts, by qmailing.local_folders.

Sections, in order: paths; Django core; database; accounts and sign-in; HTTPS and cookies; static and
media files; Redis, broker, channel layer and cache; Celery; the product; rate limits; logging; inbound
mail; outbound mail; events and webhooks; request bodies and search; the agent surface (OAuth, CORS,
tokens, gates); the MCP server; REST and OpenAPI; the beat schedule (every periodic job, in one place).
"""

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from celery.schedules import crontab

from core.env import env, local_secret

# ---------------------------------------------------------------------------------------------------------
# Paths: where this checkout is, and the one folder the embedded default keeps its data in.
# ---------------------------------------------------------------------------------------------------------
BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env.str("QMAILING_VAR_DIR", str(BASE_DIR / "var"), help=(
    "Folder of the embedded default's data: the SQLite file, the filesystem broker, media, the beat schedule, "
    "the outbox, static files and the machine's own secret key. Default: `var/` in the checkout.")))

# ---------------------------------------------------------------------------------------------------------
# Django core: debug, secret key, host names, applications, middleware, templates.
# ---------------------------------------------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", False, help=(
    "Django debug mode (`scripts/run` sets `true`). Its error pages mask credentials: URL passwords, "
    "`*_URL`, `*PASSWORD*`, `*KEY*`, …"))
# Error pages and reports mask credentials: DATABASE_URL, REDIS_URL, passwords inside any URL, secret-looking names.
DEFAULT_EXCEPTION_REPORTER_FILTER = "core.error_reports.CredentialMaskingFilter"
# Without DJANGO_SECRET_KEY, one machine keeps a random key of its own beside its data; several nodes
# must share DJANGO_SECRET_KEY instead.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", "", help=(
    "Django's secret key; set it, the same on every node, in production. Without it one machine makes a "
    "random key once in `$QMAILING_VAR_DIR/secret_key`.")) or local_secret(VAR_DIR / "secret_key")

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"],
                         help="Host names the site answers to (comma separated).")
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", [], help=(
    "Origins trusted for CSRF, e.g. `https://app.example.com` behind a proxy (comma separated)."))
QMAILING_BASE_URL = env.str("QMAILING_BASE_URL", "http://localhost:8000", help=(
    "The public URL, used in links, snippets, `/docs/mcp`, error `type` URLs and the MCP origins. "
    "`run_all` sets it to the address it serves unless it is set.")).rstrip("/")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",  # the OpenAPI document of /api/v1/pub/ (agent.openapi)
    "drf_spectacular_sidecar",  # Swagger UI assets served from our static files, never a CDN
    "oauth2_provider",
    "corsheaders",  # CORS for browser-based OAuth clients, on a few paths only (CORS_URLS_REGEX below)
    "django.contrib.humanize",  # allauth.mfa's and allauth.usersessions' templates ("3 minutes ago")
    "allauth",  # accounts: sign-up, sign-in, verification, passwords, MFA, sessions (settings at "django-allauth" below)
    "allauth.account",
    "allauth.mfa",
    "allauth.usersessions",
    "channels",
    "qmailing",
    "accounts",
    "domains",
    "events",
    "mailboxes",
    "webhooks",
    "agent",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before anything else that answers (WhiteNoise, CommonMiddleware), after the https redirect; CORS_URLS_REGEX.
    "corsheaders.middleware.CorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # JSON bodies outside /api and /oauth are parsed strictly before any view (anymail's webhooks parse first).
    "core.jsonbody.StrictJsonBodyMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "allauth.usersessions.middleware.UserSessionsMiddleware",  # last seen / IP of each session (USERSESSIONS_TRACK_ACTIVITY)
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: the product's 404 page instead of Django's (which, in debug, lists every URL pattern).
    "qmailing.web.NotFoundPageMiddleware",
]

ROOT_URLCONF = "qmailing.urls"
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
            ],
        },
    },
]
WSGI_APPLICATION = "qmailing.wsgi.application"
ASGI_APPLICATION = "qmailing.asgi.application"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# ---------------------------------------------------------------------------------------------------------
# Database: SQLite by default, DATABASE_URL (postgres://…) switches to PostgreSQL via psycopg 3.
# ---------------------------------------------------------------------------------------------------------
DATABASE_URL = env.str("DATABASE_URL", "", help=(
    "`postgres://user:pass@host:5432/db` switches to PostgreSQL (psycopg 3). Empty: SQLite in "
    "`$QMAILING_VAR_DIR`."))
if DATABASE_URL:
    # Health checks: a connection that a PostgreSQL restart killed is replaced before use instead of failing
    # one request. With the pool Django passes check=ConnectionPool.check_connection itself (one empty query
    # per checkout; a "check" key in OPTIONS["pool"] would clash with it); without it, one ping per request.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env.int("DATABASE_CONN_MAX_AGE", 0, help=(
        "Persistent connection lifetime in seconds, used only with `DATABASE_POOL=false`.")),
                                                  conn_health_checks=True)}
    # A connection pool per process (psycopg_pool): under ASGI every request and MCP call runs in a thread
    # of its own, and opening a PostgreSQL connection for each (~5 ms, and slower first queries on a fresh
    # backend) cost more than the work itself (bench/api.py, bench/mcp.py). Persistent connections
    # (DATABASE_CONN_MAX_AGE) pile up one per thread instead; the pool caps them. DATABASE_POOL=false turns it off.
    if DATABASES["default"]["ENGINE"].endswith("postgresql") and env.bool("DATABASE_POOL", True, help=(
            "A psycopg connection pool per process on PostgreSQL; `false` opens a connection per request "
            "(or keeps one per thread with `DATABASE_CONN_MAX_AGE`).")):
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django requires it with a pool
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("DATABASE_POOL_MIN_SIZE", 1, help="Connections each process's pool keeps open."),
            "max_size": env.int("DATABASE_POOL_MAX_SIZE", 20, help=(
                "Most connections one process's pool opens: size PostgreSQL's `max_connections` for every "
                "web node and worker.")),
            "timeout": env.int("DATABASE_POOL_TIMEOUT", 10, help=(
                "Seconds a request waits for a free pooled connection before it fails."))}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env.str("QMAILING_SQLITE_PATH", str(VAR_DIR / "qmailing.sqlite3"), help=(
                "The SQLite file of the embedded default (`$QMAILING_VAR_DIR/qmailing.sqlite3`).")),
            # Several processes (web, worker, SMTP) share the file: wait for locks instead of failing.
            "TEST": {"NAME": env.str("QMAILING_SQLITE_TEST_PATH", str(VAR_DIR / "test-qmailing.sqlite3"), help=(
                "The SQLite file the test suite creates and drops "
                "(`$QMAILING_VAR_DIR/test-qmailing.sqlite3`)."))},
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE",
                        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ---------------------------------------------------------------------------------------------------------
# Accounts and sign-in: the user model, passwords, django-allauth (accounts/adapter.py), sign-in limits.
# ---------------------------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "account_login"
# ModelBackend first (force_login, the admin's permission checks); allauth's for sign-in, which the admin uses too.
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend",
                           "allauth.account.auth_backends.AuthenticationBackend"]

# Failed sign-ins (dashboard and admin) allowed per email address and per client IP in one window.
QMAILING_SIGNIN_FAILURES_PER_ACCOUNT = env.int("QMAILING_SIGNIN_FAILURES_PER_ACCOUNT", 10, help=(
    "Failed sign-ins allowed per email address tried in one window (then `429` with `Retry-After`)."))
QMAILING_SIGNIN_FAILURES_PER_IP = env.int("QMAILING_SIGNIN_FAILURES_PER_IP", 30, help=(
    "Failed sign-ins allowed per client IP in one window."))
# Password-reset requests allowed per email typed / per client IP in the same window.
QMAILING_PASSWORD_RESETS_PER_EMAIL = env.int("QMAILING_PASSWORD_RESETS_PER_EMAIL", 5, help=(
    "Password-reset requests allowed per email typed in one window."))
QMAILING_PASSWORD_RESETS_PER_IP = env.int("QMAILING_PASSWORD_RESETS_PER_IP", 20, help=(
    "Password-reset requests allowed per client IP in one window."))
QMAILING_SIGNIN_WINDOW_SECONDS = env.int("QMAILING_SIGNIN_WINDOW_SECONDS", 15 * 60, help=(
    "The window of the sign-in and password-reset limits, in seconds."))

# django-allauth: email as the only login, mandatory verification by link.
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_FORMS = {"signup": "accounts.forms.SignUpForm"}
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None  # accounts.User has no username: USERNAME_FIELD is "email"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"  # the link goes out through EMAIL_BACKEND
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "QMailing: "
ACCOUNT_EMAIL_UNKNOWN_ACCOUNTS = False  # a reset request for an unknown address sends nothing (no mail to strangers)
ACCOUNT_SESSION_REMEMBER = True  # a sign-in lasts SESSION_COOKIE_AGE, no "Remember me" box
# Counters in the default cache (CACHES below: Redis with REDIS_URL, this process's memory otherwise).
_window = f"{QMAILING_SIGNIN_WINDOW_SECONDS}s"
ACCOUNT_RATE_LIMITS = {
    "login": f"{QMAILING_SIGNIN_FAILURES_PER_IP * 2}/m/ip",  # every attempt, right or wrong
    "login_failed": f"{QMAILING_SIGNIN_FAILURES_PER_IP}/{_window}/ip,{QMAILING_SIGNIN_FAILURES_PER_ACCOUNT}/{_window}/key",
    "reset_password": f"{QMAILING_PASSWORD_RESETS_PER_IP}/{_window}/ip,{QMAILING_PASSWORD_RESETS_PER_EMAIL}/{_window}/key",
    "signup": "20/h/ip",
}
ACCOUNT_EMAIL_NOTIFICATIONS = True  # a mail when the password, an email address or a second factor changes
MFA_ADAPTER = "accounts.adapter.MFAAdapter"  # TOTP secrets encrypted at rest
MFA_SUPPORTED_TYPES = ["totp", "webauthn", "recovery_codes"]
MFA_PASSKEY_LOGIN_ENABLED = True
MFA_FORMS = {"add_webauthn": "accounts.forms.AddPasskeyForm"}  # "Passwordless" ticked by default
MFA_TOTP_ISSUER = "QMailing"
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = DEBUG  # passkeys on http://localhost while developing, never in production
USERSESSIONS_TRACK_ACTIVITY = True

# ---------------------------------------------------------------------------------------------------------
# HTTPS and cookies: what a deployment behind a TLS proxy turns on.
# ---------------------------------------------------------------------------------------------------------
SESSION_COOKIE_SECURE = env.bool("QMAILING_SECURE_COOKIES", False, help="Secure session and CSRF cookies.")
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Behind our TLS proxy: trust its X-Forwarded-Proto, and its X-Forwarded-For hop as the client address (rate limits).
QMAILING_BEHIND_TLS_PROXY = env.bool("QMAILING_BEHIND_TLS_PROXY", False, help=(
    "Trust `X-Forwarded-Proto: https`, and the last `X-Forwarded-For` hop as the client IP (rate limits)."))
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if QMAILING_BEHIND_TLS_PROXY else None
SECURE_SSL_REDIRECT = env.bool("QMAILING_SSL_REDIRECT", False, help="Redirect plain HTTP to HTTPS.")
SECURE_HSTS_SECONDS = env.int("QMAILING_HSTS_SECONDS", 0, help=(
    "`Strict-Transport-Security` max-age (e.g. `31536000` once HTTPS works)."))

# ---------------------------------------------------------------------------------------------------------
# Static and media files: static files served by WhiteNoise, mail and attachment bytes under MEDIA_ROOT.
# ---------------------------------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = Path(env.str("QMAILING_MEDIA_ROOT", str(VAR_DIR / "media"), help=(
    "Raw messages and attachments (`$QMAILING_VAR_DIR/media`); every node must see the same folder.")))
MEDIA_URL = "/media/"

# ---------------------------------------------------------------------------------------------------------
# Redis: broker, channel layer, cache (allauth's counters) and rate-limit counters. Absent = embedded default.
# ---------------------------------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", "", help=(
    "`redis://host:6379/0`: Celery broker, channel layer, event wake-ups and rate-limit counters. Empty: "
    "the embedded default (a filesystem broker, counters in process memory)."))
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # A task a worker took and never acknowledged (it was killed) comes back after this; every task is
    # idempotent (claims in the database), and the database sweep (mailboxes.work) is the real safety net.
    # Above the longest retry countdown (32 minutes, mailboxes.tasks), so a delayed retry is not delivered twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("QMAILING_BROKER_VISIBILITY_SECONDS", 2400, help=(
        "Celery's Redis `visibility_timeout`: when a task a killed worker held is delivered again (above the "
        "longest retry delay, 32 minutes)."))}
    # socket_timeout above channels_redis's 5 s blocking pop (BZPOPMIN … 5): redis-py 8 reads with a 5 s socket
    # timeout by default, so an idle receive() could time out on the client a hair before Redis answers
    # "nothing yet", and the waiter failed with redis TimeoutError (seen with 10 concurrent long-polls).
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                  "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}]}}}
    # The cache holds allauth's rate-limit counters: shared by every web node.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "KEY_PREFIX": "qmailing"}}
else:
    # kombu's filesystem transport: a folder every local process (web, worker, beat, SMTP) shares; its
    # sub-folders are made when Django starts (qmailing.local_folders).
    BROKER_DIR = VAR_DIR / "broker"
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    # allauth's rate-limit counters in this process's memory (the embedded default runs one web process).
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "qmailing"}}

# ---------------------------------------------------------------------------------------------------------
# Celery: how tasks are acknowledged, routed and enqueued (the periodic jobs are the last section).
# ---------------------------------------------------------------------------------------------------------
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", False, help=(
    "Run tasks in the calling process instead of a worker (for tests and one-off scripts; never in production)."))
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# With the broker away, an enqueue gives up fast (the sweep does the work later) instead of holding the request.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}
# Follow-up work is recorded in the database with the change that causes it (mailboxes.work); the Celery message
# is only a wake-up. Every QMAILING_SWEEP_SECONDS a sweep enqueues again whatever has waited longer than
# QMAILING_STUCK_AFTER_SECONDS (outside delivery, forwarding, attachment text), and settles hand-offs a worker
# never finished (uncertain, not sent twice). A failed enqueue (broker away) is logged and left to it.
QMAILING_SWEEP_SECONDS = env.int("QMAILING_SWEEP_SECONDS", 60, help=(
    "How often the beat sweeps look for work left undone (deliveries, forwards, attachment text, account "
    "deletions)."))
QMAILING_STUCK_AFTER_SECONDS = env.int("QMAILING_STUCK_AFTER_SECONDS", 120, help=(
    "Work waiting longer than this counts as stuck and is enqueued again by the sweep."))
# A hand-off to the relay still marked after this long was interrupted (a large message on a slow link may
# legitimately take minutes: EMAIL_TIMEOUT bounds each socket operation, not the whole send).
QMAILING_HANDOFF_STUCK_SECONDS = env.int("QMAILING_HANDOFF_STUCK_SECONDS", 900, help=(
    "A hand-off to the relay still marked after this long was interrupted and becomes `uncertain` (never "
    "re-sent blindly)."))

# ---------------------------------------------------------------------------------------------------------
# The product: the shared domain, DNS records customers publish, domain verification, plans.
# ---------------------------------------------------------------------------------------------------------
QMAILING_SHARED_DOMAIN = env.str("QMAILING_SHARED_DOMAIN", "qmailing.localhost", help=(
    "The platform domain every account gets a mailbox on.")).lower()
QMAILING_MX_HOST = env.str("QMAILING_MX_HOST", "mx.qmailing.localhost", help=(
    "The MX host customers point their domains at (also the name in our `Authentication-Results`).")).lower()
QMAILING_SPF_INCLUDE = env.str("QMAILING_SPF_INCLUDE", "spf.qmailing.localhost", help=(
    "The SPF include customers add.")).lower()
QMAILING_DMARC_RUA = env.str("QMAILING_DMARC_RUA", "", help=(
    "Address for DMARC aggregate reports in the suggested DMARC record (none when empty)."))
QMAILING_DKIM_SELECTOR = env.str("QMAILING_DKIM_SELECTOR", "qm1", help="DKIM selector for new domains.")
# Resolvers used for verification: "ip" or "ip:port", comma separated. Empty = the system's resolvers.
QMAILING_DNS_RESOLVERS = env.list("QMAILING_DNS_RESOLVERS", [], help=(
    "Resolvers for domain verification and inbound SPF/DKIM/DMARC: `ip` or `ip:port`, comma separated. "
    "Empty: the system's resolvers."))
QMAILING_DNS_TIMEOUT = env.float("QMAILING_DNS_TIMEOUT", 3.0, help="Seconds per DNS lookup.")
# A verified domain whose ownership record has failed this long goes back to pending (a new owner can claim it).
QMAILING_DOMAIN_RELEASE_DAYS = env.int("QMAILING_DOMAIN_RELEASE_DAYS", 7, help=(
    "Days without its ownership record before a verified domain goes back to pending (so whoever owns the "
    "name now can take it)."))
# Plan changes are a manual step: the plan page asks people to write here (no online checkout).
QMAILING_PLAN_CONTACT_EMAIL = env.str("QMAILING_PLAN_CONTACT_EMAIL", f"support@{QMAILING_SHARED_DOMAIN}", help=(
    "Where the plan page asks people to write to change plan (upgrades are a manual step)."))
QMAILING_UPGRADE_URL = env.str("QMAILING_UPGRADE_URL", f"{QMAILING_BASE_URL}/settings/plan", help=(
    "Where plan errors (`402 plan_required`) send people."))
QMAILING_ERROR_DOCS_URL = env.str("QMAILING_ERROR_DOCS_URL", f"{QMAILING_BASE_URL}/docs/errors", help=(
    "Base of the problem-details `type` URLs."))

# ---------------------------------------------------------------------------------------------------------
# Rate limits (core.ratelimit): counters in Redis when REDIS_URL is set, in process memory otherwise.
# ---------------------------------------------------------------------------------------------------------
QMAILING_RATELIMIT_KEY_PREFIX = env.str("QMAILING_RATELIMIT_KEY_PREFIX", "qmailing:rl:", help=(
    "Prefix of rate-limit keys in Redis (set one per deployment sharing a Redis)."))

# ---------------------------------------------------------------------------------------------------------
# Logging: one console handler; every record printed once.
# ---------------------------------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("QMAILING_LOG_LEVEL", "INFO", help="The root log level.")},
    # The django logger keeps no handlers of its own so each record is printed once, by the root handler.
    "loggers": {"django": {"handlers": [], "level": "INFO", "propagate": True},
                "django.db.backends": {"level": "WARNING"}},
}

# ---------------------------------------------------------------------------------------------------------
# Inbound mail: the SMTP server (manage.py run_smtp) and its bounds.
# ---------------------------------------------------------------------------------------------------------
QMAILING_SMTP_HOST = env.str("QMAILING_SMTP_HOST", "127.0.0.1", help="Address the inbound SMTP server listens on.")
QMAILING_SMTP_PORT = env.int("QMAILING_SMTP_PORT", 2525, help=(
    "Port the inbound SMTP server listens on (25 in production, behind `QMAILING_MX_HOST`)."))
QMAILING_SMTP_MAX_MESSAGE_BYTES = env.int("QMAILING_SMTP_MAX_MESSAGE_BYTES", 35 * 1024 * 1024, help=(
    "Largest message accepted (35 MB); larger gets `552 5.3.4`. `import_mail` skips larger files too."))
# Sessions open at once (more are answered 421 4.3.2), and the message bytes all sessions may hold at
# once, reserved at MAIL FROM from the announced SIZE (the maximum message size without one; 452 4.3.1
# when used up). Parsing takes up to ~10 times a message's size in memory, so the default (two of the
# largest messages) keeps ten parallel 35 MB messages under 0.8 GB instead of 2.2 GB.
# The longest line accepted in DATA (a message with bare LF line ends is one line to SMTP); above it
# the message is refused with 500 5.5.2. Longer than RFC 5321's 1,000 because real mail is.
QMAILING_SMTP_MAX_LINE_BYTES = env.int("QMAILING_SMTP_MAX_LINE_BYTES", 1024 * 1024, help=(
    "Longest line accepted in DATA (1 MiB); longer gets `500 5.5.2`."))
QMAILING_SMTP_MAX_SESSIONS = env.int("QMAILING_SMTP_MAX_SESSIONS", 100, help=(
    "SMTP connections open at once; more get `421 4.3.2`."))
QMAILING_SMTP_MAX_INFLIGHT_BYTES = env.int("QMAILING_SMTP_MAX_INFLIGHT_BYTES", 2 * QMAILING_SMTP_MAX_MESSAGE_BYTES, help=(
    "Message bytes all SMTP sessions hold at once (2 × the message cap), reserved at `MAIL FROM` from "
    "`SIZE=` (the cap without it); beyond it `452 4.3.1`. Parsing needs up to ~10× a message's size in memory."))
# PEM certificate chain and key for STARTTLS; without a certificate the server offers no STARTTLS.
QMAILING_SMTP_TLS_CERT_FILE = env.str("QMAILING_SMTP_TLS_CERT_FILE", "", help=(
    "PEM certificate chain: with it (and the key) the SMTP server offers STARTTLS."))
QMAILING_SMTP_TLS_KEY_FILE = env.str("QMAILING_SMTP_TLS_KEY_FILE", "", help="PEM private key for STARTTLS.")

# ---------------------------------------------------------------------------------------------------------
# Outbound mail: the backend that carries mail to other servers, the ESP (Mailgun), sending bounds, drafts.
# ---------------------------------------------------------------------------------------------------------
# Embedded default: the file backend writes each outgoing message under var/outbox, so nothing leaves
# the machine until EMAIL_BACKEND names an SMTP relay (django.core.mail.backends.smtp.EmailBackend)
# or an ESP (anymail.backends.mailgun.EmailBackend, …).
EMAIL_BACKEND = env.str("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend", help=(
    "How outgoing mail leaves: the file backend writes it under `EMAIL_FILE_PATH` (nothing leaves the "
    "machine); `django.core.mail.backends.smtp.EmailBackend` for a relay; "
    "`anymail.backends.mailgun.EmailBackend` for Mailgun."))
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", str(VAR_DIR / "outbox"), help=(
    "Folder of the file backend (`$QMAILING_VAR_DIR/outbox`)."))
EMAIL_HOST = env.str("EMAIL_HOST", "localhost", help="SMTP relay host.")
EMAIL_PORT = env.int("EMAIL_PORT", 587, help="SMTP relay port.")
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", "", help="SMTP relay user name.")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", "", help="SMTP relay password (or `EMAIL_HOST_PASSWORD_FILE`).")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", False, help="STARTTLS to the relay.")
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", False, help="Implicit TLS to the relay.")
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", 30, help="Seconds each relay socket operation may take (not the whole send).")

# django-anymail (Mailgun): sending API, inbound route (/anymail/mailgun/inbound_mime/) and tracking
# webhooks (/anymail/mailgun/tracking/). Keys are set only when given: an empty signing key would accept
# forged signatures, so without one every webhook post is refused.
_anymail = {
    "MAILGUN_API_KEY": env.str("MAILGUN_API_KEY", "", help="Mailgun sending API key."),
    "MAILGUN_API_URL": env.str("MAILGUN_API_URL", "", help="Mailgun API URL (set it for the EU region)."),
    "MAILGUN_SENDER_DOMAIN": env.str("MAILGUN_SENDER_DOMAIN", "", help="Mailgun sending domain."),
    "MAILGUN_WEBHOOK_SIGNING_KEY": env.str("MAILGUN_WEBHOOK_SIGNING_KEY", "", help=(
        "Mailgun's HTTP webhook signing key; verifies inbound and tracking posts. Empty: every post is refused.")),
    # "user:password" for the webhook URLs' basic auth
    "WEBHOOK_SECRET": env.str("WEBHOOK_SECRET", "", help=(
        "`user:password` of the basic auth in the ESP webhook URLs (e.g. `mailgun:PASSWORD`).")),
}
ANYMAIL = {name: value for name, value in _anymail.items() if value}

QMAILING_OUTBOUND_MAX_ATTACHMENT_BYTES = env.int("QMAILING_OUTBOUND_MAX_ATTACHMENT_BYTES", 25 * 1024 * 1024, help=(
    "Attachments per sent message, in all (25 MB)."))
# A send holds 2.5 times its attachments' size while it runs (bench/send_memory.py): those with more than
# QMAILING_LARGE_SEND_BYTES of attachments run at most QMAILING_MAX_CONCURRENT_LARGE_SENDS at once per process
# (0: no cap); another waits QMAILING_LARGE_SEND_WAIT_SECONDS for a slot, then gets 429 with Retry-After.
QMAILING_LARGE_SEND_BYTES = env.int("QMAILING_LARGE_SEND_BYTES", 5 * 1024 * 1024, help=(
    "A send or forward with more attachment bytes than this is a large send (a send holds about 2.5 times "
    "its attachments while it runs; `bench/send_memory.py`)."))
QMAILING_MAX_CONCURRENT_LARGE_SENDS = env.int("QMAILING_MAX_CONCURRENT_LARGE_SENDS", 2, help=(
    "Large sends one process builds at once (`0`: no cap)."))
QMAILING_LARGE_SEND_WAIT_SECONDS = env.float("QMAILING_LARGE_SEND_WAIT_SECONDS", 10.0, help=(
    "How long a large send waits for a slot before `429 rate_limited` with `Retry-After` (nothing stored or sent)."))
# Drafts an account may keep (each up to the attachment cap above); scheduled drafts are sent each minute.
QMAILING_MAX_DRAFTS_PER_ACCOUNT = env.int("QMAILING_MAX_DRAFTS_PER_ACCOUNT", 1000, help=(
    "Drafts an account may keep (`409 draft_limit_reached` beyond)."))

# ---------------------------------------------------------------------------------------------------------
# Events and webhooks: the long-poll, wake-ups across processes, webhook endpoints and their worker.
# ---------------------------------------------------------------------------------------------------------
# The longest a qmailing_wait_for_events long-poll holds its request (25 at most); lower it behind a proxy
# that cuts idle requests sooner.
QMAILING_EVENTS_WAIT_MAX_SECONDS = env.float("QMAILING_EVENTS_WAIT_MAX_SECONDS", 25.0, help=(
    "The longest `wait_for_events` holds a request (25 at most); lower it behind a proxy that cuts idle "
    "requests sooner."))
# Wake-ups of event waiters go through Redis PUBLISH on channels named with this prefix (the event stream).
QMAILING_EVENTS_CHANNEL_PREFIX = env.str("QMAILING_EVENTS_CHANNEL_PREFIX", "qmailing:events:", help=(
    "Prefix of the Redis channels that wake event waiters in every process (channel = prefix + account)."))
# Webhooks: endpoints per account; http URLs (and the public-address check) only for hosts listed here,
# e.g. a receiver on loopback in tests; off by default. The secrets' encryption key (SECRET_KEY when unset).
QMAILING_MAX_WEBHOOKS_PER_ACCOUNT = env.int("QMAILING_MAX_WEBHOOKS_PER_ACCOUNT", 20, help=(
    "Live webhook endpoints an account may hold."))
QMAILING_WEBHOOK_HTTP_ALLOWED_HOSTS = env.list("QMAILING_WEBHOOK_HTTP_ALLOWED_HOSTS", [], help=(
    "Hosts a webhook URL may name over http or at a private address (comma separated; empty by default; "
    "tests use it for receivers on loopback)."))
QMAILING_WEBHOOK_SECRET_KEY = env.str("QMAILING_WEBHOOK_SECRET_KEY", "", help=(
    "Key that encrypts webhook signing secrets at rest (Fernet). Empty: derived from `SECRET_KEY`."))
# Webhook attempts mostly wait on the network: they have a queue of their own, served by a worker with a
# thread pool (run_all's "webhooks" process), so a slow receiver never holds up the other tasks.
QMAILING_WEBHOOK_QUEUE = env.str("QMAILING_WEBHOOK_QUEUE", "webhooks", help=(
    "Celery queue of webhook delivery attempts, served by the threaded webhook worker."))
CELERY_TASK_ROUTES = {"webhooks.tasks.webhook_deliver_task": {"queue": QMAILING_WEBHOOK_QUEUE}}
QMAILING_WEBHOOK_WORKER_THREADS = env.int("QMAILING_WEBHOOK_WORKER_THREADS", 16, help=(
    "Threads of the webhook worker `run_all` starts."))

# ---------------------------------------------------------------------------------------------------------
# Request bodies and search.
# ---------------------------------------------------------------------------------------------------------
# send_email carries its attachments base64-encoded in a JSON body: room for the whole cap plus the message.
# The API reads its bodies with this bound itself; every other view keeps Django's 2.5 MB.
QMAILING_API_MAX_BODY_BYTES = (QMAILING_OUTBOUND_MAX_ATTACHMENT_BYTES + 2) // 3 * 4 + 5 * 1024 * 1024
# Every request body Django reads (core.bodylimit): the largest of a compose form with a full message's
# attachments, an API call, and an ESP's inbound post of the largest message the SMTP server takes.
QMAILING_WEB_MAX_BODY_BYTES = env.int("QMAILING_WEB_MAX_BODY_BYTES", max(
    QMAILING_API_MAX_BODY_BYTES, QMAILING_OUTBOUND_MAX_ATTACHMENT_BYTES + 5 * 1024 * 1024,
    (QMAILING_SMTP_MAX_MESSAGE_BYTES + 2) // 3 * 4 + 5 * 1024 * 1024), help=(
    "Every request body Django reads, refused with `413` before it is read: by default the largest of the "
    "API's bound (base64 of the attachment cap + 5 MB), the attachment cap + 5 MB, and an ESP post of the "
    "largest inbound message (about 52 MB)."))
DATA_UPLOAD_MAX_NUMBER_FILES = 20  # files in one form post (compose); Django's default is 100
QMAILING_SEARCH_CONFIG = env.str("QMAILING_SEARCH_CONFIG", "english", help=(
    "PostgreSQL text search configuration of mail search."))

# ---------------------------------------------------------------------------------------------------------
# The agent surface: tokens (django-oauth-toolkit), OAuth 2.1, CORS, gates.
# ---------------------------------------------------------------------------------------------------------
# Every RFC 9700 flag that applies is on: tokens are stored only as a SHA-256 checksum (no plaintext),
# PKCE with S256 only, no implicit or password grant, no token in a query string, `iss` in authorization
# responses, refresh-token replay revokes the family, exact redirect URIs. `http` redirect URIs stay
# allowed (a warning under --deploy) because native clients use loopback callbacks (RFC 8252);
# dynamic registration (agent.oauth) admits http only for loopback.
OAUTH2_PROVIDER = {
    "SCOPES_BACKEND_CLASS": "agent.oauth_scopes.ProductScopes",  # accounts.scopes: every scope and the default
    "ACCESS_TOKEN_GENERATOR": "accounts.tokens.access_token_generator",
    "REFRESH_TOKEN_GENERATOR": "accounts.tokens.refresh_token_generator",
    "ACCESS_TOKEN_EXPIRE_SECONDS": 3600,  # OAuth-issued access tokens; clients refresh them
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,  # required by hashed storage (oauth2_provider.E001)
    "PKCE_REQUIRED": True,
    # Authorization codes are single-use: a replay revokes every token the code bought, a failed PKCE check spends it.
    "OAUTH2_VALIDATOR_CLASS": "agent.oauth_validator.SingleUseCodeValidator",
    "ALLOW_URI_WILDCARDS": False,
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
    # The OAuth 2.1 flow MCP clients run (agent.oauth): open dynamic registration, held by our own policy
    # (authorization-code grant only, https or loopback redirect URIs, per-IP limit); public clients (PKCE,
    # no secret) allowed; discovery advertises only what is accepted.
    "DCR_ENABLED": True,
    "DCR_REGISTRATION_PERMISSION_CLASSES": ("oauth2_provider.dcr.AllowAllDCRPermission",),
    "OAUTH2_RESPONSE_TYPES_SUPPORTED": ["code"],
    "OAUTH2_GRANT_TYPES_SUPPORTED": ["authorization_code", "refresh_token"],
    "OAUTH2_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED": ["none", "client_secret_basic", "client_secret_post"],
}
# CORS (django-cors-headers) for browser-based MCP clients (MCP Inspector, web agents), which register, exchange
# codes for tokens and read discovery from their own origin. Only those paths: /oauth/token/, /oauth/register/,
# /oauth/revoke_token/ and the /.well-known/oauth-* documents. They take no cookies (client credentials, PKCE),
# so any origin may call them and credentials are never allowed. The consent page (/oauth/authorize/), sign-in,
# the dashboard and every session-cookie page send no CORS headers; /api/v1/pub/ keeps its own policy.
CORS_URLS_REGEX = (r"^/(oauth/(token|register|revoke_token)/"
                   r"|\.well-known/oauth-(authorization-server|protected-resource(/(mcp|api/v1/pub)/?)?))$")
CORS_ALLOW_ALL_ORIGINS = True  # for the paths above only: CorsMiddleware ignores every other path
CORS_ALLOW_CREDENTIALS = False
CORS_ALLOW_METHODS = ("GET", "POST", "OPTIONS")
CORS_ALLOW_HEADERS = ("accept", "authorization", "content-type", "mcp-protocol-version")
CORS_PREFLIGHT_MAX_AGE = 86400  # browsers cap this themselves (Chromium at 2 hours)
# Dynamic client registration: per client IP and hour; a self-registered client that never got a token is
# deleted after this many days (the beat job oauth-purge-stale-registrations).
QMAILING_DCR_REGISTRATIONS_PER_HOUR = env.int("QMAILING_DCR_REGISTRATIONS_PER_HOUR", 20, help=(
    "OAuth dynamic client registrations per client IP per hour."))
QMAILING_DCR_STALE_DAYS = env.int("QMAILING_DCR_STALE_DAYS", 7, help=(
    "A self-registered OAuth client that got no token within this many days is deleted (daily job)."))
# Personal tokens (Settings → Developers, `manage.py issue_token`) live this long unless revoked.
QMAILING_PERSONAL_TOKEN_DAYS = env.int("QMAILING_PERSONAL_TOKEN_DAYS", 365, help=(
    "Lifetime of personal tokens (Settings → Developers, `manage.py issue_token`)."))
# Gates (agent.gates): per-token throttle on every plan; the daily cap per account comes from its Plan row.
QMAILING_TOKEN_REQUESTS_PER_MINUTE = env.int("QMAILING_TOKEN_REQUESTS_PER_MINUTE", 300, help=(
    "REST and MCP calls allowed per token per minute; the daily cap per account is the plan's."))
# The request log is written in batches off the request path (accounts.request_log): at most this long after a call.
QMAILING_REQUEST_LOG_FLUSH_SECONDS = env.float("QMAILING_REQUEST_LOG_FLUSH_SECONDS", 1.0, help=(
    "How often each process writes the request-log rows it buffered (one INSERT of many rows); a crash loses at "
    "most this long of rows, a clean shutdown none. 0: no background writer (rows are written when "
    "`request_log_flush()` is called or a batch is full; the tests' setting)."))
# Live personal tokens an account may hold (accounts.tokens.token_issue): each token has the throttle above.
QMAILING_MAX_TOKENS_PER_ACCOUNT = env.int("QMAILING_MAX_TOKENS_PER_ACCOUNT", 50, help=(
    "Live personal tokens an account may hold; one more is refused with `409 token_limit_reached` (OAuth-issued "
    "tokens do not count)."))

# ---------------------------------------------------------------------------------------------------------
# The MCP server at /mcp (agent.mcp): streamable HTTP, the same tokens and gates as the REST API.
# ---------------------------------------------------------------------------------------------------------
# DNS-rebinding protection is always on: the Host header must be exactly one of ALLOWED_HOSTS or the base URL's
# host, with no port or the base URL's port (or one of QMAILING_MCP_ALLOWED_PORTS), and a browser's Origin header
# exactly one of these origins (comma separated, scheme://host[:port]).
_base = urlsplit(QMAILING_BASE_URL)
QMAILING_MCP_ALLOWED_ORIGINS = env.list("QMAILING_MCP_ALLOWED_ORIGINS", [f"{_base.scheme}://{_base.netloc}"], help=(
    "`Origin` values a browser may call `/mcp` from (comma separated, exact, a loopback one also on the other "
    "loopback names; default: the origin of "
    "`QMAILING_BASE_URL`)."))
# Sessions (protocol versions with an initialize handshake) live in the memory of the web process that
# opened them: a load balancer must route on the Mcp-Session-Id header (docs/operations/production.md). An
# idle session ends after this many seconds; past the maximum, a new session is refused with 503 until one ends.
QMAILING_MCP_SESSION_IDLE_SECONDS = env.int("QMAILING_MCP_SESSION_IDLE_SECONDS", 30 * 60, help=(
    "An idle MCP session (handshake versions) ends after this many seconds."))
QMAILING_MCP_MAX_SESSIONS = env.int("QMAILING_MCP_MAX_SESSIONS", 10_000, help=(
    "MCP sessions open at once per web process, all accounts together; more get `503` (the last line of defence)."))
# What one token or account may hold of the sessions a process shares (agent.mcp.sessions): at a cap the
# oldest idle session of that token/account is evicted, or, when all are busy, the new one gets a 429.
QMAILING_MCP_SESSIONS_PER_TOKEN = env.int("QMAILING_MCP_SESSIONS_PER_TOKEN", 20, help=(
    "MCP sessions one token holds per web process; at the cap the oldest idle one is evicted, or "
    "`429 too_many_sessions` when all are busy."))
QMAILING_MCP_SESSIONS_PER_ACCOUNT = env.int("QMAILING_MCP_SESSIONS_PER_ACCOUNT", 100, help=(
    "MCP sessions one account holds per web process (the same rule as per token)."))
# A session that never called a tool ends after this long idle (a used one after QMAILING_MCP_SESSION_IDLE_SECONDS).
QMAILING_MCP_UNUSED_SESSION_SECONDS = env.int("QMAILING_MCP_UNUSED_SESSION_SECONDS", 5 * 60, help=(
    "An MCP session that never called a tool ends after this long idle."))
# Set by `run_all --web-workers N` on each of its web processes: their session ids carry it (`w1-…`), and the
# front (qmailing.front) sends every request of a session to the process that opened it.
QMAILING_WEB_WORKER = env.str("QMAILING_WEB_WORKER", "", help=(
    "Set by `run_all --web-workers N` on each web process (0 … N-1; leave it unset): the prefix of the process's "
    "MCP session ids (`w1-…`), by which the front routes a session's requests to it."))
# initialize per token per minute; requests without a valid token per client IP per minute (then 429, not 401).
QMAILING_MCP_INITIALIZE_PER_MINUTE = env.int("QMAILING_MCP_INITIALIZE_PER_MINUTE", 30, help=(
    "MCP `initialize` requests per token per minute (then `429`)."))
QMAILING_MCP_UNAUTHENTICATED_PER_MINUTE = env.int("QMAILING_MCP_UNAUTHENTICATED_PER_MINUTE", 60, help=(
    "`/mcp` requests without a valid token per client IP per minute (then `429` instead of `401`)."))
# Resource subscriptions (resources/subscribe and subscriptions/listen) one account may hold in one process.
QMAILING_MCP_SUBSCRIPTIONS_PER_ACCOUNT = env.int("QMAILING_MCP_SUBSCRIPTIONS_PER_ACCOUNT", 200, help=(
    "Resource subscriptions and listened URIs one account holds per web process."))
# Ports a Host header may name besides the base URL's (exact host[:port] match, agent.mcp.http).
QMAILING_MCP_ALLOWED_PORTS = env.list("QMAILING_MCP_ALLOWED_PORTS", [], help=(
    "Ports a `/mcp` Host header may carry besides the base URL's (the host match is exact)."))
# REST long-polls (GET /api/v1/pub/events with a wait) hold a thread each: at most this many per account at once.
QMAILING_REST_WAITS_PER_ACCOUNT = env.int("QMAILING_REST_WAITS_PER_ACCOUNT", 10, help=(
    "REST long-polls (`GET /api/v1/pub/events` with a wait) one account holds at once per web process; more "
    "get `429 too_many_waits`."))

# ---------------------------------------------------------------------------------------------------------
# REST framework and the OpenAPI document.
# ---------------------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "EXCEPTION_HANDLER": "agent.rest.exception_handler",
    "DEFAULT_AUTHENTICATION_CLASSES": [],  # the gates authenticate (agent.gates)
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": None,
}
# The OpenAPI 3.1 document, generated from the operation registry (agent.openapi), at /api/v1/pub/openapi.json.
SPECTACULAR_SETTINGS = {
    "TITLE": "QMailing API",
    "DESCRIPTION": "The REST twin of the QMailing MCP tools: one operation per tool, generated from one registry. "
                   "Errors are RFC 9457 problem details (application/problem+json).",
    "VERSION": "1",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PUBLIC": True,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": [],
    "SCHEMA_PATH_PREFIX": r"/api/v1/pub/",
    "PREPROCESSING_HOOKS": ["agent.openapi.only_public_api"],
    "POSTPROCESSING_HOOKS": ["agent.openapi.postprocess"],
    "COMPONENT_SPLIT_REQUEST": False,
    "ENUM_NAME_OVERRIDES": {},
    "SWAGGER_UI_DIST": "SIDECAR",  # local assets (drf-spectacular-sidecar), no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# ---------------------------------------------------------------------------------------------------------
# The beat schedule: every periodic job, in one place (exactly one `celery beat` runs it).
# ---------------------------------------------------------------------------------------------------------
CELERY_BEAT_SCHEDULE = {
    # Every minute, verify the domains whose slot (id % 60) is this minute: each domain once an hour.
    "domains-verify-slot": {"task": "domains.tasks.domains_verify_slot_task", "schedule": crontab(minute="*")},
    # Trash keeps a message 30 days; purged hourly.
    "mail-purge-trash": {"task": "mailboxes.tasks.mail_purge_trash_task", "schedule": crontab(minute=17)},
    # The request log keeps 30 days (docs/agents/tokens-and-oauth.md); purged hourly in batches.
    "request-log-purge": {"task": "accounts.tasks.request_log_purge_task", "schedule": crontab(minute=41)},
    # The database-driven sweeps (QMAILING_SWEEP_SECONDS above): mail work left undone, account deletions.
    "mail-work-sweep": {"task": "mailboxes.tasks.mail_work_sweep_task",
                        "schedule": timedelta(seconds=QMAILING_SWEEP_SECONDS)},
    "accounts-closed-sweep": {"task": "accounts.tasks.accounts_closed_sweep_task",
                              "schedule": timedelta(seconds=QMAILING_SWEEP_SECONDS)},
    # Self-registered OAuth clients that never got a token (QMAILING_DCR_STALE_DAYS), daily.
    "oauth-purge-stale-registrations": {"task": "agent.tasks.oauth_purge_stale_registrations_task",
                                        "schedule": crontab(minute=23, hour=4)},
    # Webhook deliveries that are due and not in flight (retries, lost tasks, killed workers), each minute.
    "webhooks-sweep": {"task": "webhooks.tasks.webhooks_sweep_task", "schedule": crontab(minute="*")},
    # Scheduled drafts whose time has come, each minute.
    "drafts-send-due": {"task": "mailboxes.tasks.drafts_send_due_task", "schedule": crontab(minute="*")},
}
