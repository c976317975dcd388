"""Django settings for attpcdaq.

Everything that varies between machines comes from the environment:

- ``ATTPCDAQ_DATA_DIR``: where the SQLite database, secret key and config backups
  live (default ``~/.local/share/attpcdaq``), outside the source tree.
- ``ATTPCDAQ_DATABASE_URL``: a PostgreSQL URL; SQLite in the data dir when unset.
- ``ATTPCDAQ_DEBUG``, ``ATTPCDAQ_ALLOWED_HOSTS`` (comma-separated), ``ATTPCDAQ_SECRET_KEY``.
- Liveness, expiry and pruning (below): ``ATTPCDAQ_HEARTBEAT_INTERVAL``,
  ``ATTPCDAQ_ENGINE_STALE_AFTER``, ``ATTPCDAQ_COMMAND_EXPIRY``, ``ATTPCDAQ_PRUNE_*``,
  ``ATTPCDAQ_LOG_READS_*``.
- Safe defaults (below): ``ATTPCDAQ_HTTPS``, ``ATTPCDAQ_HSTS_SECONDS``,
  ``ATTPCDAQ_SESSION_HOURS``, ``ATTPCDAQ_LOGIN_FAILURES``, ``ATTPCDAQ_LOGIN_LOCKOUT_MINUTES``.
"""

import contextlib
import os
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("ATTPCDAQ_DATA_DIR",
                               Path.home() / ".local" / "share" / "attpcdaq")).resolve()
# Created 0700: the database (with the sessions), the secret key and the backups are
# nobody else's business. An existing directory is left as it is (`attpcdaq check` says
# when others may read it).
DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)


def _secret_key() -> str:
    """The key from the environment, or one made once and kept in the data dir (0600)."""
    if key := os.environ.get("ATTPCDAQ_SECRET_KEY"):
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        # Written 0600 from the start (mkstemp) under another name, then linked: a
        # process starting at the same moment reads the whole key or makes its own.
        fd, temporary = tempfile.mkstemp(dir=DATA_DIR, prefix=".secret_key-")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(50))
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    return path.read_text().strip()


def _private_file(path: Path) -> Path:
    """``path``, created empty and 0600 unless it exists. SQLite gives the -wal and -shm
    files it makes beside a database the database's mode, so they are 0600 too."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    return path


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
    "axes",  # failed logins throttled (below)
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
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
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
    # No persistent connections for the web: under ASGI each request may run on a new
    # thread, whose connection would never be closed (Django's "Persistent connections").
    # The engine keeps its one connection itself (engine/database.py).
    DATABASES = {"default": dj_database_url.parse(url)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _private_file(DATA_DIR / "attpcdaq.sqlite3"),
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
# django-axes's backend first: it refuses a throttled login before the password is checked.
AUTHENTICATION_BACKENDS = ["attpcdaq.daq.lockout.ThrottledLogins",
                           "django.contrib.auth.backends.ModelBackend"]
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

# Safe defaults for a real deployment --------------------------------------------------
#: ATTPCDAQ_HTTPS=1: served over HTTPS by a proxy in front (nginx, Apache, Caddy) that
#: terminates TLS, redirects plain HTTP and sets X-Forwarded-Proto (which is then
#: trusted: Django's SECURE_PROXY_SSL_HEADER). Cookies are sent over HTTPS only, and
#: browsers are told to use nothing else for ATTPCDAQ_HSTS_SECONDS (a year).
HTTPS = os.environ.get("ATTPCDAQ_HTTPS", "") == "1"
if HTTPS:
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(_number("ATTPCDAQ_HSTS_SECONDS", 31_536_000))
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
#: A login lasts this many hours from when it was made (the page's polling does not
#: extend it), then the browser asks for the password again.
SESSION_COOKIE_AGE = round(_number("ATTPCDAQ_SESSION_HOURS", 12, minimum=0.01) * 3600)
# Failed logins (django-axes): after ATTPCDAQ_LOGIN_FAILURES failures for one user name
# from one address, each within ATTPCDAQ_LOGIN_LOCKOUT_MINUTES of the one before, that
# user is refused from that address for that many minutes (429, saying so); a success
# clears the count. `attpcdaq manage axes_reset_username NAME` lifts it at once.
AXES_FAILURE_LIMIT = int(_number("ATTPCDAQ_LOGIN_FAILURES", 5, minimum=1))
AXES_COOLOFF_TIME = timedelta(minutes=_number("ATTPCDAQ_LOGIN_LOCKOUT_MINUTES", 15,
                                              minimum=0.01))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_DISABLE_ACCESS_LOG = True  # no row per successful login: the table would only grow
AXES_LOCKOUT_CALLABLE = "attpcdaq.daq.lockout.lockout_response"
AXES_CLIENT_IP_CALLABLE = "attpcdaq.daq.lockout.client_address"
AXES_VERBOSE = False

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
