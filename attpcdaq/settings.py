"""Django settings for attpcdaq.

Everything that varies between machines comes from the environment:

- ``ATTPCDAQ_DATA_DIR``: where the SQLite database, secret key and config backups
  live (default ``~/.local/share/attpcdaq``), outside the source tree.
- ``ATTPCDAQ_DATABASE_URL``: a PostgreSQL URL; SQLite in the data dir when unset.
- ``ATTPCDAQ_DEBUG``, ``ATTPCDAQ_ALLOWED_HOSTS`` (comma-separated), ``ATTPCDAQ_SECRET_KEY``.
- Liveness, expiry and pruning (below): ``ATTPCDAQ_HEARTBEAT_INTERVAL``,
  ``ATTPCDAQ_ENGINE_STALE_AFTER``, ``ATTPCDAQ_COMMAND_EXPIRY``, ``ATTPCDAQ_PRUNE_*``,
  ``ATTPCDAQ_LOG_READS_*``.
"""

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("ATTPCDAQ_DATA_DIR",
                               Path.home() / ".local" / "share" / "attpcdaq")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """The key from the environment, or one made once and kept in the data dir."""
    if key := os.environ.get("ATTPCDAQ_SECRET_KEY"):
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = os.environ.get("ATTPCDAQ_DEBUG", "") == "1"
ALLOWED_HOSTS = os.environ.get("ATTPCDAQ_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "attpcdaq.daq",
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
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "attpcdaq.urls"
ASGI_APPLICATION = "attpcdaq.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

if url := os.environ.get("ATTPCDAQ_DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(url, conn_max_age=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "attpcdaq.sqlite3",
            # WAL lets the page read while the engine writes; IMMEDIATE takes the
            # write lock up front so two writers queue instead of failing "locked".
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
            # A file, not memory: the engine's database thread must see the tests' data.
            "TEST": {"NAME": DATA_DIR / "test.sqlite3"},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "daq:status"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("ATTPCDAQ_TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
# Assets are served from the package (no CDN: the control room has no internet);
# Bootstrap's files are committed under daq/static/bootstrap/ by scripts/fetch-bootstrap.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

#: Where configuration files used by each run are backed up.
CONFIG_BACKUP_ROOT = Path(os.environ.get("ATTPCDAQ_BACKUP_ROOT", DATA_DIR / "config-backups"))


def _number(name: str, default: float, *, minimum: float = 0.0) -> float:
    """A number from the environment; ImproperlyConfigured naming it when it is not one."""
    text = os.environ.get(name, "")
    try:
        value = float(text) if text else float(default)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={text!r} is not a number") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={text!r}: at least {minimum} expected")
    return value


# Liveness of the engine ----------------------------------------------------------------
#: Seconds between the engine's heartbeats.
ENGINE_HEARTBEAT_INTERVAL = _number("ATTPCDAQ_HEARTBEAT_INTERVAL", 0.5, minimum=0.05)
#: Seconds without a heartbeat after which the engine counts as not running: the page
#: (polled every second) and /api/status say so within this plus a second, and the
#: services refuse commands (503). Four beats: one late beat is no outage.
ENGINE_STALE_AFTER = _number("ATTPCDAQ_ENGINE_STALE_AFTER", 2.0, minimum=0.1)
if ENGINE_STALE_AFTER <= 2 * ENGINE_HEARTBEAT_INTERVAL:
    raise ImproperlyConfigured("ATTPCDAQ_ENGINE_STALE_AFTER must exceed twice "
                               "ATTPCDAQ_HEARTBEAT_INTERVAL, or one late beat reads as an outage")
#: Seconds a command may wait for the engine: one asked while the engine was not
#: running and not taken up within this fails ("the engine is not running") instead of
#: running whenever the engine comes back.
COMMAND_EXPIRY = _number("ATTPCDAQ_COMMAND_EXPIRY", 5.0, minimum=0.1)

# Bounded tables (engine/pruning.py) ------------------------------------------------------
#: Events and commands older than this many days are deleted...
PRUNE_AFTER_DAYS = _number("ATTPCDAQ_PRUNE_AFTER_DAYS", 90)
#: ...and each table keeps at most this many rows (beyond those never pruned: runs, the
#: commands that started or stopped a run, unacknowledged alarms, commands not finished).
PRUNE_KEEP_ROWS = int(_number("ATTPCDAQ_PRUNE_KEEP_ROWS", 100_000))
#: Log reads (Command rows holding a log's last lines) go sooner: days, and rows kept.
LOG_READS_KEEP_DAYS = _number("ATTPCDAQ_LOG_READS_KEEP_DAYS", 7)
LOG_READS_KEEP_ROWS = int(_number("ATTPCDAQ_LOG_READS_KEEP_ROWS", 1000))
#: Seconds between two prunings by the engine (the first right after it starts).
PRUNE_INTERVAL = _number("ATTPCDAQ_PRUNE_INTERVAL", 600, minimum=1)
#: Log reads one user may ask for per second (more are refused with 429).
LOG_READS_PER_SECOND = int(_number("ATTPCDAQ_LOG_READS_PER_SECOND", 2, minimum=1))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "attpcdaq": {"handlers": ["console"],
                     "level": os.environ.get("ATTPCDAQ_LOG_LEVEL", "INFO")},
        "django": {"handlers": ["console"], "level": "WARNING"},
    },
}
