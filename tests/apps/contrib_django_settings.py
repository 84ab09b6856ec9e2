"""Settings for :mod:`tests.apps.contrib_django` (``DJANGO_SETTINGS_MODULE``).

Two SQLite databases in files (an in-memory one is never closed by Django, so it
could not show anything): ``default`` keeps connections for ten minutes and
wraps views in a transaction, ``other`` has Django's defaults. The WebSocket
helper must close both before the session, and keep its view out of the
transaction.
"""

from __future__ import annotations

import os
import tempfile

# The tests give each server a temporary directory; SQLite creates the files.
_DB = os.path.join(
    os.environ.get("FAYE_SYNC_TEST_DB_DIR") or tempfile.gettempdir(), "faye_sync-contrib-django"
)

DEBUG = False
ALLOWED_HOSTS = ["*"]
SECRET_KEY = "faye_sync contrib tests"
ROOT_URLCONF = "tests.apps.contrib_django"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "tests.apps.contrib_django.DatabaseTouchingMiddleware",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": f"{_DB}-default.sqlite3",
        "CONN_MAX_AGE": 600,
        "ATOMIC_REQUESTS": True,
    },
    "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": f"{_DB}-other.sqlite3"},
}
USE_TZ = True
