"""Inspection orders (海关查验指令) for declarations swgw does not know (yet).

Customs pushes an order for every declaration of the enterprise, also those declared through
another channel. An order that matches no message is not "unmatched": it names its enterprise
(企业名称, or a code when the order carries one), so it is stored under that enterprise's code,
routed to the inspection-order outbox as `<InspectionNo>.inspection-order.<receipt id>.xml`,
published on the receipt exchange under the enterprise's code and copied to the enterprise's
subscriptions. When a declaration later gets the order's 报关单号 (EntryId), the order attaches
to it: it moves the declaration to `inspection` and is routed again beside its receipts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from gateway.store import repo
from gateway.store.models import Message, Receipt, utcnow

KIND = "inspection-order"
CODE_FIELDS = ("TradeCode", "TradeCoScc", "EnterpriseCode")


@dataclass(frozen=True)
class Key:
    name: str
    value: str


@dataclass
class Subject:
    """What routing and subscriptions need of a message, for an order that has none yet."""

    business_key: str
    enterprise: str
    doc_type: str = "declaration"
    keys: list[Key] = field(default_factory=list)
    signer: str = ""
    cop_msg_id: str = ""
    state: str = ""


def enterprise_of(rt, fields: dict):
    """The configured enterprise an order names: by a code it carries, else by its 企业名称."""
    for name in CODE_FIELDS:
        code = (fields.get(name) or "").strip()
        if code:
            for ent in rt.config.enterprises:
                if code in (ent.code, ent.customs_code, ent.ciq_code):
                    return ent
    trade_name = (fields.get("TradeName") or "").strip()
    if trade_name:
        for ent in rt.config.enterprises:
            if ent.name.strip() == trade_name:
                return ent
    return None


def subject(receipt: Receipt) -> Subject | None:
    """The stand-in for an order without a declaration (None for any other receipt)."""
    if receipt.kind != KIND or receipt.message_id is not None or not receipt.enterprise:
        return None
    f = receipt.fields or {}
    keys = [Key(n, f[n]) for n in ("InspectionNo", "EntryId") if f.get(n)]
    return Subject(f.get("InspectionNo") or f"order-{receipt.id}", receipt.enterprise, keys=keys)


def outbox(rt) -> Path:
    return rt.config.gateway.inspection_order_outbox


def attach_waiting(rt, s, msg: Message, entry_id: str, pending: list[Receipt] = ()) -> int:
    """Orders stored before `msg` got its 报关单号 `entry_id`: attach them, let them move its state,
    and route them again beside its receipts. `pending`: orders of the same receive batch, added to
    the session but not flushed yet (an order arriving before the receipt that gives the EntryId).
    Returns how many."""
    fam = rt.doc_types[msg.doc_type].family if msg.doc_type in rt.doc_types else None
    n = 0
    stored = list(s.scalars(select(Receipt).where(Receipt.kind == KIND, Receipt.message_id.is_(None),
                                                  Receipt.enterprise == msg.enterprise)))
    waiting = stored + [r for r in pending if r.message_id is None and r.enterprise == msg.enterprise
                        and all(r is not o for o in stored)]
    for rec in waiting:
        if (rec.fields or {}).get("EntryId") != entry_id:
            continue
        rec.message_id = msg.id
        rec.routed_at = None
        outcome = fam.on_receipt(KIND, rec.fields, msg.state) if fam else None
        summary = outcome.summary if outcome else KIND
        repo.note(s, msg, "receipt", f"{KIND} {rec.remote_name} (received {rec.received_at or utcnow():%Y-%m-%d %H:%M:%S}, "
                                     f"before the declaration had its entry id) attached: {summary}")
        if outcome:
            for k, v in outcome.keys.items():
                repo.add_key(msg, k, v)
            if outcome.state and outcome.state != msg.state:
                repo.transition(s, msg, outcome.state, summary)
        n += 1
    return n


def listing(s, insp_customs: str = "", unload_place: str = "", enterprise: str = "") -> list[dict]:
    """Stored inspection orders (newest first), filtered by 查验关区, 卸货地代码 and enterprise."""
    out = []
    for rec in s.scalars(select(Receipt).where(Receipt.kind == KIND).order_by(Receipt.id.desc())):
        f = rec.fields or {}
        if insp_customs and f.get("InspCustoms") != insp_customs:
            continue
        if unload_place and f.get("UnloadPlaceCode") != unload_place:
            continue
        msg = s.get(Message, rec.message_id) if rec.message_id else None
        ent = msg.enterprise if msg else rec.enterprise
        if enterprise and enterprise not in (ent, f.get("TradeName")):
            continue
        out.append({"receipt": rec.id, "inspection_no": f.get("InspectionNo", ""), "entry_id": f.get("EntryId", ""),
                    "insp_customs": f.get("InspCustoms", ""), "unload_place": f.get("UnloadPlaceCode", ""),
                    "enterprise": ent or "", "trade_name": f.get("TradeName", ""),
                    "declaration": msg.business_key if msg else "", "notice_time": f.get("NoticeTime", ""),
                    "received": rec.received_at.isoformat()})
    return out
