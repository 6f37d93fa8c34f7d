"""Which transport links are down, so an outage is logged once when it starts and once
when it ends, not on every poll while the transport backs off."""
from __future__ import annotations

import threading
import time

from gateway.log import get_logger

log = get_logger("transport")
_down: dict[tuple[str, str], tuple[float, int]] = {}   # (transport, operation) -> (since, failures)
_info: dict[tuple[str, str], tuple[float, str]] = {}   # (transport, operation) -> (since, wall clock; error)
_seen: set[str] = set()                                 # every link that has worked or failed
_lock = threading.Lock()


def failed(name: str, operation: str, exc: Exception) -> bool:
    """Record a failure; True (and a warning logged) if the link was up until now."""
    key = (name, operation)
    with _lock:
        since, count = _down.get(key, (time.monotonic(), 0))
        _down[key] = (since, count + 1)
        _info[key] = (_info[key][0] if count and key in _info else time.time(), str(exc)[:300])
        _seen.add(name)
    if count == 0:
        log.warning(f"{operation} failed; retrying with backoff", transport=name, error=str(exc))
        return True
    return False


def ok(name: str, operation: str) -> None:
    with _lock:
        down = _down.pop((name, operation), None)
        _info.pop((name, operation), None)
        if name not in _seen:
            _seen.add(name)
            _up_since.setdefault(name, time.time())
        elif down:
            _up_since[name] = time.time()
    if down:
        log.info(f"{operation} works again", transport=name, down_seconds=round(time.monotonic() - down[0], 1),
                 failed_attempts=down[1])


def down() -> dict[tuple[str, str], int]:
    with _lock:
        return {key: count for key, (_, count) in _down.items()}


_up_since: dict[str, float] = {}


def states() -> dict[str, tuple[str, float, str]]:
    """Every link seen: name -> ("up" | "down", since (epoch seconds), what failed)."""
    with _lock:
        out = {name: ("up", _up_since.get(name, time.time()), "") for name in _seen}
        for (name, operation), (since, error) in _info.items():
            count = _down.get((name, operation), (0, 0))[1]
            prev = out.get(name)
            if prev is None or prev[0] == "up" or since < prev[1]:
                out[name] = ("down", since, f"{operation} failed {count}x: {error}")
        return out
