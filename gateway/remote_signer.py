"""A Signer whose card is in another host: `[signers.NAME] kind = "remote"`.

The card host runs `swgw signer` (gateway/signer_agent.py). This side

- keeps one RabbitMQ connection on its own thread: it consumes the agent's heartbeats
  (exchange `swgw.signers`, key `heartbeat.<media no>`) and the replies to this process
  (an exclusive, server-named reply queue), and reconnects after the broker goes away;
- `info()`/`certificate()` answer from the last authentic heartbeat whose certificate is
  trusted (pinned `cert_file`, or issued by `ca_file`); no fresh heartbeat → `AgentAway`
  (a CardAbsent: the message stays prepared and goes when the agent is back);
- `sign(data)` publishes one persistent request (HMAC-sealed, deadline = now + request_timeout,
  the same as its AMQP expiration) to the durable queue `swgw.sign.<media no>` and waits for
  the reply with its correlation id. No reply in time → AgentAway. The signature in a reply is
  verified against the card's certificate before it is returned: a bad one is refused
  (`SignatureRefused`, the message fails and nothing is sent).

The secret and the broker password never appear in a log line, an error or a repr.
"""
from __future__ import annotations

import base64
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pika

from card import crypto
from card.signer import (ECDSA_SHA256, RSA_SHA1, SM2_SM3, CardAbsent, CardInfo, CardMismatch, PinError, Signer,
                         SignerError, current_purpose)
from gateway import health, signer_wire as wire
from gateway.amqplink import AmqpLink, close_quietly, describe
from gateway.log import get_logger
from gateway.redact import Hidden, reveal

log = get_logger("remote-signer")
_ALGORITHM = {"sm2": SM2_SM3, "rsa": RSA_SHA1, "ec": ECDSA_SHA256}


class AgentAway(CardAbsent):
    """The card host does not answer (no heartbeat, no reply): the message waits unsigned.
    `since`: when the agent was last heard of (epoch seconds)."""

    def __init__(self, message: str, since: float):
        super().__init__(message)
        self.since = since


class SignatureRefused(SignerError):
    """The agent's reply does not carry a valid signature of the card over the bytes sent."""


@dataclass
class _Slot:
    done: threading.Event = field(default_factory=threading.Event)
    reply: dict | None = None
    error: SignerError | None = None


@dataclass(frozen=True)
class Trust:
    """Which card certificates this gateway accepts from the agent."""

    cert_file: Path | None = None   # exactly this certificate (pinned)
    ca_file: Path | None = None     # any certificate issued by this CA

    def check(self, cert: bytes) -> None:
        if self.cert_file is not None:
            if crypto.to_der(self.cert_file.read_bytes()) != cert:
                raise SignerError(f"the card's certificate is not the one pinned in {self.cert_file}")
            return
        if self.ca_file is None:
            raise SignerError("no cert_file or ca_file configured: no certificate is trusted")
        try:
            crypto.verify_issued_by(cert, self.ca_file.read_bytes())
        except crypto.InvalidSignature:
            raise SignerError(f"the card's certificate is not issued by the CA in {self.ca_file}") from None


