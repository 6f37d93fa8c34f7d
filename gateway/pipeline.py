"""The outbound stages and the receipt stages, as plain functions over the store.

    (awaiting-licence --licences-->) prepared --sign--> signed --transmit--> sent
        ⇢  receive --> (state follows) --> route

Each stage takes a batch of messages in one state, does its work, and commits the
next state with an event. A crash between the peer receiving a message and the
commit re-sends it with the same CopMsgId and file name, which the peer drops.
"""
from __future__ import annotations

import datetime as dt
import hashlib

from lxml import etree
from sqlalchemy.orm import defer, lazyload

from card.signer import CardAbsent, CardMismatch, PinError, SignerError, signing_for
from gateway import (alarms, attachments, ccpit_filings, envelope, faults, fsutil, health, licence_use, metrics,
                     mofcom_filings, mofcom_key, sync, xmlsafe)
from gateway.lifecycle import retries, subscriptions
from gateway.log import get_logger
from gateway.receipts import correlate as correlation
from gateway.receipts import orders
from gateway.receipts import parse as receipt_parse
from gateway.receipts import route as routing
from gateway.runtime import Runtime
from gateway.store import leases, repo, states
from gateway.store.models import Message, Receipt, utcnow
from gateway.transports import links
from gateway.transports.base import Outgoing, TransportError

log = get_logger("pipeline")


def _now() -> dt.datetime:
    return dt.datetime.now().replace(microsecond=0)


# -- sign ---------------------------------------------------------------------------
def sign_batch(rt: Runtime, limit: int = 200, signer: str | None = None,
               part: tuple[int, int] = (0, 1)) -> int:
    """Sign up to `limit` prepared messages (of one signer, if given; of the ids that are
    part[0] modulo part[1]: one of a signer's part[1] workers); one commit for the batch
    (a crash re-signs, never re-sends)."""
    if rt.signing_halted:
        return 0
    done = 0
    with rt.sessions() as s:
        held = leases.take(s, repo.state_query(states.PREPARED, limit, signer=signer, part=part,
                                               not_transports=rt.unsigned_transports), rt.lease)
        s.commit()  # no transaction (no SQLite write lock) while the card works
        pending, worked = list(held.rows), []
        while pending:
            if held.due():   # a long batch (a card signs ~4/s) keeps its lease, or stops where it lost it
                pending = held.renew(s, pending)
                if not pending:
                    break
            msg = pending.pop(0)
            worked.append(msg)
            try:
                with signing_for(msg.enterprise, msg.business_key):   # a card host logs what it signs for
                    _sign_one(rt, s, msg)
                done += 1
                health.signer(msg.signer, "present")
            except CardAbsent as exc:
                health.signer(msg.signer, "absent", str(exc))
                repo.note(s, msg, "parked", f"card absent, message waits unsigned: {exc}")
                log.warning("card absent; signing parked", signer=msg.signer)
                _flag_waiting(rt, s, msg.signer, exc)
                break
            except mofcom_key.MofcomPinRefused as exc:   # the application fails; the key is never retried
                repo.transition(s, msg, states.FAILED, f"MOFCOM key refused its PIN; nothing was sent: {exc}")
                msg.errors = [{"rule": "mofcom-key", "message": str(exc)}]
                s.commit()
                alarms.raise_alarm(rt, "mofcom-pin-refused", "MOFCOM key PIN refused: its licence applications "
                                   "fail until an operator fixes the PIN and restarts swgw (never retried)",
                                   signer=exc.key, message_id=msg.id, tries_left=exc.tries_left)
            except PinError as exc:
                rt.signing_halted = f"signer {msg.signer}: {exc}"
                health.signer(msg.signer, "halted", f"PIN refused: {exc}")
                repo.note(s, msg, "alarm", f"PIN refused, all signing stopped: {exc}")
                s.commit()
                alarms.raise_alarm(rt, "pin-refused", "PIN refused: all signing stopped until an operator "
                                   "fixes the PIN and restarts swgw (it never retries a PIN by itself)",
                                   signer=msg.signer, detail=str(exc), tries_left=exc.tries_left)
                break
            except CardMismatch as exc:
                repo.transition(s, msg, states.FAILED, f"refusing to sign with the wrong card: {exc}")
                msg.errors = [{"rule": "card", "message": str(exc)}]
            except (mofcom_key.MofcomKeyError, mofcom_filings.NotFiled) as exc:   # licences: fail before sending
                repo.transition(s, msg, states.FAILED, f"not sent: {exc}")
                msg.errors = [{"rule": "mofcom", "message": str(exc)}]
                alarms.raise_alarm(rt, "licence-not-sent", f"licence application {msg.business_key} not sent: {exc}",
                                   session=s, message_id=msg.id)   # stored with this batch's commit
            except (SignerError, envelope.EnvelopeError) as exc:
                repo.transition(s, msg, states.FAILED, f"signing failed: {exc}")
                msg.errors = [{"rule": "sign", "message": str(exc)}]
        if len(held.keep(s, worked)) < len(worked):   # stalled past the lease: another process has them now
            s.rollback()
            log.warning("signing batch outlived its lease; discarded (another process signs it)", signer=signer)
            done = 0
        else:
            repo.save(s, worked)   # one UPDATE for the batch's documents, envelopes and states
        s.commit()
        held.release(s)
        if done:
            faults.hit("after-sign-commit")
    return done


