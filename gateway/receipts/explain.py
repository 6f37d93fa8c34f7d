"""What swgw reads from one receipt file, for `swgw receipt`: the parse, and what the document
family makes of it for a message that has just been acknowledged by the platform."""
from __future__ import annotations

from gateway.receipts import parse as receipt_parse
from gateway.store import states

# the field that carries each kind's status code
STATUS_FIELD = {
    "dxp-rep": "ResponseCode", "import-response": "ResponseCode", "dec-result": "CHANNEL",
    "mod-response": "ResultCode", "client-failure": "failCode", "licence-approval": "Status",
    "licence-customs": "CustomsStatus", "inspection-order": "InspectionNo", "feedback-receipt": "Status",
    "origin-audit": "Status", "filing-audit": "Status",
}
# the family whose rules read receipts that name no family (the platform's DxpRep, the client's failure)
NEUTRAL = "declaration"


def explain(data: bytes) -> dict:
    """Raises receipt_parse.ReceiptError (with line and column) when the file is not a receipt."""
    from gateway.documents import FAMILIES, family

    parsed = receipt_parse.parse(data)
    out = {
        "kind": parsed.kind,
        "form": parsed.form,
        "root": parsed.root,
        "msg_type": parsed.msg_type,
        "doc_type": parsed.doc_type,
        "keys": [{"name": n, "value": v} for n, v in parsed.refs],
        "notice_at": parsed.notice_at,
        "fields": parsed.fields,
    }
    code_field = STATUS_FIELD.get(parsed.kind, "")
    out["status"] = {"field": code_field, "code": parsed.fields.get(code_field, "")} if code_field else {}
    if parsed.kind == "generic":
        out["meaning"] = "a receipt swgw does not know: kept as received, routed to the unmatched outbox, alarmed"
        out["leads_to"] = None
        return out
    key = parsed.doc_type or NEUTRAL
    if key not in FAMILIES:
        out["meaning"], out["leads_to"] = f"no document family {key!r}", None
        return out
    outcome = family(key).outcome(parsed.kind, parsed.fields, states.ACKNOWLEDGED)
    out["meaning"] = outcome.summary
    out["leads_to"] = outcome.state
    if outcome.unknown:
        out["unknown"] = outcome.unknown
    return out


def render(info: dict) -> str:
    lines = [f"kind:       {info['kind']}  ({info['form']}" + (f", in a DxpMsg {info['msg_type']}" if info["msg_type"]
                                                              else "") + ")",
             f"family:     {info['doc_type'] or '(any: correlated by CopMsgId or the file it answers)'}",
             "keys:       " + (", ".join(f"{k['name']}={k['value']}" for k in info["keys"]) or
                               "(none: matched by the file it answers, or unmatched)")]
    if info["status"]:
        lines.append(f"status:     {info['status']['field']} = {info['status']['code']!r}")
    lines.append(f"meaning:    {info['meaning']}")
    lines.append(f"leads to:   {info['leads_to'] or '(state unchanged)'}"
                 + ("   UNKNOWN CODE: kept, on the trace, alarmed once" if info.get("unknown") else ""))
    if info["notice_at"]:
        lines.append(f"issued:     {info['notice_at']}")
    for name, value in info["fields"].items():
        lines.append(f"  {name:<16} {value}")
    return "\n".join(lines)
