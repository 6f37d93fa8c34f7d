"""Prometheus metrics: how long each stage takes and how much it moves.

`swgw_stage_seconds{stage}` times every stage call; `swgw_stage_items_total{stage}` counts
what it handled. The benchmark reads them to say where the time goes. With
`[metrics] listen = "127.0.0.1:9464"` the daemon serves them on /metrics (and /healthz), with
gauges read from the store at scrape time (at most every `gauge_interval` seconds): messages by
type and state, overdue, failed, retrying, the oldest unanswered message's age, open alarms,
each link up, each signer's state, files waiting in each intake folder.
"""
from __future__ import annotations

import time
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

STAGE_SECONDS = Histogram("swgw_stage_seconds", "time spent in one call of a pipeline stage", ["stage"],
                          buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30))
STAGE_ITEMS = Counter("swgw_stage_items_total", "items a pipeline stage handled", ["stage"])


@contextmanager
def timed(stage: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        STAGE_SECONDS.labels(stage).observe(time.perf_counter() - start)


def count(stage: str, n: int) -> int:
    if n:
        STAGE_ITEMS.labels(stage).inc(n)
    return n


def snapshot() -> dict[str, dict[str, float]]:
    """{stage: {"seconds": total, "calls": n, "items": n}} from the registry."""
    out: dict[str, dict[str, float]] = {}
    for metric in STAGE_SECONDS.collect():
        for sample in metric.samples:
            stage = sample.labels.get("stage")
            if sample.name.endswith("_sum"):
                out.setdefault(stage, {})["seconds"] = sample.value
            elif sample.name.endswith("_count"):
                out.setdefault(stage, {})["calls"] = sample.value
    for metric in STAGE_ITEMS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                out.setdefault(sample.labels["stage"], {})["items"] = sample.value
    return out


# -- gauges from the store, and the HTTP endpoint ------------------------------------------
class StoreCollector:
    """A prometheus collector that reads the store (cached for `interval` seconds)."""

    def __init__(self, rt, interval: float = 5.0):
        self.rt, self.interval = rt, interval
        self._cache: tuple[float, list] | None = None

    def collect(self):
        now = time.monotonic()
        if self._cache is None or now - self._cache[0] >= self.interval:
            self._cache = (now, self._read())
        yield from self._cache[1]

    def _read(self) -> list:
        import datetime as dt

        from prometheus_client.core import GaugeMetricFamily

        from gateway import health
        from gateway.sources import folder
        from gateway.store import summary

        messages = GaugeMetricFamily("swgw_messages", "messages in the store by document type and state",
                                     labels=["doc_type", "state"])
        overdue = GaugeMetricFamily("swgw_messages_overdue", "messages past a receipt deadline")
        failed = GaugeMetricFamily("swgw_messages_failed", "messages in state failed (need an operator)")
        retrying = GaugeMetricFamily("swgw_messages_retrying", "messages waiting for a transmit retry")
        oldest = GaugeMetricFamily("swgw_oldest_unanswered_seconds",
                                   "age of the oldest sent message still waiting for an answer (0: none)")
        alarms = GaugeMetricFamily("swgw_alarms_open", "alarms not acknowledged yet")
        link = GaugeMetricFamily("swgw_link_up", "1 when a transport link works, 0 while it is down", labels=["link"])
        signer = GaugeMetricFamily("swgw_signer_state", "1 for the signer's current state",
                                   labels=["signer", "state"])
        depth = GaugeMetricFamily("swgw_intake_queue_depth", "drop files waiting in an intake folder",
                                  labels=["doc_type"])
        with self.rt.sessions() as s:
            for doc_type, state, n in summary.counts(s):
                messages.add_metric([doc_type, state], n)
            need = summary.needs(s)
            row = summary.oldest_unanswered(s)
            open_alarms = summary.open_alarms(s)
        overdue.add_metric([], need.overdue)
        failed.add_metric([], need.failed)
        retrying.add_metric([], need.retrying)
        if row is not None:
            sent = row.sent_at if row.sent_at.tzinfo else row.sent_at.replace(tzinfo=dt.timezone.utc)
            oldest.add_metric([], max((dt.datetime.now(dt.timezone.utc) - sent).total_seconds(), 0.0))
        else:
            oldest.add_metric([], 0.0)
        alarms.add_metric([], open_alarms)
        for name, kind, state, _detail, _since in health.snapshot(self.rt):
            if kind == "link":
                link.add_metric([name.removeprefix("link ")], 1.0 if state == "up" else 0.0)
            else:
                for st in ("present", "absent", "halted"):
                    signer.add_metric([name.removeprefix("signer "), st], 1.0 if st == state else 0.0)
        for key, dt_ in self.rt.doc_types.items():
            depth.add_metric([key], len(folder.fsutil.regular_files(dt_.source.inbox)))
        return [messages, overdue, failed, retrying, oldest, alarms, link, signer, depth]


class MetricsServer:
    """/metrics (Prometheus text format) and /healthz on `listen`, in a background thread."""

    def __init__(self, rt, listen: str, interval: float = 5.0):
        import threading
        from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
        from socketserver import ThreadingMixIn

        from prometheus_client import REGISTRY, make_wsgi_app

        from gateway.console.settings import split_listen

        self.collector = StoreCollector(rt, interval)
        REGISTRY.register(self.collector)
        metrics_app = make_wsgi_app()

        def app(environ, start_response):
            if environ.get("PATH_INFO") == "/healthz":
                start_response("200 OK", [("Content-Type", "application/json")])
                return [b'{"status": "ok", "process": "daemon"}']
            if environ.get("PATH_INFO") == "/metrics":
                return metrics_app(environ, start_response)
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"/metrics or /healthz\n"]

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args):
                pass

        class Server(ThreadingMixIn, WSGIServer):
            daemon_threads = True

        host, port = split_listen(listen)
        self.httpd = make_server(host, port, app, server_class=Server, handler_class=Quiet)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)
        self.thread.start()

    def close(self) -> None:
        from prometheus_client import REGISTRY

        self.httpd.shutdown()
        self.httpd.server_close()
        REGISTRY.unregister(self.collector)
