"""Publishing lifecycle messages (alarms, subscription copies) to durable RabbitMQ queues,
with publisher confirms, over the shared AmqpLink (password from a secret, never logged).

One link per process, guarded by a lock: the main loop (subscriptions) and the scheduler's
threads (alarms from the deadline sweep) both publish.
"""
from __future__ import annotations

import threading


from gateway.amqplink import AmqpLink, persistent
from gateway.transports.base import TransportError


class QueuePublisher:
    def __init__(self, url: str, password=None, connection_name: str = "swgw-lifecycle"):
        self.link = AmqpLink(url, password=password, connection_name=connection_name, connect_timeout=5.0,
                             backoff_initial=1.0, backoff_max=30.0)
        self._declared: set[str] = set()
        self._lock = threading.Lock()

    def publish(self, queue: str, body: bytes, *, message_id: str, content_type: str,
                correlation_id: str = "", kind: str = "", headers: dict | None = None) -> None:
        """Publish one persistent message to `queue` (declared durable). Raises TransportError."""
        props = persistent(message_id, correlation_id=correlation_id, content_type=content_type, kind=kind,
                           headers=headers)

        def send(ch):
            if (self.link.epoch, queue) not in self._declared:
                ch.queue_declare(queue, durable=True)
                self._declared.add((self.link.epoch, queue))
            ch.basic_publish("", queue, body, props, mandatory=True)

        with self._lock:
            self.link.run(f"publish {kind or 'message'} {message_id} to queue {queue!r}", send)

    def close(self) -> None:
        with self._lock:
            self.link.close()


_publishers: dict[int, QueuePublisher] = {}
_guard = threading.Lock()


def publisher(rt) -> QueuePublisher:
    """The process's publisher for [lifecycle.amqp]; TransportError if it is not configured."""
    cfg = rt.config.lifecycle.amqp
    if cfg is None:
        raise TransportError(f"{rt.config.source}: queues need [lifecycle.amqp] (url, password)", retryable=False)
    with _guard:
        pub = _publishers.get(id(rt))
        if pub is None:
            pub = _publishers[id(rt)] = QueuePublisher(cfg.url, password=cfg.password.read() if cfg.password
                                                       else None)
        return pub


def close(rt) -> None:
    with _guard:
        pub = _publishers.pop(id(rt), None)
    if pub:
        pub.close()
