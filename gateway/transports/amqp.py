"""AMQP transport (RabbitMQ via pika): envelopes out to a queue, receipts in from another.

send: a persistent message, published with publisher confirms, so `send` returns
only once the broker has taken responsibility for it (mandatory: an unroutable
message is an error, not a silent drop). Properties: message_id = item.name,
correlation_id = item.business_key, type = doc_type, content_type (default
application/xml, or item.headers["content_type"]), headers cop_msg_id, doc_type
and the item's other headers. Either to `outgoing_queue` (default exchange) or
to `exchange` + `routing_key`.

receive: `basic_get` with manual ack. Messages stay un-acked (held) until `ack`;
`receive` returns the held ones again before fetching new ones, so like the folder
transport it "does not remove". At most `prefetch` messages are held at a time.
`Incoming.ref` is "<channel epoch>:<delivery tag>"; `Incoming.name` is the
message_id (or sha256-<hash> when the sender set none); `meta` carries
message_id, correlation_id, content_type, headers, redelivered.

At-least-once: if the connection drops, RabbitMQ redelivers every un-acked
message; `ack` of a ref from before the reconnect is a logged no-op (never an ack
of some other message), and the gateway drops the redelivery by content hash.
A `send` whose confirm was lost may be published twice; the peer drops true
duplicates by CopMsgId.

Queues are declared durable with a dead-letter exchange (`dead_letter_exchange`,
default `swgw.dlx`) and a `<queue>.dlq` each; a received message bigger than
`max_bytes` is rejected into that DLQ (with a warning) instead of blocking the
queue. The sandbox peer opens this class with the two queues swapped; both sides
declare the same queues with the same arguments.
"""
from __future__ import annotations

import hashlib
import logging


from gateway.amqplink import AmqpLink, declare_queue, persistent
from gateway.transports.base import Check, Incoming, Outgoing, Transport

log = logging.getLogger(__name__)


class AmqpTransport(Transport):
    def __init__(self, url: str, incoming_queue: str, outgoing_queue: str | None = None,
                 exchange: str = "", routing_key: str | None = None, password=None,
                 prefetch: int = 100, dead_letter_exchange: str | None = "swgw.dlx",
                 declare: bool = True, connection_name: str = "swgw-transport",
                 connect_timeout: float = 10.0, heartbeat: int = 60,
                 backoff_initial: float = 1.0, backoff_max: float = 60.0,
                 max_bytes: int = 50 * 1024 * 1024, name: str = "amqp"):
        if outgoing_queue and exchange:
            raise ValueError("give outgoing_queue or exchange + routing_key, not both")
        if not outgoing_queue and not (exchange and routing_key):
            raise ValueError("amqp transport needs outgoing_queue, or exchange and routing_key")
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        self.name = name
        self.incoming_queue = incoming_queue
        self.outgoing_queue = outgoing_queue
        self.exchange = exchange
        self.routing_key = routing_key if exchange else outgoing_queue
        self.prefetch = prefetch
        self.dead_letter_exchange = dead_letter_exchange
        self.declare = declare
        self.max_bytes = max_bytes
        self.link = AmqpLink(url, password=password, connection_name=connection_name,
                             connect_timeout=connect_timeout, heartbeat=heartbeat,
                             backoff_initial=backoff_initial, backoff_max=backoff_max,
                             on_channel=self._declare)

    def __repr__(self) -> str:
        out = self.outgoing_queue or f"{self.exchange}/{self.routing_key}"
        return f"AmqpTransport({self.link.where!r}, outgoing={out!r}, incoming={self.incoming_queue!r})"

    def _declare(self, ch) -> None:
        if not self.declare:
            return
        declare_queue(ch, self.incoming_queue, self.dead_letter_exchange)
        if self.outgoing_queue:
            declare_queue(ch, self.outgoing_queue, self.dead_letter_exchange)

    # ---- the Transport interface ----------------------------------------------------

    def send(self, item: Outgoing) -> None:
        headers = {k: v for k, v in item.headers.items() if k != "content_type"}
        headers.update(cop_msg_id=item.cop_msg_id, doc_type=item.doc_type)
        props = persistent(item.name, correlation_id=item.business_key, kind=item.doc_type, headers=headers,
                           content_type=item.headers.get("content_type", "application/xml"))
        where = f"publish {item.name} to {self.outgoing_queue or f'exchange {self.exchange!r} key {self.routing_key!r}'}"
        self.link.run(where, lambda ch: ch.basic_publish(self.exchange, self.routing_key, item.data,
                                                         props, mandatory=True))

    def receive(self, limit: int = 100) -> list[Incoming]:
        def fetch(ch) -> list[Incoming]:
            out = list(self.link.held.values())[:limit]
            room = min(limit - len(out), self.prefetch - len(self.link.held))
            while room > 0:
                method, props, body = ch.basic_get(self.incoming_queue, auto_ack=False)
                if method is None:
                    break
                tag = method.delivery_tag
                if len(body) > self.max_bytes:
                    log.warning("%s: message %s on %s is %d bytes, over the limit of %d; "
                                "rejected to the dead-letter queue", self.link.where,
                                props.message_id, self.incoming_queue, len(body), self.max_bytes)
                    ch.basic_reject(tag, requeue=False)
                    continue
                name = props.message_id or "sha256-" + hashlib.sha256(body).hexdigest()[:32]
                inc = Incoming(ref=self.link.ref(tag), name=name, data=body, meta={
                    "message_id": props.message_id, "correlation_id": props.correlation_id,
                    "content_type": props.content_type, "type": props.type,
                    "headers": dict(props.headers or {}), "redelivered": method.redelivered,
                    "queue": self.incoming_queue})
                self.link.held[tag] = inc
                out.append(inc)
                room -= 1
            return out

        return self.link.run(f"get from queue {self.incoming_queue}", fetch)

    def ack(self, ref: str) -> None:
        tag = self.link.release(ref)
        if tag is None:
            log.info("%s: ack of %s skipped: not held on the current channel (already acked, or "
                     "the connection was reset and RabbitMQ will redeliver it)", self.link.where, ref)
            return
        self.link.run(f"ack {ref} on queue {self.incoming_queue}", lambda ch: ch.basic_ack(tag))
        self.link.held.pop(tag, None)

    def check(self) -> list[Check]:
        """Doctor: connect and log in, then each queue (passive declare: exists, depth)."""
        return self.link.check([self.incoming_queue] + ([self.outgoing_queue] if self.outgoing_queue else []),
                               [self.exchange] if self.exchange else [])

    def close(self) -> None:
        self.link.close()
