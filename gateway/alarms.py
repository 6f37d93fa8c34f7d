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


def raise_once(rt, session, kind: str, key: str, message: str, pending: set | None = None, **fields) -> bool:
    """Raise alarm `kind` the first time `key` is met (an unknown status code, a receipt root …):
    the store remembers it (an `alarm-once` event, committed with the caller's work), so every later
    occurrence is only on the trace. `pending` holds the keys raised in the caller's uncommitted batch.
    Returns whether the alarm was raised."""
    from gateway.store import repo
    from gateway.store.models import Event

    marker = f"{kind}: {key}"[:1000]
    if pending is not None and marker in pending:
        return False
    if session.query(Event.id).filter(Event.kind == "alarm-once", Event.detail == marker).first():
        return False
    if pending is not None:
        pending.add(marker)
    repo.note(session, None, "alarm-once", marker)
    raise_alarm(rt, kind, message, key=key, **fields)
    return True
