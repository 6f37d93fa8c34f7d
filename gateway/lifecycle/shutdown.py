"""Graceful shutdown: on SIGTERM/SIGINT the daemon stops taking new work, lets the pass in
progress finish (its batch commits) and waits for scheduled jobs — within
[lifecycle] shutdown_timeout. Past it, the process exits anyway: whatever was in flight
is parked in the store (a message not yet recorded as sent is sent again after the
restart with the same CopMsgId; a receipt not yet committed is still on the exchange).
"""
from __future__ import annotations

import os
import sys
import threading

from gateway.log import get_logger

log = get_logger("shutdown")
EXIT_TIMED_OUT = 3

_armed: threading.Timer | None = None


def arm(timeout: float) -> None:
    """Start the clock once (the first signal); a second signal does not restart it."""
    global _armed
    if _armed is not None or timeout <= 0:
        return

    def expire():
        log.error("shutdown took longer than the timeout; exiting now. In-flight work is parked in the store "
                  "and resumes on restart", timeout=timeout)
        sys.stderr.flush()
        os._exit(EXIT_TIMED_OUT)

    _armed = threading.Timer(timeout, expire)
    _armed.daemon = True
    _armed.start()


def disarm() -> None:
    global _armed
    if _armed is not None:
        _armed.cancel()
        _armed = None
