"""WebSockets and EventSource for WSGI applications, in a blocking style; a port of faye-websocket."""

from __future__ import annotations

import logging

__version__ = "0.1.0.dev0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
