"""Settings of the example: no database, no apps, no templates; DEBUG on by default.

``DJANGO_DEBUG=0`` turns DEBUG off; ``DJANGO_ALLOWED_HOSTS`` (comma-separated)
replaces the local names.
"""

from __future__ import annotations

import os

DEBUG = os.environ.get("DJANGO_DEBUG", "1") != "0"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")
SECRET_KEY = "faye_sync example: not secret"
ROOT_URLCONF = "wsgi_examples.django_chat.urls"
WSGI_APPLICATION = "wsgi_examples.django_chat.wsgi.application"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    # faye_sync logs refusals (a server that cannot hand over its socket) here.
    "loggers": {"faye_sync": {"handlers": ["console"], "level": "INFO"}},
}
