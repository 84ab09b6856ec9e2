"""A shim for tools that need setup.py; the metadata lives in setup.cfg."""

from setuptools import setup

setup()
