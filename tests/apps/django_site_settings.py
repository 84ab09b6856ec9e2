"""Settings for :mod:`tests.apps.django_site`: sessions and auth, as a real project has.

Used in the test process itself by ``faye_sync.testing`` (``tests/contrib/
test_django_testing.py``) and by real servers. The SQLite file lives in
``FAYE_SYNC_TEST_DB_DIR`` (the tests give each run a temporary directory).
"""

from __future__ import annotations

import os
import tempfile

DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
CSRF_TRUSTED_ORIGINS = ["https://app.example.com", "https://*.cdn.example.com"]
SECRET_KEY = "faye_sync django_site tests"
ROOT_URLCONF = "tests.apps.django_site"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(
            os.environ.get("FAYE_SYNC_TEST_DB_DIR") or tempfile.gettempdir(),
            "faye_sync-django-site.sqlite3",
        ),
    }
}
USE_TZ = True
