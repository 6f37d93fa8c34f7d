"""Failpoints: kill the process with SIGKILL at a named point, for crash-safety tests.

Set SWGW_FAILPOINTS="after-send=3" to be killed (kill -9, no cleanup) the third time
the daemon passes `after-send`. Unset, `hit()` is one dict lookup.
"""
from __future__ import annotations

import os
import signal

_spec: dict[str, int] = {}
for part in filter(None, os.environ.get("SWGW_FAILPOINTS", "").split(",")):
    name, _, count = part.partition("=")
    _spec[name.strip()] = int(count or 1)
_hits: dict[str, int] = {}


def hit(name: str) -> None:
    if not _spec or name not in _spec:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= _spec[name]:
        os.kill(os.getpid(), signal.SIGKILL)
