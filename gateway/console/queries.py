"""What each console page shows, read from the store: plain dicts the HTML views render and
the JSON API returns as they are. Nothing here knows a document family or a receipt kind by
name: new states, keys and receipt kinds show up as they are stored."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from gateway.store import summary
from gateway.store.models import Alarm, Event, IntakeFile, Message, MessageKey, Receipt, Subscription

MAX_SHOWN = 256 * 1024        # a payload larger than this is shown cut, with its size


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.isoformat(timespec="seconds")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def age(value: dt.datetime | None, now: dt.datetime | None = None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    secs = max(int(((now or _now()) - value).total_seconds()), 0)
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if secs >= n:
            return f"{secs // n} {unit}"
    return f"{secs} s"


def text_of(data: bytes | None, pretty: bool = False) -> str | None:
    """Bytes from a file or receipt as text for a page (never interpreted; the template escapes it)."""
    if data is None:
        return None
    cut = len(data) > MAX_SHOWN
    body = data[:MAX_SHOWN]
    if pretty and not cut:
        from lxml import etree

        from gateway import xmlsafe

        try:
            body = etree.tostring(xmlsafe.parse(body), pretty_print=True, encoding="utf-8")
        except Exception:  # not well-formed: shown as it is
            pass
    for enc in ("utf-8", "gb18030"):
        try:
            out = body.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    else:
        out = body.decode("utf-8", errors="replace")
    return out + (f"\n… ({len(data):,} bytes, first {MAX_SHOWN:,} shown)" if cut else "")


# -- dashboard ------------------------------------------------------------------------------
def dashboard(s) -> dict:
    now = _now()
    rows = summary.counts(s)
    types = sorted({t for t, _, _ in rows})
    state_list = sorted({st for _, st, _ in rows})
    matrix = {t: {st: 0 for st in state_list} for t in types}
    for t, st, n in rows:
        matrix[t][st] = n
    need = summary.needs(s)
    oldest = summary.oldest_unanswered(s, state_list)
    alarms = list(s.scalars(select(Alarm).where(Alarm.acked_at.is_(None)).order_by(Alarm.id.desc()).limit(5)))
    return {
        "types": types, "states": state_list, "counts": matrix,
        "total": sum(n for _, _, n in rows),
        "overdue": need.overdue, "failed": need.failed, "retrying": need.retrying,
        "open_alarms": summary.open_alarms(s),
        "latest_alarms": [alarm_dict(a) for a in alarms],
        "components": [{"name": c.name, "kind": c.kind, "state": c.state, "detail": c.detail,
                        "since": _iso(c.since), "for": age(c.since, now), "seen_at": _iso(c.seen_at),
                        "seen_ago": age(c.seen_at, now)} for c in summary.components(s)],
        "intake_last_hour": [{"doc_type": t, "outcome": o, "files": n}
                             for t, o, n in summary.intake_since(s, now - dt.timedelta(hours=1))],
        "oldest_unanswered": None if oldest is None else {
            "id": oldest.id, "doc_type": oldest.doc_type, "business_key": oldest.business_key,
            "state": oldest.state, "sent_at": _iso(oldest.sent_at), "waiting": age(oldest.sent_at, now)},
    }


# -- messages -------------------------------------------------------------------------------
@dataclass
class Filters:
    doc_type: str = ""
    state: str = ""
    enterprise: str = ""
    key: str = ""                 # any business key value (ClientSeqNo, SeqNo, EntryId …), or a CopMsgId
    key_name: str = ""            # limit `key` to one key name
    since: dt.date | None = None
    until: dt.date | None = None
    overdue: bool = False
    page: int = 1

    def query(self) -> dict:
        out = {k: v for k, v in (("type", self.doc_type), ("state", self.state), ("enterprise", self.enterprise),
                                 ("key", self.key), ("key_name", self.key_name)) if v}
        if self.since:
            out["since"] = self.since.isoformat()
        if self.until:
            out["until"] = self.until.isoformat()
        if self.overdue:
            out["overdue"] = "1"
        return out


def _where(q, f: Filters):
    if f.doc_type:
        q = q.where(Message.doc_type == f.doc_type)
    if f.state:
        q = q.where(Message.state == f.state)
    if f.enterprise:
        q = q.where(Message.enterprise == f.enterprise)
    if f.overdue:
        q = q.where(Message.overdue != "")
    if f.since:
        q = q.where(Message.created_at >= dt.datetime.combine(f.since, dt.time(), dt.timezone.utc))
    if f.until:
        q = q.where(Message.created_at < dt.datetime.combine(f.until + dt.timedelta(days=1), dt.time(),
                                                             dt.timezone.utc))
    if f.key:
        keyed = select(MessageKey.message_id).where(MessageKey.value == f.key)
        if f.key_name:
            keyed = keyed.where(MessageKey.name == f.key_name)
            q = q.where(Message.id.in_(keyed))
        else:
            q = q.where(or_(Message.business_key == f.key, Message.cop_msg_id == f.key, Message.id.in_(keyed)))
    return q


def message_row(m: Message) -> dict:
    return {"id": m.id, "doc_type": m.doc_type, "business_key": m.business_key, "state": m.state,
            "enterprise": m.enterprise, "cop_msg_id": m.cop_msg_id,
            "keys": [{"name": k.name, "value": k.value} for k in m.keys],
            "last_receipt": m.last_receipt, "overdue": m.overdue or None, "attempts": m.attempts,
            "transmit_failures": m.transmit_failures or 0, "next_attempt_at": _iso(m.next_attempt_at),
            "resends": m.resends or 0, "created_at": _iso(m.created_at), "updated_at": _iso(m.updated_at),
            "sent_at": _iso(m.sent_at)}


COUNT_CAP = 10_000    # past this a listing says "10,000+": counting every match of a big store costs a scan


def messages(s, f: Filters, page_size: int = 50) -> dict:
    page = max(f.page, 1)
    capped = _where(select(Message.id), f).limit(COUNT_CAP + 1).subquery()
    total = s.scalar(select(func.count()).select_from(capped))
    more = total > COUNT_CAP
    if more and page * page_size > COUNT_CAP:  # paging past the cap: count as far as this page
        deeper = _where(select(Message.id), f).limit(page * page_size + 1).subquery()
        total = s.scalar(select(func.count()).select_from(deeper))
    q = (_where(select(Message), f).order_by(Message.id.desc()).offset((page - 1) * page_size).limit(page_size)
         .options(selectinload(Message.keys)))
    rows = [message_row(m) for m in s.scalars(q)]
    return {"filters": f.query(), "page": page, "page_size": page_size, "total": total, "more": more,
            "pages": max((total + page_size - 1) // page_size, 1) + (1 if more else 0), "messages": rows}


_choices: dict = {}
CHOICES_TTL = 30.0


def choices(s) -> dict:
    """What the filter boxes offer: the types, states, enterprises and key names in the store
    (read at most every CHOICES_TTL seconds: each is a scan of a big table)."""
    import time

    now = time.monotonic()
    store = str(s.get_bind().url)
    at, value = _choices.get(store, (None, None))
    if at is None or at < now - CHOICES_TTL:
        value = _read_choices(s)
        _choices[store] = (now, value)
    return value


def _read_choices(s) -> dict:
    return {"types": sorted(s.scalars(select(Message.doc_type).distinct())),
            "states": sorted(s.scalars(select(Message.state).distinct())),
            "enterprises": sorted(s.scalars(select(Message.enterprise).distinct())),
            "key_names": sorted(s.scalars(select(MessageKey.name).distinct()))}


def event_dict(e: Event) -> dict:
    return {"id": e.id, "at": _iso(e.at), "kind": e.kind, "from_state": e.from_state, "to_state": e.to_state,
            "detail": e.detail}


def receipt_dict(r: Receipt, raw: bool = True) -> dict:
    out = {"id": r.id, "kind": r.kind, "doc_type": r.doc_type, "transport": r.transport,
           "remote_name": r.remote_name, "summary": r.summary, "fields": r.fields or {},
           "received_at": _iso(r.received_at), "routed_at": _iso(r.routed_at), "pruned_at": _iso(r.pruned_at),
           "message_id": r.message_id, "size": len(r.raw or b"")}
    if raw:
        out["raw"] = text_of(r.raw, pretty=True)
    return out


def message(s, message_id: int) -> dict | None:
    m = s.scalar(select(Message).where(Message.id == message_id).options(selectinload(Message.keys),
                                                                         selectinload(Message.intake_file)))
    if m is None:
        return None
    events = list(s.scalars(select(Event).where(Event.message_id == m.id).order_by(Event.id)))
    receipts = list(s.scalars(select(Receipt).where(Receipt.message_id == m.id).order_by(Receipt.id)))
    siblings = []
    if m.intake_file_id is not None:
        siblings = [{"id": i, "doc_type": t, "business_key": k, "state": st} for i, t, k, st in s.execute(
            select(Message.id, Message.doc_type, Message.business_key, Message.state)
            .where(Message.intake_file_id == m.intake_file_id, Message.id != m.id).order_by(Message.id).limit(200))]
    f = m.intake_file
    return {**message_row(m), "source_ref": m.source_ref, "signer": m.signer, "transport": m.transport,
            "pruned_at": _iso(m.pruned_at), "overdue_since": _iso(m.overdue_since),
            "errors": m.errors or [],
            "document": text_of(m.document, pretty=True), "envelope": text_of(m.envelope, pretty=True),
            "events": [event_dict(e) for e in events],
            "receipts": [receipt_dict(r) for r in receipts],
            "intake_file": None if f is None else intake_row(f), "other_documents": siblings}


# -- intake files ---------------------------------------------------------------------------
def intake_row(f: IntakeFile) -> dict:
    report = f.report or {}
    refused = report.get("rejected") if isinstance(report, dict) else None
    return {"id": f.id, "doc_type": f.doc_type, "source": f.source, "name": f.name, "sha256": f.sha256,
            "size": f.size, "outcome": f.outcome, "received_at": _iso(f.received_at),
            "rejected": len(refused) if isinstance(refused, list) else 0}


def intake(s, outcome: str = "", doc_type: str = "", page: int = 1, page_size: int = 50) -> dict:
    q = select(IntakeFile)
    cq = select(func.count()).select_from(IntakeFile)
    if outcome:
        q, cq = q.where(IntakeFile.outcome == outcome), cq.where(IntakeFile.outcome == outcome)
    if doc_type:
        q, cq = q.where(IntakeFile.doc_type == doc_type), cq.where(IntakeFile.doc_type == doc_type)
    total = s.scalar(cq)
    page = max(page, 1)
    files = s.scalars(q.order_by(IntakeFile.id.desc()).offset((page - 1) * page_size).limit(page_size))
    outcomes = dict(s.execute(select(IntakeFile.outcome, func.count()).group_by(IntakeFile.outcome)).all())
    return {"filters": {k: v for k, v in (("outcome", outcome), ("type", doc_type)) if v}, "page": page,
            "pages": max((total + page_size - 1) // page_size, 1), "total": total, "outcomes": outcomes,
            "files": [intake_row(f) for f in files]}


def _errors_of(report) -> list[dict]:
    """Every located error of an intake report, one row each (document, row, column, field, rule, value)."""
    out = []
    if not isinstance(report, dict):
        return out
    for doc in report.get("rejected") or []:
        if not isinstance(doc, dict):
            continue
        for e in doc.get("errors") or [{"message": doc.get("reason", "")}]:
            if isinstance(e, dict):
                out.append({"document": doc.get("key", ""), "rows": doc.get("rows", ""), **e})
    if report.get("error") and not out:
        out.append({"message": str(report["error"])})
    return out


def intake_file(s, file_id: int) -> dict | None:
    f = s.get(IntakeFile, file_id)
    if f is None:
        return None
    msgs = [{"id": i, "doc_type": t, "business_key": k, "state": st} for i, t, k, st in s.execute(
        select(Message.id, Message.doc_type, Message.business_key, Message.state)
        .where(Message.intake_file_id == f.id).order_by(Message.id).limit(1000))]
    return {**intake_row(f), "report": f.report, "errors": _errors_of(f.report), "messages": msgs}


# -- alarms, subscriptions, cards -----------------------------------------------------------
def alarm_dict(a: Alarm) -> dict:
    return {"id": a.id, "kind": a.kind, "message": a.message, "fields": a.fields or {}, "message_id": a.message_id,
            "raised_at": _iso(a.raised_at), "acked_at": _iso(a.acked_at), "acked_by": a.acked_by}


def alarms(s, show: str = "open", limit: int = 200) -> dict:
    q = select(Alarm).order_by(Alarm.id.desc()).limit(limit)
    if show == "open":
        q = q.where(Alarm.acked_at.is_(None))
    return {"show": show, "open": summary.open_alarms(s), "alarms": [alarm_dict(a) for a in s.scalars(q)]}


def subscriptions(s) -> dict:
    subs = s.scalars(select(Subscription).order_by(Subscription.id))
    return {"subscriptions": [{"id": x.id, "business_key": x.business_key, "enterprise": x.enterprise,
                               "operator": x.operator, "kinds": [k for k in x.kinds.split(",") if k],
                               "folder": x.folder, "queue": x.queue, "created_at": _iso(x.created_at)}
                              for x in subs],
            "known_kinds": sorted(k for k in s.scalars(select(Receipt.kind).distinct()) if k)}


def cards(s, config) -> dict:
    """Each configured signer (never its PIN or key password) with what the daemon last saw."""
    seen = {c.name.removeprefix("signer "): c for c in summary.components(s) if c.kind == "signer"}
    now = _now()
    out = []
    for name, sc in config.signers.items():
        c = seen.get(name)
        users = [f"{ent.name} / {op.name}" for ent in config.enterprises for op in ent.operators if op.signer == name]
        out.append({"name": name, "kind": sc.kind, "media_no": sc.media_no, "holder": sc.holder,
                    "enterprise": sc.enterprise, "reader": getattr(sc, "reader", None) or "",
                    "operators": users, "state": c.state if c else "unknown",
                    "detail": c.detail if c else "the daemon has not reported it yet",
                    "since": _iso(c.since) if c else None, "for": age(c.since, now) if c else "",
                    "seen_ago": age(c.seen_at, now) if c else ""})
    return {"cards": out}
