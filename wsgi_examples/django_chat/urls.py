"""The example's URLs."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("", views.index),
    path("ws/chat", views.chat),
    path("ws/echo", views.echo),
    path("events", views.events),
]
