"""Customs inspection (seed 002): the container-shift feedback (调箱反馈) that answers an inspection
order (海关查验指令).

The order itself is inbound only: customs pushes it for a declaration; the gateway correlates it
to the declaration by 报关单号 (EntryId) and records its 查验编号 (InspectionNo) there, so
`swgw status --key <查验编号>` finds the declaration, its order and, once answered, the feedback.
The feedback is dropped by the yard / WMS system (one row per container), keyed by its 报文编号
(MessageNo), and carries the order's 查验编号 and 报关单号. Receipt: InspectionFeedbackReceipt,
成功 with 回执时间 (recorded as the ReceiptTime key), or 退回 with the reason.
"""
from __future__ import annotations

from gateway.documents.base import PROFILE, Context, DocumentFamily, ReceiptOutcome, platform_outcome
from gateway.mapping.engine import Mapped, Value
from gateway.mapping.errors import FieldError

RANK = {"sent": 3, "acknowledged": 4, "feedback-received": 9, "returned": 99}


class InspectionFeedback(DocumentFamily):
    key = "inspection-feedback"
    root_name = "InspectionFeedbackMessage"
    namespace = "urn:swgw:inspection"
    xsd_name = "inspection.xsd"
    key_name = "MessageNo"
    msg_type = "InspectionFeedbackMessage"
    final_states = ("feedback-received", "returned", "rejected")
    waiting_states = ()

    def enrich(self, mapped: Mapped, ctx: Context) -> None:
        head = mapped.sections.setdefault("FeedbackHead", [{}])[0]
        head.setdefault("SenderName", Value(ctx.enterprise.name, PROFILE))
        sign = ctx.fill_sign(mapped, "FeedbackSign")
        if ctx.enterprise.customs_code:
            sign["CopCode"] = Value(ctx.enterprise.customs_code, PROFILE)

    def rules(self, mapped: Mapped) -> list[FieldError]:
        errors = []
        containers = mapped.sections.get("FeedbackContainer", [])
        if not containers:
            errors.append(FieldError.at(mapped.key_origin, "FeedbackContainer", "containers",
                                        "a feedback names at least one container of the inspection order"))
        seen: dict[str, int | None] = {}
        for item in containers:
            cid, status = item.get("ContainerId"), item.get("ShiftStatus")
            if cid and cid.text in seen:
                errors.append(FieldError.at(cid.origin, "FeedbackContainer/ContainerId", "unique",
                                            f"container {cid.text} is listed twice (also row {seen[cid.text]})",
                                            cid.text))
            elif cid:
                seen[cid.text] = cid.origin.row
            if status and status.text == "2" and "Reason" not in item:
                errors.append(FieldError.at(status.origin, "FeedbackContainer/Reason", "reason",
                                            "a container that cannot be shifted (无法调箱) needs its reason",
                                            status.text))
        return errors

    def on_receipt(self, kind: str, fields: dict, current_state: str) -> ReceiptOutcome:
        if kind == "dxp-rep":
            return platform_outcome(fields, current_state, self._forward)
        if kind == "feedback-receipt":
            keys = {k: fields[k] for k in ("InspectionNo", "EntryId", "ReceiptTime") if fields.get(k)}
            if fields.get("Status") == "成功":
                out = self._forward(current_state, "feedback-received",
                                    f"feedback received by customs, 回执时间 {fields.get('ReceiptTime', '?')}")
            else:
                out = self._forward(current_state, "returned",
                                    f"feedback returned: {fields.get('Reason', '') or 'no reason given'}")
            return ReceiptOutcome(out.state, out.summary, keys, final=out.state in self.final_states)
        return ReceiptOutcome(None, f"receipt kind {kind} not expected for an inspection feedback")

    def _forward(self, current: str, new: str, summary: str) -> ReceiptOutcome:
        if current in self.final_states:
            return ReceiptOutcome(None, summary + f" (after {current}; state kept)")
        if RANK.get(new, 0) >= RANK.get(current, 0):
            return ReceiptOutcome(new if new != current else None, summary)
        return ReceiptOutcome(None, summary + f" (older than current state {current}; state kept)")