def _flag_waiting(rt: Runtime, s, signer: str, exc: CardAbsent) -> None:
    """A card host away for longer than its signer's `flag_after`: one alarm per absence."""
    since, after = getattr(exc, "since", None), getattr(rt.signer_configs.get(signer), "flag_after", None)
    if since is None or after is None or dt.datetime.now().timestamp() - since < after:
        return
    alarms.raise_once(rt, s, "signer-away", f"{signer} since {since:.0f}",
                      f"signer {signer}: its card host has not answered for {after:g}s or more; its messages "
                      f"stay prepared and go when it is back ({exc})", signer=signer)


def _sign_one(rt: Runtime, s, msg: Message) -> None:
    dt_ = rt.doc_types[msg.doc_type]
    signer = rt.signer(msg.signer)
    info = signer.info()
    ent = rt.enterprise(msg.enterprise)
    if info.enterprise_code not in (msg.enterprise, ent.customs_code if ent else None):
        raise CardMismatch(f"card {info.media_no} belongs to enterprise {info.enterprise_code}, "
                           f"but message {msg.id} is sent by {msg.enterprise}: refusing to sign")
    root = xmlsafe.parse_own(msg.document)   # swgw's own, validated when it was prepared
    now = _now()
    dt_.family.before_sign(root, signer, info, now.strftime("%Y%m%d%H%M%S"))
    key_note = ""
    if getattr(dt_.family, "signs_with_mofcom_key", False) and dt_.family.needs_mofcom_key(root):
        if dt_.family.needs_filing(root):                     # MOFCOM licences: the enterprise's filing
            mofcom_filings.require(s, ent, dt_.key, msg.business_key)
        key_note = ", " + mofcom_key.sign(rt, root, ent, dt_.family, now.strftime("%Y%m%d%H%M%S"))  # 上报并签章
    document = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    file_name, data = payload(msg, document)
    env = envelope.Envelope(
        trans=envelope.TransInfo(msg.cop_msg_id, ent.dxp_sender_id, [dt_.receiver_id], now, dt_.msg_type),
        data=data, file_name=file_name, ic_card=info.media_no,
        biz_keys={dt_.family.key_name: msg.business_key})
    signed = envelope.signed(env, signer, info.cert_no, rt.xmldsig_profile(msg.signer))
    dxp = xmlsafe.parse_own(signed)
    errors = rt.dxp_schema.errors(dxp)   # located only when not valid
    if errors:
        raise envelope.EnvelopeError("envelope does not validate against the DXP schema: "
                                     + "; ".join(f"{e.path}: {e.reason}" for e in errors[:3]))
    msg.document = document
    msg.envelope = signed
    repo.transition(s, msg, states.SIGNED, f"signed by card {info.media_no} ({signer.algorithm}, "
                                          f"certificate {info.cert_no}){key_note}")


def payload(msg: Message, document: bytes) -> tuple[str, bytes]:
    """What carries the business message: the XML itself, or — when it has attachments — one
    .zip package of the message and its files under the names the message gives them."""
    if not msg.attachments:
        return f"{msg.cop_msg_id}.xml", document
    return f"{msg.cop_msg_id}.zip", attachments.package(f"{msg.cop_msg_id}.xml", document,
                                                         [(a.carried_as, a.content) for a in msg.attachments])


