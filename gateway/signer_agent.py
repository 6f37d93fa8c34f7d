"""`swgw signer`: serve one card on this host to the central gateway over RabbitMQ.

The agent opens its card (PC/SC or a software key, `[card]` in signer.toml), consumes its own
durable queue `swgw.sign.<media no>` (prefetch 1, manual ack after the reply is published) and
publishes a heartbeat with the card's state every `heartbeat_interval` seconds. It needs the
broker only, never the gateway's database.

A request is signed only when it is authentic (HMAC under the shared secret), for this card and
its enterprise, before its deadline and not seen before (the nonces are kept in
`state_dir/nonces.sqlite` until their deadline, across restarts). A request the broker delivers
again after the agent died mid-request is answered again (with the signature already made, if
there is one) — that is not a replay. Every signature is appended to `state_dir/audit.jsonl`
(time, business key, enterprise, SHA-256 of the signed bytes); so is every refusal.

A refused PIN halts the agent: it answers that request with the PIN error (the gateway halts its
signing and raises the alarm, as for a local card), stops consuming and heartbeats `halted` until
it is restarted. The secret, the PIN and the broker password are never logged.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path

import pika

from card.signer import CardAbsent, CardMismatch, PinError, Signer, SignerError
from gateway import signer_wire as wire
from gateway.amqplink import AmqpLink, close_quietly, describe
from gateway.config import SignerFile
from gateway.log import get_logger
from gateway.redact import Hidden, reveal

log = get_logger("signer-agent")


class Nonces:
    """Request nonces seen, until their deadline (+ a minute): the replay guard."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")   # WAL: a commit survives the agent's crash (kill -9)
        self._purged = 0.0
        self._db.execute("CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, deadline REAL NOT NULL, "
                         "signature BLOB)")

    def claim(self, nonce: str, deadline: float, redelivered: bool) -> tuple[str, bytes | None]:
        """'new', 'again' (redelivered, not signed yet), 'signed' (redelivered, with its signature)
        or 'replayed'."""
        if time.monotonic() - self._purged > 30:
            self._db.execute("DELETE FROM nonces WHERE deadline < ?", (time.time() - 60,))
            self._purged = time.monotonic()
        row = self._db.execute("SELECT signature FROM nonces WHERE nonce = ?", (nonce,)).fetchone()
        if row is None:
            self._db.execute("INSERT INTO nonces (nonce, deadline) VALUES (?, ?)", (nonce, deadline))
            return "new", None
        if not redelivered:
            return "replayed", None
        return ("signed", row[0]) if row[0] else ("again", None)

    def signed(self, nonce: str, signature: bytes) -> None:
        self._db.execute("UPDATE nonces SET signature = ? WHERE nonce = ?", (signature, nonce))

    def close(self) -> None:
        self._db.close()


