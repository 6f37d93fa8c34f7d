"""RabbitMQ intake: ERP records from one durable queue per document type.

    intake = AmqpIntake(url, {"declaration": "erp.declaration", "origin": "erp.origin"},
                        dlq="erp.dlq", password=Secret(env="SWGW_AMQP_PASSWORD"))
    for msg in intake.fetch(50):          # IntakeMessage(ref, body, content_type, message_id, doc_type)
        try:
            store.record(...)             # claim, dedupe, persist, commit
        except BadRecord as exc:
            intake.reject_to_dlq(msg.ref, f"row 3, field GName: {exc}")
            continue
        intake.ack(msg.ref)               # only after the store commit

Manual ack after the store commit; a crash before the ack means RabbitMQ
redelivers the record and the store's content-hash dedupe drops the repeat.
Poison records go to the `dlq` queue with the reason in their headers
(`x-swgw-reason`, `x-swgw-original-queue`, `x-swgw-doc-type`, `x-swgw-rejected-at`),
published with a confirm *before* the original is acked, so a poison record
never blocks its queue and is never lost (at worst it lands in the DLQ twice).

Queues are fetched round-robin so one busy type cannot starve the others. The
intake queues are declared durable with no extra arguments (so queues an ERP
team already created as plain durable queues are accepted); the DLQ likewise.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import logging
from typing import NamedTuple

import pika

from gateway.amqplink import AmqpLink
from gateway.transports.base import TransportError

log = logging.getLogger(__name__)


class IntakeMessage(NamedTuple):
    ref: str                 # for ack / reject_to_dlq; valid until the connection resets
    body: bytes
    content_type: str | None
    message_id: str          # the sender's message_id, or sha256-<hash of body>
    doc_type: str            # the document type whose queue it came from


class _Held(NamedTuple):
    queue: str
    doc_type: str
    body: bytes
    props: pika.BasicProperties


class AmqpIntake:
    def __init__(self, url: str, queue_per_type: dict[str, str], dlq: str, password=None,
                 prefetch: int = 200, max_bytes: int = 50 * 1024 * 1024,
                 declare: bool = True, connection_name: str = "swgw-intake",
                 connect_timeout: float = 10.0, heartbeat: int = 60,
                 backoff_initial: float = 1.0, backoff_max: float = 60.0):
        if not queue_per_type:
            raise ValueError("AmqpIntake needs at least one document type -> queue")
        self.queue_per_type = dict(queue_per_type)
        self.dlq = dlq
        self.prefetch = prefetch
        self.max_bytes = max_bytes
        self.declare = declare
        self.link = AmqpLink(url, password=password, connection_name=connection_name,
                             connect_timeout=connect_timeout, heartbeat=heartbeat,
                             backoff_initial=backoff_initial, backoff_max=backoff_max,
                             on_channel=self._declare)

    def __repr__(self) -> str:
        return f"AmqpIntake({self.link.where!r}, queues={self.queue_per_type!r}, dlq={self.dlq!r})"

    def _declare(self, ch) -> None:
        if self.declare:
            for queue in [*self.queue_per_type.values(), self.dlq]:
                ch.queue_declare(queue, durable=True)

    def fetch(self, limit: int = 100) -> list[IntakeMessage]:
        """Up to `limit` new records, un-acked; held ones are not returned again."""
        def get(ch) -> list[IntakeMessage]:
            out: list[IntakeMessage] = []
            active = list(self.queue_per_type.items())
            while active and len(out) < limit and len(self.link.held) < self.prefetch:
                for doc_type, queue in list(active):
                    if len(out) >= limit or len(self.link.held) >= self.prefetch:
                        break
                    method, props, body = ch.basic_get(queue, auto_ack=False)
                    if method is None:
                        active.remove((doc_type, queue))
                        continue
                    tag = method.delivery_tag
                    self.link.held[tag] = _Held(queue, doc_type, body, props)
                    ref = self.link.ref(tag)
                    if len(body) > self.max_bytes:
                        self._to_dlq(ch, tag, f"message is {len(body)} bytes, over the limit of "
                                              f"{self.max_bytes}")
                        continue
                    mid = props.message_id or "sha256-" + hashlib.sha256(body).hexdigest()[:32]
                    out.append(IntakeMessage(ref, body, props.content_type, mid, doc_type))
            return out

        return self.link.run("fetch from intake queues", get)

    def ack(self, ref: str) -> None:
        tag = self.link.release(ref)
        if tag is None:
            log.info("%s: ack of %s skipped: not held on the current channel (acked already, or "
                     "the connection reset and RabbitMQ will redeliver it)", self.link.where, ref)
            return
        self.link.run(f"ack {ref}", lambda ch: ch.basic_ack(tag))
        self.link.held.pop(tag, None)

    def reject_to_dlq(self, ref: str, reason: str) -> None:
        """Publish the record to the DLQ with `reason` (confirmed), then ack the original."""
        tag = self.link.release(ref)
        if tag is None:
            log.info("%s: reject of %s skipped: not held on the current channel; it will be "
                     "redelivered and can be rejected again", self.link.where, ref)
            return
        self.link.run(f"move {ref} to dead-letter queue {self.dlq}", lambda ch: self._to_dlq(ch, tag, reason))

    def _to_dlq(self, ch, tag: int, reason: str) -> None:
        held: _Held = self.link.held[tag]
        p = held.props
        headers = dict(p.headers or {})
        headers.update({
            "x-swgw-reason": reason[:2000],
            "x-swgw-original-queue": held.queue,
            "x-swgw-doc-type": held.doc_type,
            "x-swgw-rejected-at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        })
        props = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent,
                                     message_id=p.message_id, correlation_id=p.correlation_id,
                                     content_type=p.content_type, content_encoding=p.content_encoding,
                                     type=p.type, timestamp=p.timestamp, headers=headers)
        ch.basic_publish("", self.dlq, held.body, props, mandatory=True)   # confirmed
        ch.basic_ack(tag)
        self.link.held.pop(tag, None)
        log.warning("%s: %s record %s from %s moved to %s: %s", self.link.where, held.doc_type,
                    p.message_id, held.queue, self.dlq, reason)

    def check(self):
        """Doctor: login, each intake queue and the dead-letter queue."""
        return self.link.check([*self.queue_per_type.values(), self.dlq])

    def close(self) -> None:
        self.link.close()


__all__ = ["AmqpIntake", "IntakeMessage", "TransportError"]
