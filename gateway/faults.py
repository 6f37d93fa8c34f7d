"""Failpoints: kill the process with SIGKILL at a named point, for crash-safety tests.

Set SWGW_FAILPOINTS="after-send=3" to be killed (kill -9, no cleanup) the third time
the daemon passes `after-send`; "after-send=1:stall" hangs there instead (a transport that
never returns, for shutdown-timeout tests). Unset, `hit()` is one dict lookup.
"""
from __future__ import annotations

import os
import signal
import time

_spec: dict[str, int] = {}
_stall: set[str] = set()
for part in filter(None, os.environ.get("SWGW_FAILPOINTS", "").split(",")):
    name, _, count = part.partition("=")
    count, _, mode = count.partition(":")
    _spec[name.strip()] = int(count or 1)
    if mode == "stall":
        _stall.add(name.strip())
_hits: dict[str, int] = {}


def hit(name: str) -> None:
    if not _spec or name not in _spec:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= _spec[name]:
        while name in _stall:
            time.sleep(3600)
        os.kill(os.getpid(), signal.SIGKILL)
