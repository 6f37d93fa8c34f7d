"""Which transport links are down, so an outage is logged once when it starts and once
when it ends, not on every poll while the transport backs off."""
from __future__ import annotations

import threading
import time

from gateway.log import get_logger

log = get_logger("transport")
_down: dict[tuple[str, str], tuple[float, int]] = {}   # (transport, operation) -> (since, failures)
_lock = threading.Lock()


def failed(name: str, operation: str, exc: Exception) -> bool:
    """Record a failure; True (and a warning logged) if the link was up until now."""
    key = (name, operation)
    with _lock:
        since, count = _down.get(key, (time.monotonic(), 0))
        _down[key] = (since, count + 1)
    if count == 0:
        log.warning(f"{operation} failed; retrying with backoff", transport=name, error=str(exc))
        return True
    return False


def ok(name: str, operation: str) -> None:
    with _lock:
        down = _down.pop((name, operation), None)
    if down:
        log.info(f"{operation} works again", transport=name, down_seconds=round(time.monotonic() - down[0], 1),
                 failed_attempts=down[1])


def down() -> dict[tuple[str, str], int]:
    with _lock:
        return {key: count for key, (_, count) in _down.items()}
