"""The WSGI application, for gunicorn: ``wsgi_examples.django_chat.wsgi``."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wsgi_examples.django_chat.settings")

application = get_wsgi_application()