# -- transmit -----------------------------------------------------------------------
def transmit_batch(rt: Runtime, limit: int = 200) -> int:
    """Send signed messages; after the transports make them durable, record them sent in one commit.

    A crash between sending and the commit re-sends those messages with the same name and
    CopMsgId; the peer drops the true duplicates."""
    sent = []
    with rt.sessions() as s:
        now = utcnow()  # retries wait out their backoff (lifecycle.retries)
        # a signed message goes as its envelope: its document and attachments load only if asked for
        held = leases.take(s, repo.state_query(states.SIGNED, limit, due=now).options(
            defer(Message.document), lazyload(Message.attachments)), rt.lease)
        unsigned = rt.unsigned_transports
        if unsigned:  # the desktop client signs these: they go as prepared, bare business XML
            held.rows += leases.take(s, repo.state_query(states.PREPARED, limit, transports=unsigned, due=now),
                                     rt.lease).rows
        s.commit()  # no transaction held while files travel
        pending = list(held.rows)
        while pending:
            if held.due():   # never send a message whose lease this process no longer holds
                pending = held.renew(s, pending)
                if not pending:
                    break
            msg = pending.pop(0)
            transport = rt.transports[msg.transport]
            name, data = payload(msg, msg.document) if transport.carries == "business" else \
                (f"{msg.cop_msg_id}.xml", msg.envelope)
            item = Outgoing(name=name, data=data, cop_msg_id=msg.cop_msg_id,
                            doc_type=msg.doc_type, business_key=msg.business_key)
            msg.attempts += 1
            try:
                transport.send(item)
            except TransportError as exc:
                links.failed(transport.name, "transmit", exc)  # logged once per outage, not once per poll
                retries.failed(rt, s, msg, transport.name, exc)  # an event per attempt: backoff, or `failed`
                if exc.retryable:
                    break
                continue
            links.ok(transport.name, "transmit")
            faults.hit("after-send")
            sent.append((msg, transport, item))
        for transport in {id(t): t for _, t, _ in sent}.values():
            try:
                transport.flush()
            except TransportError as exc:   # none of what it was sent is known to be there: it goes again
                links.failed(transport.name, "transmit", exc)
                for msg in [m for m, t, _ in sent if t is transport]:
                    retries.failed(rt, s, msg, transport.name, exc)
                sent = [(m, t, i) for m, t, i in sent if t is not transport]
        kept = {id(m) for m in held.keep(s, [m for m, _, _ in sent])}
        for msg, transport, item in sent:
            if id(msg) not in kept:   # stalled past the lease after sending: the peer drops the resend
                log.warning("lease lost after sending; the process that took it sends it again (same CopMsgId)",
                            message_id=msg.id)
                continue
            retries.sent(msg)
            repo.transition(s, msg, states.SENT, f"sent via {transport.name} as {item.name}")
        repo.save(s, [m for m, _, _ in sent])   # one UPDATE for the batch
        s.commit()
        held.release(s)
    return len(sent)


# -- receive ------------------------------------------------------------------------
def receive_batch(rt: Runtime, limit: int = 200) -> int:
    """Store a batch of receipts in one commit, then remove them from the exchange."""
    done = 0
    for name, transport in rt.transports.items():
        try:
            incoming = transport.receive(limit)
        except TransportError as exc:
            links.failed(name, "receive", exc)
            continue
        links.ok(name, "receive")
        if not incoming:
            continue
        with rt.sessions() as s, s.no_autoflush:
            batch = Batch()
            for item in incoming:
                if item.meta.get("kind") == "send-failed":
                    store_send_failure(s, name, item)
                    continue
                store_receipt(rt, s, name, item.name, item.data, batch, hints=answered(item))
                faults.hit("before-receipt-commit")
            s.commit()
        faults.hit("after-receipt-commit")
        for item in incoming:
            transport.ack(item.ref)
        done += len(incoming)
    return done


def store_send_failure(s, transport: str, item) -> None:
    """The desktop client could not send a file we gave it (it moved it to FailBox): that
    message failed; the file itself is kept as its receipt."""
    sha = hashlib.sha256(item.name.encode() + item.data).hexdigest()
    if s.query(Receipt.id).filter(Receipt.sha256 == sha).first():
        return
    cop_msg_id = item.meta.get("original", item.name).rsplit("/", 1)[-1].removesuffix(".xml").removesuffix(".zip")
    msg = s.query(Message).filter(Message.cop_msg_id == cop_msg_id).first()
    why = f"the desktop client could not send it: {item.name} (check the client's log, the card and the XML)"
    s.add(Receipt(transport=transport, remote_name=item.name[:400], sha256=sha, kind="send-failed",
                  doc_type=msg.doc_type if msg else "", summary=why[:500], raw=item.data,
                  message_id=msg.id if msg else None))
    if msg is None:
        repo.note(s, None, "receipt-unmatched", f"send-failed {item.name}: no message with CopMsgId {cop_msg_id}")
    elif msg.state not in states.LOCAL_FINAL:
        repo.transition(s, msg, states.FAILED, why)
        msg.last_receipt = "send-failed"