class RemoteSigner(Signer):
    def __init__(self, name: str, *, url: str, media_no: str, enterprise: str, secret: str, trust: Trust,
                 password=None, request_timeout: float = 30.0, heartbeat_timeout: float = 15.0,
                 first_heartbeat_wait: float = 3.0, connection_name: str = "swgw-remote-signer"):
        if not secret:
            raise SignerError(f"signer {name}: no HMAC secret (set the env variable or file named by `secret`)")
        self.name = name
        self.media_no = media_no
        self.enterprise = enterprise
        self._key = Hidden(secret)
        self.trust = trust
        self.request_timeout = request_timeout
        self.heartbeat_timeout = heartbeat_timeout
        self.first_heartbeat_wait = first_heartbeat_wait
        self._link = AmqpLink(url, password=password, connection_name=f"{connection_name}-{name}")
        self._pending: dict[str, _Slot] = {}
        self._lock = threading.Lock()
        self._beat: dict | None = None        # the last authentic, trusted heartbeat
        self._beat_seen = 0.0                 # monotonic time it arrived
        self._beat_event = threading.Event()
        self._cert: bytes | None = None
        self._algorithm = SM2_SM3
        self._problem = ""                    # why the last heartbeat was not accepted
        self._heard = time.time()             # when the agent was last heard of (start: now)
        self._away_noted = False
        self._conn = None
        self._ch = None
        self._reply_queue = ""
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name=f"remote-signer-{name}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"RemoteSigner({self.name!r}, media_no={self.media_no!r}, {self._link!r})"

    @property
    def key(self) -> bytes:
        return (reveal(self._key) or "").encode()

    # -- the Signer interface --------------------------------------------------------
    @property
    def algorithm(self) -> str:  # type: ignore[override]
        return self._algorithm   # the card certificate's, from its heartbeat

    def info(self) -> CardInfo:
        beat = self._fresh_beat()
        state, detail = beat["state"], beat.get("detail", "")
        where = f"card {self.media_no} on agent {beat.get('agent', '?')}"
        if state == "halted":
            raise PinError(f"{where} halted: {detail}")
        if state != "present":
            raise CardAbsent(f"{where} reports the card {state}: {detail}")
        i = beat.get("info") or {}
        age = time.monotonic() - self._beat_seen
        return CardInfo(i.get("media_no", ""), i.get("holder", ""), i.get("enterprise_code", ""),
                        i.get("cert_no", ""), f"card host {beat.get('agent', '?')} (heartbeat {age:.0f}s ago)")

    def certificate(self) -> bytes:
        self._fresh_beat()
        assert self._cert is not None
        return self._cert

    def sign(self, data: bytes) -> bytes:
        purpose = current_purpose()
        if purpose is None:
            raise SignerError(f"signer {self.name}: a remote signature needs its enterprise and business key")
        self.info()
        cert = self._cert
        corr = uuid.uuid4().hex
        body, _deadline = wire.request(correlation_id=corr, media_no=self.media_no, enterprise=purpose.enterprise,
                                       business_key=purpose.business_key, data=data,
                                       timeout=self.request_timeout, key=self.key)
        slot = _Slot()
        with self._lock:
            conn, ch, reply_to = self._conn, self._ch, self._reply_queue
            if conn is None:
                raise AgentAway(f"signer {self.name}: no broker connection; the message waits", self._heard)
            self._pending[corr] = slot
        props = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, correlation_id=corr,
                                     message_id=corr, reply_to=reply_to, content_type=wire.CONTENT_TYPE,
                                     expiration=str(int(self.request_timeout * 1000)), timestamp=int(time.time()),
                                     headers={"business_key": purpose.business_key})

        def publish():   # persistent, without waiting for the broker's confirm (its disk write): a
            try:         # request lost before the agent took it is a missing reply, which the deadline covers
                ch.basic_publish("", wire.queue_name(self.media_no), body, props)
            except Exception as exc:  # the link is gone or the broker refused: the reply never comes
                slot.error = AgentAway(f"signer {self.name}: request not published ({describe(exc)})", self._heard)
                slot.done.set()

        try:
            try:
                conn.add_callback_threadsafe(publish)
            except Exception as exc:
                raise AgentAway(f"signer {self.name}: broker link lost ({describe(exc)})", self._heard) from None
            if not slot.done.wait(self.request_timeout):
                raise AgentAway(f"card {self.media_no}: its agent did not answer within {self.request_timeout:g}s; "
                                f"the message waits unsigned", self._heard)
        finally:
            with self._lock:
                self._pending.pop(corr, None)
        if slot.error is not None:
            raise slot.error
        return self._accept(slot.reply, data, purpose.business_key, cert)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    # -- replies ---------------------------------------------------------------------
    def _accept(self, reply: dict, data: bytes, business_key: str, cert: bytes) -> bytes:
        where = f"card {self.media_no}"
        if reply.get("sha256") != wire.sha256_hex(data) or reply.get("business_key") != business_key:
            raise SignatureRefused(f"{where}: the reply is for other bytes or another message: refused")
        kind, error = reply.get("error_kind", ""), reply.get("error", "")
        if kind == "pin":
            raise PinError(f"{where} (remote): {error}")
        if kind == "absent":
            raise CardAbsent(f"{where} (remote): {error}")
        if kind == "mismatch":
            raise CardMismatch(f"{where} (remote): {error}")
        if kind:
            raise SignerError(f"{where}: the agent did not sign ({kind}): {error}")
        try:
            signature = base64.b64decode(reply.get("signature", ""), validate=True)
            crypto.verify(self.algorithm, cert, data, signature)
        except (ValueError, crypto.InvalidSignature) as exc:
            log.error("remote signature refused", signer=self.name, media_no=self.media_no, reason=str(exc)[:200])
            raise SignatureRefused(f"{where}: the returned signature does not verify against the card's "
                                   f"certificate ({exc}): refused, nothing was sent") from None
        return signature

    # -- heartbeats ------------------------------------------------------------------
    def _fresh_beat(self) -> dict:
        if self._beat is None and time.monotonic() - self._started < self.first_heartbeat_wait:
            self._beat_event.wait(self.first_heartbeat_wait - (time.monotonic() - self._started))
        beat = self._beat
        if beat is None:
            why = f" (last heartbeat refused: {self._problem})" if self._problem else ""
            raise AgentAway(f"card {self.media_no}: no heartbeat from its agent yet{why}; the message waits",
                            self._heard)
        age = time.monotonic() - self._beat_seen
        if age > self.heartbeat_timeout:
            raise AgentAway(f"card {self.media_no}: its agent is away (last heartbeat {age:.0f}s ago); "
                            f"the message waits", self._heard)
        return beat

    def _on_heartbeat(self, ch, method, props, body) -> None:
        try:
            beat = wire.open_(wire.HEARTBEAT, body, self.key)
            if beat.get("media_no") != self.media_no:
                raise wire.WireError(f"heartbeat for card {beat.get('media_no')!r}")
            cert = base64.b64decode(beat.get("certificate") or "")
            if beat.get("state") == "present" or cert:
                if not cert:
                    raise wire.WireError("a present card without certificate")
                if cert != self._cert:
                    self.trust.check(cert)
            info = beat.get("info") or {}
            if info and info.get("media_no") not in ("", self.media_no):
                raise wire.WireError(f"the agent's card is {info.get('media_no')!r}")
        except (wire.WireError, SignerError, ValueError, OSError) as exc:
            if str(exc) != self._problem:
                log.warning("heartbeat refused", signer=self.name, media_no=self.media_no, reason=str(exc)[:200])
            self._problem = str(exc)
            return
        self._problem = ""
        if cert and cert != self._cert:
            self._algorithm = _ALGORITHM.get(crypto.summary(cert).key_algorithm, SM2_SM3)
            self._cert = cert
        self._beat, self._beat_seen, self._heard = beat, time.monotonic(), time.time()
        self._away_noted = False
        self._beat_event.set()
        detail = f"on {beat.get('agent', '?')}" + (f": {beat['detail']}" if beat.get("detail") else "")
        health.signer(self.name, beat.get("state", "absent"), detail)

    def _note_away(self) -> None:
        if self._beat is not None and not self._away_noted and \
                time.monotonic() - self._beat_seen > self.heartbeat_timeout:
            self._away_noted = True
            health.signer(self.name, "absent", f"agent away: no heartbeat for {self.heartbeat_timeout:g}s")

    def _on_reply(self, ch, method, props, body) -> None:
        try:
            reply = wire.open_(wire.REPLY, body, self.key)
        except wire.WireError as exc:
            log.warning("reply refused", signer=self.name, reason=str(exc))
            slot = self._pending.get(getattr(props, "correlation_id", "") or "")
            if slot is not None:   # a forged answer to a waiting request: refuse the request
                slot.error = SignatureRefused(f"card {self.media_no}: the reply is not authentic ({exc}): refused")
                slot.done.set()
            return
        self._heard = time.time()
        with self._lock:
            slot = self._pending.get(reply.get("correlation_id", ""))
        if slot is None:   # an answer to a request given up (timed out): the message is signed again later
            return
        slot.reply = reply
        slot.done.set()

    # -- the connection thread --------------------------------------------------------
    def _declare(self, ch) -> str:
        ch.exchange_declare(wire.HEARTBEAT_EXCHANGE, exchange_type="topic", durable=True)
        ch.exchange_declare(wire.REPLY_EXCHANGE, exchange_type="direct", durable=True)
        ch.queue_declare(wire.queue_name(self.media_no), durable=True)   # requests wait here for the agent
        beats = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        ch.queue_bind(beats, wire.HEARTBEAT_EXCHANGE, routing_key=wire.heartbeat_key(self.media_no))
        replies = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        ch.queue_bind(replies, wire.REPLY_EXCHANGE, routing_key=replies)
        ch.basic_consume(beats, self._on_heartbeat, auto_ack=True)
        ch.basic_consume(replies, self._on_reply, auto_ack=True)
        return replies

    def _loop(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            conn = None
            try:
                conn, ch = self._link.open(declare=False)
                replies = self._declare(ch)
                requests = conn.channel()   # no publisher confirms: see sign()
                with self._lock:
                    self._conn, self._ch, self._reply_queue = conn, requests, replies
                delay = 0.5
                while not self._stop.is_set():
                    conn.process_data_events(time_limit=0.25)
                    self._note_away()
            except Exception as exc:
                log.warning("remote signer link lost; reconnecting", signer=self.name, error=describe(exc)[:200],
                            retry_in=delay)
            finally:
                with self._lock:
                    self._conn = self._ch = None
                    waiting = list(self._pending.values())
                for slot in waiting:   # their replies went with the reply queue
                    slot.error = AgentAway(f"card {self.media_no}: the broker link was lost while signing; "
                                           f"the message waits", self._heard)
                    slot.done.set()
                close_quietly(conn)
            if not self._stop.is_set():
                self._note_away()
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)
