"""Load and soak scripts against a real gevent server; not part of the default run."""