class AuditLog:
    """One JSON line per signature made or request refused, fsynced."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path

    def write(self, **record) -> None:
        record = {"at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"), **record}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())


class Agent:
    def __init__(self, cfg: SignerFile, signer: Signer):
        self.cfg = cfg
        self.signer = signer
        self.media_no = cfg.card.media_no
        self.enterprises = {cfg.card.enterprise}
        secret = cfg.agent.secret.read()
        if not secret:
            raise SignerError("[agent] secret: no HMAC secret in the env variable or file it names")
        self._key = Hidden(secret)
        self.name = cfg.agent.name or socket.gethostname()
        self.nonces = Nonces(cfg.agent.state_dir / "nonces.sqlite")
        self.audit = AuditLog(cfg.agent.state_dir / "audit.jsonl")
        self.halted = ""
        self.signed = 0
        self._link = AmqpLink(cfg.agent.url, password=cfg.agent.password,
                              connection_name=f"swgw-signer-{self.media_no}")
        self._consumer = None
        self._next_beat = 0.0

    @property
    def key(self) -> bytes:
        return (reveal(self._key) or "").encode()

    # -- the card ------------------------------------------------------------------------
    def card_state(self) -> tuple[str, str, dict, bytes | None]:
        if self.halted:
            return "halted", self.halted, {}, None
        try:
            info = self.signer.info()
            cert = self.signer.certificate()
        except PinError as exc:
            self.halted = f"PIN refused: {exc}"
            return "halted", self.halted, {}, None
        except SignerError as exc:
            return "absent", str(exc), {}, None
        self.enterprises.add(info.enterprise_code)
        return "present", "", {"media_no": info.media_no, "holder": info.holder,
                               "enterprise_code": info.enterprise_code, "cert_no": info.cert_no}, cert

    def heartbeat(self) -> bytes:
        state, detail, info, cert = self.card_state()
        return wire.heartbeat(media_no=self.media_no, state=state, detail=detail, info=info, certificate=cert,
                              algorithm=self.signer.algorithm if cert else "", agent=self.name, key=self.key)

    # -- one request ----------------------------------------------------------------------
    def handle(self, body: bytes, redelivered: bool = False, correlation_id: str = "") -> bytes:
        """The reply to one request body (always one: a refusal says why)."""
        fields = {"correlation_id": correlation_id, "business_key": "", "sha256": ""}
        try:
            fields = wire.open_(wire.REQUEST, body, self.key)
            return self._sign(fields, redelivered)
        except (wire.WireError, _Refused) as exc:
            self.audit.write(result="refused", reason=str(exc), correlation_id=fields.get("correlation_id", ""),
                             business_key=fields.get("business_key", ""), sha256=fields.get("sha256", ""))
            log.warning("signing request refused", media_no=self.media_no, reason=str(exc),
                        business_key=fields.get("business_key", ""))
            return self._reply(fields, error_kind="refused", error=str(exc))

    def _sign(self, f: dict, redelivered: bool) -> bytes:
        if f.get("media_no") != self.media_no:
            raise _Refused(f"request for card {f.get('media_no')!r}, this is card {self.media_no}")
        if f.get("enterprise") not in self.enterprises:
            raise _Refused(f"request for enterprise {f.get('enterprise')!r}: this card signs only for "
                           f"{', '.join(sorted(self.enterprises))}")
        deadline = f.get("deadline")
        if not isinstance(deadline, (int, float)) or time.time() > deadline:
            raise _Refused("the request is past its deadline")
        nonce = f.get("nonce")
        if not isinstance(nonce, str) or len(nonce) < 16:
            raise _Refused("the request has no nonce")
        data = wire.request_data(f)
        seen, signature = self.nonces.claim(nonce, float(deadline), redelivered)
        if seen == "replayed":
            raise _Refused("replayed: this request's nonce was seen before")
        if seen == "signed":   # delivered again after a restart: the same answer, the card does not sign again
            return self._reply(f, signature=signature)
        if self.halted:
            return self._reply(f, error_kind="pin", error=self.halted)
        try:
            signature = self.signer.sign(data)
        except PinError as exc:
            self.halted = f"PIN refused: {exc}"
            log.error("PIN refused: this agent stops signing until it is restarted", media_no=self.media_no,
                      tries_left=exc.tries_left)
            return self._reply(f, error_kind="pin", error=str(exc))
        except CardAbsent as exc:
            return self._reply(f, error_kind="absent", error=str(exc))
        except CardMismatch as exc:
            return self._reply(f, error_kind="mismatch", error=str(exc))
        except SignerError as exc:
            return self._reply(f, error_kind="error", error=str(exc))
        self.nonces.signed(nonce, signature)
        self.audit.write(result="signed", correlation_id=f["correlation_id"], enterprise=f["enterprise"],
                         business_key=f["business_key"], sha256=f["sha256"])
        self.signed += 1
        return self._reply(f, signature=signature)

    def _reply(self, f: dict, signature: bytes | None = None, error_kind: str = "", error: str = "") -> bytes:
        return wire.reply(correlation_id=str(f.get("correlation_id", "")), media_no=self.media_no,
                          business_key=str(f.get("business_key", "")), sha256=str(f.get("sha256", "")),
                          signature=signature, error_kind=error_kind, error=error, key=self.key)

    # -- the broker ----------------------------------------------------------------------
    def _on_request(self, ch, method, props, body) -> None:
        try:
            reply = self.handle(body, redelivered=bool(method.redelivered), correlation_id=props.correlation_id or "")
        except Exception as exc:   # the agent's own trouble (its disk): answer, never loop on the request
            log.error("request not handled", media_no=self.media_no, error=f"{type(exc).__name__}: {exc}"[:300])
            reply = self._reply({"correlation_id": props.correlation_id or ""}, error_kind="error",
                                error=f"the card host could not handle the request ({type(exc).__name__})")
        if props.reply_to:
            ch.basic_publish(wire.REPLY_EXCHANGE, props.reply_to, reply,
                             pika.BasicProperties(correlation_id=props.correlation_id, content_type=wire.CONTENT_TYPE))
        ch.basic_ack(method.delivery_tag)   # after the reply is published (and confirmed)
        if self.halted and self._consumer:
            ch.basic_cancel(self._consumer)  # requests wait in the queue until an operator restarts the agent
            self._consumer = None

    def _beat(self, ch) -> None:
        if time.monotonic() < self._next_beat:
            return
        self._next_beat = time.monotonic() + self.cfg.agent.heartbeat_interval
        ch.basic_publish(wire.HEARTBEAT_EXCHANGE, wire.heartbeat_key(self.media_no), self.heartbeat(),
                         pika.BasicProperties(content_type=wire.CONTENT_TYPE,
                                              expiration=str(int(self.cfg.agent.heartbeat_interval * 3000))))

    def run(self, stop: threading.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            conn = None
            try:
                conn, ch = self._link.open(declare=False)
                _declare_exchanges(conn)
                ch.queue_declare(wire.queue_name(self.media_no), durable=True)
                ch.basic_qos(prefetch_count=1)
                self._next_beat = 0.0
                self._beat(ch)
                if not self.halted:
                    self._consumer = ch.basic_consume(wire.queue_name(self.media_no), self._on_request,
                                                      auto_ack=False)
                log.info("serving card", media_no=self.media_no, queue=wire.queue_name(self.media_no),
                         broker=self._link.where)
                delay = 0.5
                while not stop.is_set():
                    conn.process_data_events(time_limit=0.2)
                    self._beat(ch)
            except Exception as exc:
                if stop.is_set():
                    break
                log.warning("broker link lost; reconnecting", media_no=self.media_no, error=describe(exc)[:200],
                            retry_in=delay)
            finally:
                self._consumer = None
                close_quietly(conn)
            stop.wait(delay)
            delay = min(delay * 2, 10.0)

    def close(self) -> None:
        self.nonces.close()
        self.signer.close()


def _declare_exchanges(conn) -> None:
    """The heartbeat and reply exchanges, if this broker user may declare them; the central gateway
    declares them anyway (a card host's user has no configure right on them: README)."""
    try:
        ch = conn.channel()
        ch.exchange_declare(wire.HEARTBEAT_EXCHANGE, exchange_type="topic", durable=True)
        ch.exchange_declare(wire.REPLY_EXCHANGE, exchange_type="direct", durable=True)
        ch.close()
    except pika.exceptions.ChannelClosedByBroker:
        pass


class _Refused(Exception):
    """A request this agent will not sign."""


def open_agent(cfg: SignerFile) -> Agent:
    from gateway.runtime import open_signer

    return Agent(cfg, open_signer(cfg, f"card {cfg.card.media_no}", cfg.card))
