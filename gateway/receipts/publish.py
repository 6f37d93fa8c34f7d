"""Receipts out to RabbitMQ: a durable topic exchange for receipt consumers.

Routing key `<type>.<receipt-kind>.<enterprise-code>`, e.g.
`declaration.dec-result.91210200MA0QXXXX1X`; consumers bind what they want
(`declaration.#`, `*.*.91210200MA0QXXXX1X`, `*.dec-result.*`). Each message is
persistent and published with publisher confirms; properties carry message_id
(unique per receipt), correlation_id (the business key, e.g. ClientSeqNo),
content_type, type (the receipt kind) and headers doc_type / receipt_kind /
enterprise plus any extra headers.

With `mandatory=True` a receipt nobody is bound to raises a non-retryable
TransportError; by default it is accepted and dropped by the broker (the receipt
is in the store and the outbox folder either way).
"""
from __future__ import annotations

import logging


from gateway.amqplink import AmqpLink, persistent

log = logging.getLogger(__name__)

_BAD_SEGMENT = set(".*#")


def routing_key(doc_type: str, receipt_kind: str, enterprise_code: str) -> str:
    parts = (doc_type, receipt_kind, enterprise_code)
    for label, part in zip(("document type", "receipt kind", "enterprise code"), parts):
        if not part or _BAD_SEGMENT & set(part) or any(c.isspace() for c in part):
            raise ValueError(f"{label} {part!r} cannot be a routing-key segment "
                             f"(must be non-empty, without '.', '*', '#' or spaces)")
    return ".".join(parts)


class ReceiptPublisher:
    def __init__(self, url: str, exchange: str = "swgw.receipts", password=None,
                 mandatory: bool = False, declare: bool = True,
                 connection_name: str = "swgw-receipts", connect_timeout: float = 10.0,
                 heartbeat: int = 60, backoff_initial: float = 1.0, backoff_max: float = 60.0):
        self.exchange = exchange
        self.mandatory = mandatory
        self.declare = declare
        self.link = AmqpLink(url, password=password, connection_name=connection_name,
                             connect_timeout=connect_timeout, heartbeat=heartbeat,
                             backoff_initial=backoff_initial, backoff_max=backoff_max,
                             on_channel=self._declare)

    def __repr__(self) -> str:
        return f"ReceiptPublisher({self.link.where!r}, exchange={self.exchange!r})"

    def _declare(self, ch) -> None:
        if self.declare:
            ch.exchange_declare(self.exchange, exchange_type="topic", durable=True)

    def publish(self, doc_type: str, receipt_kind: str, enterprise_code: str, body: bytes, *,
                message_id: str, business_key: str = "", content_type: str = "application/xml",
                headers: dict | None = None) -> str:
        """Publish one receipt; returns the routing key. Raises TransportError."""
        key = routing_key(doc_type, receipt_kind, enterprise_code)
        h = dict(headers or {})
        h.update(doc_type=doc_type, receipt_kind=receipt_kind, enterprise=enterprise_code)
        props = persistent(message_id, correlation_id=business_key, content_type=content_type, kind=receipt_kind,
                           headers=h)
        self.link.run(f"publish receipt {message_id} to exchange {self.exchange!r} key {key!r}",
                      lambda ch: ch.basic_publish(self.exchange, key, body, props,
                                                  mandatory=self.mandatory))
        return key

    def check(self):
        """Doctor: login and the receipt exchange."""
        return self.link.check(exchanges=[self.exchange])

    def close(self) -> None:
        self.link.close()
