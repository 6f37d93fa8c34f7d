"""Alarms: what an operator must act on (a refused PIN, an overdue receipt, a transmit that
gave up …): logged, written to outbox/alarms/, and published to the alarm queue when
[lifecycle.amqp] alarm_queue is set."""
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
    body = json.dumps(record, ensure_ascii=False, indent=2, default=str).encode("utf-8")
    fsutil.atomic_write(path, body)
    amqp = getattr(getattr(rt.config, "lifecycle", None), "amqp", None)
    if amqp is not None and amqp.alarm_queue:
        from gateway.lifecycle import queues
        from gateway.transports.base import TransportError

        try:
            queues.publisher(rt).publish(amqp.alarm_queue, body, message_id=path.stem, kind=kind,
                                         content_type="application/json")
        except TransportError as exc:  # the alarm is in the log and the file either way
            log.warning("alarm not published to its queue", alarm=kind, queue=amqp.alarm_queue, error=str(exc))
