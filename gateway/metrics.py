"""Prometheus metrics: how long each stage takes and how much it moves.

`swgw_stage_seconds{stage}` times every stage call; `swgw_stage_items_total{stage}` counts
what it handled. The benchmark reads them to say where the time goes; an operator can
expose them (prometheus_client.start_http_server) to watch a running gateway.
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
