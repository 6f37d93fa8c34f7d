"""Alarms: what an operator must act on (a refused PIN, …), logged and written to outbox/alarms/."""
from __future__ import annotations

import datetime as dt
import json

from gateway import fsutil
from gateway.log import get_logger

log = get_logger("alarm")


def raise_alarm(rt, kind: str, message: str, **fields) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    record = {"kind": kind, "at": now.isoformat(), "message": message, **fields}
    log.error(message, alarm=kind, **fields)
    path = rt.config.gateway.alarms_outbox / f"{now:%Y%m%dT%H%M%S%f}-{kind}.json"
    fsutil.atomic_write(path, json.dumps(record, ensure_ascii=False, indent=2).encode("utf-8"))
