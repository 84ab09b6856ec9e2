"""Tests in a real browser: headless Chromium from Debian, driven by Playwright."""
