"""``faye_sync.stats()`` for Prometheus, through ``prometheus_client`` (``pip install
prometheus_client``; nothing else imports this module).

::

    from faye_sync.contrib.prometheus import register

    register()      # on prometheus_client's default registry, once per process

The collector reads :func:`faye_sync.stats` at each scrape, so nothing is
counted twice and nothing runs between scrapes. Metrics (per process, like the
counters they come from):

* ``faye_sync_websockets_open``, ``faye_sync_event_streams_open`` (gauges);
* ``faye_sync_messages_total{direction="in"|"out"}``,
  ``faye_sync_bytes_total{direction}`` (WebSocket messages and wire bytes);
* ``faye_sync_websocket_closes_total{code}``;
* ``faye_sync_refused_total{kind="websocket"|"eventsource"}`` (the connection limit);
* ``faye_sync_gauge{name}`` for each gauge added with ``faye_sync.add_gauge``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

from ..metrics import stats

__all__ = ["FayeSyncCollector", "register"]

_registered: weakref.WeakKeyDictionary[CollectorRegistry, FayeSyncCollector] = (
    weakref.WeakKeyDictionary()
)
_registered_lock = threading.Lock()


class FayeSyncCollector(Collector):
    """A ``prometheus_client`` collector of :func:`faye_sync.stats`."""

    def collect(self) -> Iterator[Metric]:
        now = stats()
        yield GaugeMetricFamily(
            "faye_sync_websockets_open", "Server WebSockets open now.", value=now.websockets_open
        )
        yield GaugeMetricFamily(
            "faye_sync_event_streams_open", "Event streams open now.", value=now.event_streams_open
        )
        messages = CounterMetricFamily(
            "faye_sync_messages", "WebSocket messages.", labels=["direction"]
        )
        messages.add_metric(["in"], now.messages_in)
        messages.add_metric(["out"], now.messages_out)
        yield messages
        wire = CounterMetricFamily(
            "faye_sync_bytes", "WebSocket bytes on the wire.", labels=["direction"]
        )
        wire.add_metric(["in"], now.bytes_in)
        wire.add_metric(["out"], now.bytes_out)
        yield wire
        closes = CounterMetricFamily(
            "faye_sync_websocket_closes", "Closed WebSockets by close code.", labels=["code"]
        )
        for code, count in sorted(now.closes.items()):
            closes.add_metric([str(code)], count)
        yield closes
        refused = CounterMetricFamily(
            "faye_sync_refused", "Answered 503 by the connection limit.", labels=["kind"]
        )
        for kind, count in sorted(now.refused.items()):
            refused.add_metric([kind], count)
        yield refused
        gauges = GaugeMetricFamily(
            "faye_sync_gauge", "Gauges added with faye_sync.add_gauge.", labels=["name"]
        )
        for name, value in sorted(now.gauges.items()):
            gauges.add_metric([name], value)
        yield gauges


def register(registry: CollectorRegistry = REGISTRY) -> FayeSyncCollector:
    """Add a :class:`FayeSyncCollector` to ``registry`` (once) and return it.

    Calling it again for the same registry returns the collector already there:
    an app factory or a reloader may well run the set-up twice, and
    ``prometheus_client`` refuses duplicate metric names.
    """
    with _registered_lock:
        collector = _registered.get(registry)
        if collector is None:
            collector = _registered[registry] = FayeSyncCollector()
            registry.register(collector)
    return collector
