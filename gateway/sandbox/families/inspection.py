"""Customs inspection: the peer issues an inspection order (海关查验指令) when it plays a declaration's
C channel, remembers it (archive_dir/inspection-orders.json, so a restart still knows it), and
answers container-shift feedbacks: 成功 with 回执时间 for an order it issued (or a configured
known one), 退回 with the reason otherwise or when a rule says so."""
from __future__ import annotations

import json
import re
import time

from gateway import fsutil
from gateway.sandbox import receipts
from gateway.sandbox.families import Play

ROOTS = ("InspectionFeedbackMessage",)
REGISTRY = "inspection-orders.json"


def _orders(peer) -> dict:
    path = peer.archive / REGISTRY
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def issue(p: Play, delay: float, entry_id: str, customs: str, n: int, keys: dict) -> None:
    """Send an inspection order for the declaration being played (its containers come along)."""
    sc = p.settings.inspection
    inspection_no = f"{customs}{time.strftime('%Y')}C{n:07d}"[:20]
    containers = []
    for el in p.doc.iter():
        if isinstance(el.tag, str) and el.tag.rsplit("}", 1)[-1] == "Container":
            cid = next((c.text for c in el if c.tag.rsplit("}", 1)[-1] == "ContainerId"), "")
            md = next((c.text for c in el if c.tag.rsplit("}", 1)[-1] == "ContainerMd"), "")
            if cid:
                containers.append((cid.strip(), (md or "").strip()))
    orders = _orders(p.peer)
    orders[inspection_no] = {"entry_id": entry_id, "containers": [c for c, _ in containers]}
    fsutil.atomic_write(p.peer.archive / REGISTRY, json.dumps(orders, indent=1).encode())
    payload = receipts.inspection_order(inspection_no, entry_id, customs, sc.unload_place, p.text("TradeName"),
                                        containers, sc.note)
    p.later(delay, f"Inspection_{p.base}_{inspection_no}.xml",
            p.reply("InspectionOrder", payload, keys))


def play(p: Play) -> None:
    sc = p.settings.inspection
    message_no, inspection_no, entry_id = p.text("MessageNo"), p.text("InspectionNo"), p.text("EntryId")
    keys = {"MessageNo": message_no}
    errors = p.schema_errors()
    order = _orders(p.peer).get(inspection_no)
    reason = ""
    if errors:
        reason = f"报文格式错误: {errors[0].path}: {errors[0].reason}"
    elif order is None and inspection_no not in sc.known_orders:
        reason = f"查验指令编号 {inspection_no} 不存在"
    elif order is not None and order["entry_id"] != entry_id:
        reason = f"报关单号 {entry_id} 与查验指令 {inspection_no} 的报关单号 {order['entry_id']} 不符"
    else:
        rule = next((r for r in sc.rules if all(re.search(pat, p.text(name))
                                                 for name, pat in r.when.items())), None)
        reason = rule.reason if rule else ""
    p.later(sc.delay, f"Feedback_{p.base}.xml",
            p.reply("InspectionFeedbackReceipt",
                    receipts.feedback_receipt(message_no, inspection_no, entry_id, not reason, reason), keys))