def answered(item) -> list[tuple[str, str]]:
    """The message a transport says this receipt answers: the desktop client names its answers
    after our OutBox file (`Successed_<CopMsgId>.xml_<timestamp>`), see clientfolder.classify."""
    if item.meta.get("kind") in ("import-success", "import-failure") and item.meta.get("original"):
        return [("CopMsgId", item.meta["original"].rsplit("/", 1)[-1].removesuffix(".xml"))]
    return []


class Batch:
    """What a batch of receipts has added but not yet flushed: their hashes, the keys
    they gave messages (an import response's SeqNo finds the status receipts after it), the
    inspection orders still waiting for their declaration, and the alarms raised once."""

    def __init__(self):
        self.hashes: set[str] = set()
        self.keys: dict[tuple[str, str], list[Message]] = {}
        self.alarmed: set[str] = set()
        self.orders: list[Receipt] = []   # an order before the receipt giving its declaration the EntryId

    def find(self, parsed) -> Message | None:
        for ref in parsed.refs:
            for msg in reversed(self.keys.get(ref, [])):   # a licence and its declaration share an EntryId
                if not parsed.doc_type or msg.doc_type == parsed.doc_type:
                    return msg
        return None


def store_receipt(rt: Runtime, s, transport: str, remote_name: str, data: bytes,
                  batch: Batch | None = None, hints: list[tuple[str, str]] = ()) -> Receipt | None:
    """Parse, correlate and record one receipt in session `s` (the caller commits).

    `hints` are keys the transport knows (the file a desktop-client answer names); they are tried
    first. A receipt of a root swgw does not know is kept, routed to the unmatched outbox and
    alarmed once per root; a status code it does not know is kept, on the trace, alarmed once."""
    sha = hashlib.sha256(data).hexdigest()
    batch = Batch() if batch is None else batch
    if sha in batch.hashes or s.query(Receipt.id).filter(Receipt.sha256 == sha).first():
        return None  # redelivered: stored already
    batch.hashes.add(sha)
    try:
        parsed = receipt_parse.parse(data)
    except receipt_parse.ReceiptError as exc:
        rec = Receipt(transport=transport, remote_name=remote_name[:400], sha256=sha, kind="unreadable",
                      summary=str(exc)[:500], raw=data)
        s.add(rec)
        repo.note(s, None, "receipt-unreadable", f"{remote_name}: {exc}")
        log.warning("unreadable receipt kept", name=remote_name, error=str(exc))
        return rec
    parsed.refs[:0] = [h for h in hints if h not in parsed.refs]
    if parsed.kind == "generic":
        alarms.raise_once(rt, s, "unknown-receipt", f"<{parsed.form}>",
                          f"a receipt swgw does not know: <{parsed.form}> ({remote_name}); kept and routed to "
                          f"the unmatched outbox", pending=batch.alarmed, transport=transport, name=remote_name)
    msg = None if parsed.kind == "generic" else batch.find(parsed) or correlation.correlate(s, parsed)
    rec = Receipt(transport=transport, remote_name=remote_name[:400], sha256=sha, kind=parsed.kind,
                  doc_type=parsed.doc_type or (msg.doc_type if msg else ""), fields=parsed.fields,
                  raw=parsed.payload or data, message_id=msg.id if msg else None)
    s.add(rec)
    if msg is None and parsed.kind == sync.KIND:  # 数据同步: reference data, kept; shown by sync --history
        rec.summary = sync.record_answer(rt, s, parsed.fields, parsed.payload)[:500]
        rec.routed_at = utcnow()
        repo.note(s, None, "sync", f"{remote_name}: {rec.summary}")
        return rec
    if msg is None and parsed.kind == orders.KIND:
        ent = orders.enterprise_of(rt, parsed.fields)
        if ent is not None:  # an order for a declaration swgw did not send (or does not know yet)
            rec.enterprise = ent.code[:40]
            rec.summary = (f"inspection order {parsed.fields.get('InspectionNo', '?')} for enterprise {ent.code}: no "
                           f"declaration with entry id {parsed.fields.get('EntryId', '?')} known yet")[:500]
            repo.note(s, None, "inspection-order", f"{remote_name}: {rec.summary}")
            batch.orders.append(rec)
            return rec
    if msg is None:
        rec.summary = f"matches no message (keys {parsed.refs})"[:500]
        repo.note(s, None, "receipt-unmatched", f"{parsed.kind} {remote_name}: keys {parsed.refs}")
        log.warning("receipt matches no message; kept", kind=parsed.kind, keys=parsed.refs)
        return rec
    fam = rt.doc_types[msg.doc_type].family if msg.doc_type in rt.doc_types else None
    outcome = fam.outcome(parsed.kind, {**fam.receipt_context(msg.document), **parsed.fields},
                          msg.state) if fam else None
    summary = outcome.summary if outcome else parsed.kind
    rec.summary = summary[:500]
    repo.note(s, msg, "receipt", f"{parsed.kind} {remote_name}: {summary}")
    if outcome and outcome.unknown:
        alarms.raise_once(rt, s, "unknown-status", f"{msg.doc_type} {outcome.unknown}",
                          f"{msg.doc_type} {msg.business_key}: {outcome.unknown} is not known to swgw; "
                          f"the receipt is kept ({remote_name}), the state unchanged", pending=batch.alarmed,
                          message_id=msg.id)
    if outcome:
        new_entry_id = outcome.keys.get("EntryId") and not any(
            k.name == "EntryId" and k.value == outcome.keys["EntryId"] for k in msg.keys)
        for k, v in outcome.keys.items():
            if msg not in batch.keys.get((k, v), ()):  # added in this batch already: no second look
                repo.add_key(msg, k, v)
                batch.keys.setdefault((k, v), []).append(msg)
        if outcome.state and outcome.state != msg.state:
            repo.transition(s, msg, outcome.state, summary)
        if new_entry_id:  # inspection orders that came before the declaration had its 报关单号
            orders.attach_waiting(rt, s, msg, outcome.keys["EntryId"], pending=batch.orders)
    if parsed.kind == "filing-audit":  # the filing is usable by the next certificate at once
        ccpit_filings.record_audit(rt, s, msg, parsed.fields)
    licence_use.after_receipt(s, msg, parsed.kind, parsed.fields, batch.keys)   # licences <-> declarations
    msg.last_receipt = f"{parsed.kind}: {summary}"[:300]
    msg.updated_at = utcnow()
    return rec


