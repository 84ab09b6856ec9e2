"""``python -m wsgi_examples.django_chat <command>``: this project's ``manage.py``."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wsgi_examples.django_chat.settings")
    from django.core.management import execute_from_command_line

    # argv[0] is this file's path; Django's autoreloader re-runs "-m <package>".
    execute_from_command_line(["python -m wsgi_examples.django_chat", *sys.argv[1:]])


if __name__ == "__main__":
    main()
