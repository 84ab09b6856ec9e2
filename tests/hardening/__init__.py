"""Hardening tests: properties, limits, faults, concurrency and security."""