# -- route --------------------------------------------------------------------------
def route_batch(rt: Runtime, limit: int = 500) -> int:
    """Write stored receipts to the outbox folders, then record them routed in one commit."""
    routed = []
    with rt.sessions() as s:
        batch = [(rec, s.get(Message, rec.message_id) if rec.message_id else None)
                 for rec in repo.unrouted_receipts(s, limit)]
        s.commit()  # no transaction held while files are written
        for rec, msg in batch:
            doc_type = rec.doc_type or (msg.doc_type if msg else "")
            dt_ = rt.doc_types.get(doc_type)
            subject = msg if msg is not None else orders.subject(rec)   # an order names its enterprise
            if dt_ and msg is not None:
                outbox = dt_.outbox
            elif subject is not None:
                outbox = orders.outbox(rt)
            else:
                outbox = rt.config.gateway.unmatched_outbox
            path = routing.route_to_folder(outbox, rec, subject, rec.raw, fsync=True, sync_dir=False)
            faults.hit("after-route-write")
            if rt.publisher is not None:
                try:
                    routing.publish(rt.publisher, rec, subject)
                except TransportError as exc:
                    # the rest waits for the next pass, so each business key's receipts stay in order
                    links.failed("receipt-exchange", "publish", exc)
                    break
                links.ok("receipt-exchange", "publish")
            routed.append((rec, msg, path, subject))
        for folder in {p.parent for _, _, p, _ in routed}:
            fsutil.fsync_dir(folder)
        for rec, msg, path, subject in routed:
            rec.routed_at = utcnow()
            if subject is not None:
                repo.note(s, msg, "routed", f"{rec.kind} receipt {rec.id} -> {path}")
                subscriptions.deliver(rt, s, rec, subject)  # 状态推送: copies to subscribed folders/queues
        s.commit()
    return len(routed)


STAGES = (("licences", licence_use.release_batch),   # declarations waiting for their licences
          ("sign", sign_batch), ("transmit", transmit_batch), ("receive", receive_batch), ("route", route_batch))
LEADER_ONLY = {"licences", "receive", "route"}   # in a cluster, one process (gateway/cluster.py): receipts in order


def step(rt: Runtime, sign: bool = True, leader: bool = True, only: set[str] | None = None) -> int:
    """One pass of every stage after intake (signing too, unless signing workers do it; those
    of one process only on the leader; `only`: just these)."""
    done = 0
    for name, stage in STAGES:
        if (name == "sign" and not sign) or (name in LEADER_ONLY and not leader) or (only and name not in only):
            continue
        with metrics.timed(name):
            done += metrics.count(name, stage(rt))
    return done
