"""Exponential reconnect backoff that never sleeps.

A transport records each failed connection (or dropped link) with `failed()`;
`wait_left()` says how long until the next attempt is allowed. The transport
raises a quick retryable error while that is positive, instead of blocking the
caller, so the daemon's loop stays responsive (shutdown, other transports).
"""
from __future__ import annotations

import random
import time


class Backoff:
    def __init__(self, initial: float = 1.0, maximum: float = 60.0, jitter: float = 0.1,
                 clock=time.monotonic):
        if initial <= 0 or maximum < initial:
            raise ValueError("backoff needs 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self.clock = clock
        self.failures = 0
        self.last_error = ""
        self._next_at = 0.0

    def wait_left(self) -> float:
        return max(0.0, self._next_at - self.clock())

    def failed(self, error: str = "") -> float:
        """Record a failure; returns the delay before the next attempt."""
        self.failures += 1
        self.last_error = error
        delay = min(self.maximum, self.initial * 2 ** (self.failures - 1))
        delay *= 1 + random.uniform(0, self.jitter)
        self._next_at = self.clock() + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.last_error = ""
        self._next_at = 0.0
