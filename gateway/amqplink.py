"""One RabbitMQ link (pika BlockingConnection + one confirm-mode channel) shared by
the AMQP transport, the AMQP intake and the receipt publisher.

What it adds over bare pika:
- the password comes from a secret (string or config `Secret`), never from logs:
  the broker is always shown as the URL without its password;
- reconnects follow an exponential backoff, and while waiting calls fail fast
  with `TransportError(retryable=True)` instead of sleeping;
- pika's exceptions become `TransportError`s that say what to do: lost links are
  retryable, a refused login, a missing queue/exchange or a queue declared with
  other arguments are not;
- un-acked deliveries are tracked per channel "epoch". A delivery tag is only
  meaningful on the channel that delivered it; after a reconnect tags restart at
  1, so acking an old tag would ack a *different* message. `ref()` encodes the
  epoch, and `release()` refuses refs from an earlier epoch (RabbitMQ has already
  put those messages back on the queue; they will be delivered again).

Not thread-safe (pika's BlockingConnection is not): one link per thread.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

import pika
import pika.exceptions as pex

from gateway.redact import Hidden, redact_url, reveal
from gateway.transports.backoff import Backoff
from gateway.transports.base import Check, TransportError

log = logging.getLogger(__name__)

_LINK_ERRORS = (pex.AMQPConnectionError, pex.ChannelWrongStateError, pex.ConnectionWrongStateError,
                pex.StreamLostError, OSError, EOFError)
_REPLY_HINT = {
    403: "access refused: give the user permissions on this vhost/resource",
    404: "not found: declare it, or fix the name in the config",
    406: "precondition failed: it exists with different arguments (durable, x-dead-letter-*); "
         "delete it or make the config match",
}


class AmqpLink:
    def __init__(self, url: str, password=None, connection_name: str = "swgw",
                 connect_timeout: float = 10.0, heartbeat: int = 60,
                 backoff_initial: float = 1.0, backoff_max: float = 60.0,
                 on_channel: Callable[[Any], None] | None = None):
        self.url = url
        self.where = f"amqp {redact_url(url)}"
        self._password = Hidden(password) if isinstance(password, str) else password
        self.connection_name = connection_name
        self.connect_timeout = connect_timeout
        self.heartbeat = heartbeat
        self.on_channel = on_channel
        self.backoff = Backoff(backoff_initial, backoff_max)
        self._last_retryable = True
        self._conn: pika.BlockingConnection | None = None
        self._ch = None
        self.epoch = 0
        self.held: dict[int, Any] = {}        # delivery tag -> what the owner keeps for it

    def __repr__(self) -> str:
        return f"AmqpLink({redact_url(self.url)!r}, connection_name={self.connection_name!r})"

    # ---- parameters ------------------------------------------------------------

    def parameters(self) -> pika.URLParameters:
        url = self.url
        parts = urlsplit(url)
        if parts.username and parts.password is None:     # amqp://user@host: password comes separately
            url = urlunsplit(parts._replace(netloc=parts.netloc.replace("@", ":@", 1)))
        try:
            params = pika.URLParameters(url)
        except Exception as exc:
            raise TransportError(f"{self.where}: bad broker URL ({type(exc).__name__}); expected "
                                 f"amqp://user@host:5672/vhost", retryable=False) from None
        password = reveal(self._password)
        if password is not None:
            params.credentials = pika.PlainCredentials(params.credentials.username, password)
        params.connection_attempts = 1
        params.socket_timeout = self.connect_timeout
        params.stack_timeout = self.connect_timeout * 2
        params.blocked_connection_timeout = max(self.connect_timeout, 30)
        params.heartbeat = self.heartbeat
        params.client_properties = {"connection_name": self.connection_name}
        return params

    # ---- the channel ----------------------------------------------------------------

    def channel(self):
        if self._ch is not None and self._ch.is_open and self._conn is not None and self._conn.is_open:
            return self._ch
        if self._ch is not None or self._conn is not None:
            self.drop()
        wait = self.backoff.wait_left()
        if wait > 0:
            raise TransportError(f"{self.where}: not connected; next attempt in {wait:.1f}s "
                                 f"(after {self.backoff.failures} failures; last: {self.backoff.last_error})",
                                 retryable=self._last_retryable)
        try:
            self._conn, self._ch = self.open()
        except TransportError as exc:
            delay = self.backoff.failed(str(exc))
            self._last_retryable = exc.retryable
            log.warning("%s: connect failed (%s); next attempt in %.1fs", self.where, exc, delay)
            raise
        self.epoch += 1
        self.held.clear()
        if self.backoff.failures:
            log.info("%s: reconnected after %d failures", self.where, self.backoff.failures)
        self.backoff.succeeded()
        return self._ch

    def open(self, declare: bool = True):
        """A fresh connection and a confirm-mode channel with `on_channel` (declarations) applied."""
        params = self.parameters()
        try:
            conn = pika.BlockingConnection(params)
        except (pex.ProbableAuthenticationError, pex.AuthenticationError):
            raise TransportError(f"{self.where}: login refused for user {params.credentials.username!r}; "
                                 f"check the user and its password (env/file)", retryable=False) from None
        except pex.ProbableAccessDeniedError:
            raise TransportError(f"{self.where}: access to vhost {params.virtual_host!r} denied for "
                                 f"{params.credentials.username!r}; grant permissions "
                                 f"(rabbitmqctl set_permissions)", retryable=False) from None
        except _LINK_ERRORS as exc:
            raise TransportError(f"{self.where}: cannot connect: {describe(exc)}; is the broker up?",
                                 retryable=True) from None
        try:
            ch = conn.channel()
            ch.confirm_delivery()
            if self.on_channel and declare:
                self.on_channel(ch)
            return conn, ch
        except BaseException as exc:
            close_quietly(conn)
            if isinstance(exc, pex.ChannelClosedByBroker):
                raise self.broker_error("declaring queues/exchanges", exc) from None
            if isinstance(exc, _LINK_ERRORS):
                raise TransportError(f"{self.where}: connection lost while setting up: {describe(exc)}",
                                     retryable=True) from None
            raise

    def run(self, what: str, fn: Callable[[Any], Any]):
        """Run `fn(channel)`; map failures to TransportError, dropping broken links."""
        ch = self.channel()
        try:
            return fn(ch)
        except pex.UnroutableError:
            raise TransportError(f"{self.where}: {what}: unroutable (no queue is bound for it); "
                                 f"declare/bind the queue or fix the exchange/routing key",
                                 retryable=False) from None
        except pex.NackError:
            raise TransportError(f"{self.where}: {what}: the broker refused the message (nack); "
                                 f"it was not stored, retry later", retryable=True) from None
        except pex.ChannelClosedByBroker as exc:
            self.drop()
            err = self.broker_error(what, exc)
            self.backoff.failed(str(err))
            self._last_retryable = err.retryable
            raise err from None
        except _LINK_ERRORS as exc:
            self.drop()
            delay = self.backoff.failed(f"{what}: {describe(exc)}")
            self._last_retryable = True
            log.warning("%s: connection lost during %s (%s); reconnecting in %.1fs",
                        self.where, what, describe(exc), delay)
            raise TransportError(f"{self.where}: connection lost during {what}: {describe(exc)}; "
                                 f"will reconnect in {delay:.1f}s", retryable=True) from None

    def broker_error(self, what: str, exc: pex.ChannelClosedByBroker) -> TransportError:
        code = getattr(exc, "reply_code", 0)
        hint = _REPLY_HINT.get(code, "")
        return TransportError(f"{self.where}: {what}: broker closed the channel: {code} "
                              f"{getattr(exc, 'reply_text', '')}" + (f" ({hint})" if hint else ""),
                              retryable=code not in _REPLY_HINT)

    def check(self, queues: list[str] = (), exchanges: list[str] = ()) -> list[Check]:
        """Doctor: connect and log in, then each queue (passive declare: exists, depth) and exchange.
        Changes nothing on the broker."""
        try:
            conn, ch = self.open(declare=False)
        except TransportError as exc:
            return [Check(f"{self.where} login", False, str(exc))]
        checks = [Check(f"{self.where} login", True)]
        try:
            for kind, name in [("queue", q) for q in queues] + [("exchange", e) for e in exchanges]:
                try:
                    if kind == "queue":
                        res = ch.queue_declare(name, passive=True)
                        detail = f"{res.method.message_count} messages, {res.method.consumer_count} consumers"
                    else:
                        ch.exchange_declare(name, passive=True)
                        detail = ""
                    checks.append(Check(f"amqp {kind} {name}", True, detail))
                except pex.ChannelClosedByBroker as exc:
                    checks.append(Check(f"amqp {kind} {name}", False, str(self.broker_error("check", exc)) +
                                        "; `swgw run` declares what it uses when it starts"))
                    ch = conn.channel()
        finally:
            close_quietly(conn)
        return checks

    # ---- un-acked deliveries -----------------------------------------------------

    def ref(self, delivery_tag: int) -> str:
        return f"{self.epoch}:{delivery_tag}"

    def release(self, ref: str) -> int | None:
        """The delivery tag for `ref` if it is still held on the current channel."""
        try:
            epoch, tag = (int(x) for x in ref.split(":", 1))
        except ValueError:
            raise TransportError(f"{self.where}: malformed AMQP ref {ref!r}", retryable=False) from None
        if epoch != self.epoch or tag not in self.held or self._ch is None or not self._ch.is_open:
            return None
        return tag

    # ---- shutdown ------------------------------------------------------------------

    def drop(self) -> None:
        conn = self._conn
        self._conn = self._ch = None
        self.held.clear()
        close_quietly(conn)

    close = drop


def persistent(message_id: str, *, content_type: str, correlation_id: str = "", kind: str = "",
               headers: dict | None = None) -> pika.BasicProperties:
    """The properties every message swgw publishes carries: persistent, its id, the business key
    as correlation id (when there is one), content type, kind as `type`, a timestamp, headers."""
    return pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, message_id=message_id,
                                correlation_id=correlation_id or None, content_type=content_type,
                                type=kind or None, timestamp=int(time.time()), headers=headers or {})


def declare_queue(ch, queue: str, dead_letter_exchange: str | None) -> None:
    """A durable queue; with a DLX, also `<queue>.dlq` bound to it for this queue."""
    args = None
    if dead_letter_exchange:
        ch.exchange_declare(dead_letter_exchange, exchange_type="direct", durable=True)
        ch.queue_declare(f"{queue}.dlq", durable=True)
        ch.queue_bind(f"{queue}.dlq", dead_letter_exchange, routing_key=queue)
        args = {"x-dead-letter-exchange": dead_letter_exchange, "x-dead-letter-routing-key": queue}
    ch.queue_declare(queue, durable=True, arguments=args)


def describe(exc: BaseException) -> str:
    if isinstance(exc, pex.ConnectionClosedByBroker):
        return f"closed by broker: {exc.reply_code} {exc.reply_text}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc)
    if isinstance(exc, pex.AMQPConnectionError) and exc.args:
        inner = exc.args[0]
        text = str(inner) if not isinstance(inner, BaseException) else describe(inner)
    return text or type(exc).__name__


def close_quietly(conn) -> None:
    """Close a pika connection if it is open; a link already gone raises nothing."""
    if conn is None:
        return
    try:
        if conn.is_open:
            conn.close()
    except Exception:
        pass
