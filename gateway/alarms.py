"""Alarms: what an operator must act on (a refused PIN, an overdue receipt, a transmit that
gave up …): logged, kept in the store (table `alarms`: the console lists them and an operator
acknowledges them there), written to outbox/alarms/, and published to the alarm queue when
[lifecycle.amqp] alarm_queue is set."""
from __future__ import annotations

import datetime as dt
import json

from gateway import fsutil
from gateway.log import get_logger

log = get_logger("alarm")


def raise_alarm(rt, kind: str, message: str, session=None, **fields) -> None:
    """`session`: the caller's open session, when it holds uncommitted work (the alarm row is then
    committed with it; a second transaction would wait on SQLite's write lock)."""
    now = dt.datetime.now(dt.timezone.utc)
    record = {"kind": kind, "at": now.isoformat(), "message": message, **fields}
    log.error(message, alarm=kind, **fields)
    _store(rt, kind, message, now, record, session)
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
    raise_alarm(rt, kind, message, session=session, key=key, **fields)
    return True


def _store(rt, kind: str, message: str, now: dt.datetime, record: dict, session=None) -> None:
    from gateway.store.models import Alarm

    fields = json.loads(json.dumps({k: v for k, v in record.items() if k not in ("kind", "at", "message")},
                                   ensure_ascii=False, default=str))
    mid = fields.get("message_id")
    alarm = Alarm(kind=kind, message=message, fields=fields, raised_at=now,
                  message_id=int(mid) if isinstance(mid, int) or str(mid).isdigit() else None)
    if session is not None:
        session.add(alarm)
        return
    try:
        with rt.sessions.begin() as s:
            s.add(alarm)
    except Exception as exc:  # the alarm is in the log and the file either way
        log.warning("alarm not stored", alarm=kind, error=f"{type(exc).__name__}: {exc}"[:300])


def acknowledge(sessions, alarm_id: int, by: str):
    """Mark an alarm seen by `by`; None if there is no such alarm. Acknowledging twice keeps the first."""
    from gateway.lifecycle import clock
    from gateway.store.models import Alarm

    with sessions.begin() as s:
        alarm = s.get(Alarm, alarm_id)
        if alarm is None:
            return None
        if alarm.acked_at is None:
            alarm.acked_at, alarm.acked_by = clock.now(), by
        return alarm
