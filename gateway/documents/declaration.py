"""The customs declaration (报关单): DecMessage, its rules, and its receipts.

Receipts: DxpRep from the exchange platform, DecImportResponse from the customs
import (SeqNo assigned), then DEC_RESULT status pushes with a CHANNEL code.
"""
from __future__ import annotations

import base64
import re
from decimal import Decimal

from card import crypto
from card.signer import CardInfo, Signer
from gateway.signing import c14n
from gateway.documents import checks
from gateway.documents.base import PROFILE, Context, DocumentFamily, ReceiptOutcome
from gateway.mapping.engine import Mapped, Value
from gateway.mapping.errors import FieldError
from gateway.store import states

# CHANNEL -> (state, rank). Rank orders the customs flow so a late, older receipt never
# moves a declaration backwards; rejections end it whatever the rank.
CHANNELS = {
    "L": ("customs-accepted", 6, "海关入库成功"),
    "G": ("reviewed", 7, "已审核"),
    "M": ("re-review", 7, "重审"),
    "Z": ("returned", 7, "退回修改"),
    "J": ("concluded", 8, "审结"),
    "T": ("duties-payable", 8, "待缴税"),
    "K": ("guarantee", 8, "担保放行"),
    "B": ("guarantee", 8, "担保"),
    "H": ("suspended", 8, "挂起"),
    "C": ("inspection", 9, "查验"),
    "P": ("released", 10, "放行"),
    "I": ("released", 10, "放行"),
    "R": ("closed", 11, "结关"),
    "E": ("rejected", 99, "退单/不受理"),
    "Y": ("rejected", 99, "申报失败"),
    "D": ("deleted", 99, "删除"),
    "A": ("deleted", 99, "删除"),
}
RANK = {states.SENT: 3, states.ACKNOWLEDGED: 4, "imported": 5}
RANK.update({state: rank for state, rank, _ in CHANNELS.values()})

# DecSign/OperType of the import format, by [documents.declaration] submit
SUBMIT = {"declare": "C", "draft": "G", "upload": "A", "upload-transit": "B", "declare-transit": "D",
          "manual-upload": "E"}
OPER_TYPES = {"A": "报关单上载 (upload)", "B": "报关单、转关单上载 (upload with transit)", "C": "报关单申报 (declare)",
              "D": "报关单、转关单申报 (declare with transit)", "E": "电子手册报关单上载 (manual upload)",
              "G": "报关单暂存 (draft)"}
_OPER_TYPE = re.compile(rb"<(?:\w+:)?OperType>\s*([A-Z])\s*</")

# Which costs the declared value must be completed with (完税价格: CIF on imports, FOB on exports),
# by (IEFlag, TransMode 成交方式): freight (运费) and/or insurance (保险费).
VALUATION = {
    ("I", "3"): ("freight", "insurance"),   # FOB
    ("I", "7"): ("freight", "insurance"),   # EXW
    ("I", "2"): ("insurance",),             # C&F / CFR
    ("I", "4"): ("freight",),               # C&I
    ("E", "1"): ("freight", "insurance"),   # CIF
    ("E", "2"): ("freight",),               # C&F / CFR
    ("E", "4"): ("insurance",),             # C&I
}
TERMS = {"1": "CIF", "2": "C&F", "3": "FOB", "4": "C&I", "5": "市场价", "6": "垫仓", "7": "EXW"}
COSTS = {"freight": ("FeeMark", "FeeRate", "FeeCurr", "运费"), "insurance": ("InsurMark", "InsurRate", "InsurCurr", "保险费"),
         "other": ("OtherMark", "OtherRate", "OtherCurr", "杂费")}


class Declaration(DocumentFamily):
    key = "declaration"
    root_name = "DecMessage"
    namespace = "http://www.chinaport.gov.cn/dec"
    xsd_name = "declaration.xsd"
    key_name = "ClientSeqNo"
    msg_type = "DecMessage"
    final_states = ("closed", "rejected", "deleted")
    root_attributes = {"version": "3.1"}
    native_key = ("DecSign", "ClientSeqNo")
    native_enterprise = (("DecHead", "TradeCoScc"), ("DecHead", "AgentCodeScc"), ("DecHead", "OwnerCodeScc"),
                         ("DecHead", "CopCodeScc"), ("DecSign", "CopCode"), ("DecHead", "TradeCode"),
                         ("DecHead", "AgentCode"))
    waiting_states = ("imported", "customs-accepted", "reviewed", "re-review", "returned", "concluded",
                      "duties-payable", "guarantee", "suspended", "inspection", "released")

    submit_modes = SUBMIT

    def enrich(self, mapped: Mapped, ctx: Context) -> list[FieldError]:
        """DecSign: the operator and card where the document has none, OperType from the document
        config's submit mode (declare: C) unless the document says; DecHead: the typist (录入员)
        is the operator, unless the document names one."""
        errors = ctx.card_errors(mapped, "DecSign")
        sign = ctx.fill_sign(mapped, "DecSign")
        sign.setdefault("OperType", Value(SUBMIT[ctx.submit or "declare"], PROFILE))
        if ctx.enterprise.customs_code:
            sign.setdefault("CopCode", Value(ctx.enterprise.customs_code, PROFILE))
        head = mapped.sections.get("DecHead")
        if head:
            head[0].setdefault("TypistNo", Value(ctx.media_no, PROFILE))
            head[0].setdefault("InputerName", Value(ctx.operator.name, PROFILE))
        return errors

    def describe(self, document: bytes | None) -> str:
        found = _OPER_TYPE.search(document or b"")
        if not found:
            return ""
        code = found.group(1).decode()
        return f"OperType {code} {OPER_TYPES.get(code, '(unknown)')}"

    def rules(self, mapped: Mapped) -> list[FieldError]:
        errors = []
        head = mapped.first("DecHead")
        gross, net = head.get("GrossWet"), head.get("NetWt")
        if gross and net and Decimal(net.text) > Decimal(gross.text):
            errors.append(FieldError.at(net.origin, "DecHead/NetWt", "net<=gross",
                                        f"net weight {net.text} exceeds gross weight {gross.text}", net.text))
        seen = {}
        for i, item in enumerate(mapped.sections.get("DecList", []), start=1):
            gno = item.get("GNo")
            if gno:
                if gno.text in seen:
                    errors.append(FieldError.at(gno.origin, "DecList/GNo", "unique",
                                                f"goods line {gno.text} appears twice (also row {seen[gno.text]})",
                                                gno.text))
                elif int(gno.text) != i:
                    errors.append(FieldError.at(gno.origin, "DecList/GNo", "sequence",
                                                f"goods lines must be numbered 1, 2, 3 … in order; expected {i}",
                                                gno.text))
                seen.setdefault(gno.text, gno.origin.row)
            wrong = checks.price_times_qty("DecList/DeclTotal", item.get("DeclPrice"), item.get("GQty"),
                                           item.get("DeclTotal"))
            if wrong:
                errors.append(wrong)
            for qty_name, unit_name, what in (("FirstQty", "FirstUnit", "first"), ("SecondQty", "SecondUnit", "second")):
                qty, unit = item.get(qty_name), item.get(unit_name)
                if bool(qty) != bool(unit):
                    present = qty or unit
                    errors.append(FieldError.at(present.origin, f"DecList/{qty_name}", "pair",
                                                f"{what} quantity and {what} unit go together: give both or neither"))
        errors.extend(self._valuation(head))
        return errors

    @staticmethod
    def _valuation(head) -> list[FieldError]:
        """The costs the 成交方式 requires (an import on FOB needs freight and insurance …), and
        each declared cost complete: a mark, its rate or amount, and a currency unless a rate."""
        errors = []
        ie, terms = head.get("IEFlag"), head.get("TransMode")
        if ie and terms:
            for cost in VALUATION.get((ie.text, terms.text), ()):
                mark, rate, _, label = COSTS[cost]
                if not head.get(mark) or not head.get(rate):
                    direction = "an import" if ie.text == "I" else "an export"
                    errors.append(FieldError.at(
                        terms.origin, f"DecHead/{rate}", "valuation",
                        f"{direction} on {TERMS[terms.text]} terms (TransMode {terms.text}) must declare its "
                        f"{cost} ({label}): {mark} and {rate}", terms.text))
        for cost, (mark, rate, curr, label) in COSTS.items():
            m, r, c = head.get(mark), head.get(rate), head.get(curr)
            if (m or r or c) and not (m and r):
                present = m or r or c
                errors.append(FieldError.at(present.origin, f"DecHead/{rate if m else mark}", "pair",
                                            f"{cost} ({label}) needs both {mark} and {rate}"))
            elif m and m.text in ("2", "3") and not c:
                errors.append(FieldError.at(m.origin, f"DecHead/{curr}", "pair",
                                            f"{cost} ({label}) given as {'a unit price' if m.text == '2' else 'a total'} "
                                            f"(mark {m.text}) needs its currency {curr}", m.text))
        return errors

    def before_sign(self, root, signer: Signer, info: CardInfo, sign_date: str) -> None:
        """DecSign gets the card's certificate number, the sign date, and Sign: the card's
        signature (base64) over the canonical DecMessage without its Sign element."""
        sign = root.find(self._q("DecSign"))
        if sign is None:
            return
        for name, value in (("SignDate", sign_date), ("Certificate", info.cert_no)):
            elem = sign.find(self._q(name))
            if elem is None:
                elem = self._insert(sign, name)
            elem.text = value
        old = sign.find(self._q("Sign"))
        if old is not None:
            sign.remove(old)
        value = signer.sign(c14n(root))
        self._insert(sign, "Sign").text = base64.b64encode(value).decode()

    def verify_document(self, root, certificate: bytes, algorithm: str) -> str | None:
        sign = root.find(f"{self._q('DecSign')}/{self._q('Sign')}")
        if sign is None or not (sign.text or "").strip():
            return "DecSign/Sign is missing"
        value = base64.b64decode(sign.text)
        parent = sign.getparent()
        index = list(parent).index(sign)
        parent.remove(sign)
        try:
            crypto.verify(algorithm, certificate, c14n(root), value)
        except crypto.InvalidSignature:
            return "DecSign/Sign does not match the declaration"
        finally:
            parent.insert(index, sign)
        return None

    def _insert(self, parent, name: str):
        from lxml import etree

        order = self.order["DecSign"]
        elem = etree.Element(self._q(name))
        pos = order.index(name)
        for i, child in enumerate(parent):
            if order.index(etree.QName(child).localname) > pos:
                parent.insert(i, elem)
                return elem
        parent.append(elem)
        return elem

    def on_receipt(self, kind: str, fields: dict, current_state: str) -> ReceiptOutcome:
        if kind == "dxp-rep":
            code = fields.get("ResponseCode", "")
            if code in ("0", "00", "0000"):
                return self._forward(current_state, states.ACKNOWLEDGED, "platform accepted (DxpRep 0)")
            return ReceiptOutcome(states.REJECTED, f"platform rejected: DxpRep {code} {fields.get('ResponseInfo', '')}"
                                  .strip(), final=True)
        if kind == "import-response":
            keys = {k: fields[k] for k in ("SeqNo", "TrnPreId") if fields.get(k)}
            if fields.get("ResponseCode") == "0":
                out = self._forward(current_state, "imported", f"customs import ok, SeqNo {fields.get('SeqNo', '')}")
                return ReceiptOutcome(out.state, out.summary, keys)
            return ReceiptOutcome(states.REJECTED, f"customs import failed: {fields.get('ErrorMessage', '')}".strip(),
                                  keys, final=True)
        if kind == "dec-result":
            channel = fields.get("CHANNEL", "")
            keys = {}
            if fields.get("ENTRY_ID"):
                keys["EntryId"] = fields["ENTRY_ID"]
            if fields.get("CUS_CIQ_NO"):
                keys["SeqNo"] = fields["CUS_CIQ_NO"]
            if channel not in CHANNELS:
                return ReceiptOutcome(None, f"customs status {channel!r} (unknown channel) {fields.get('NOTE', '')}",
                                      keys)
            state, _, label = CHANNELS[channel]
            note = fields.get("NOTE", "")
            summary = f"customs {channel} {label}" + (f": {note}" if note else "")
            out = self._forward(current_state, state, summary)
            return ReceiptOutcome(out.state, summary, keys, final=state in self.final_states)
        if kind == "inspection-order":  # 海关查验指令 for this declaration (found by its 报关单号)
            keys = {k: fields[k] for k in ("InspectionNo", "EntryId") if fields.get(k)}
            summary = (f"customs inspection order {fields.get('InspectionNo', '?')} at customs "
                       f"{fields.get('InspCustoms', '?')}, unloading place {fields.get('UnloadPlaceCode', '?')}")
            if fields.get("Note"):
                summary += f": {fields['Note']}"
            out = self._forward(current_state, "inspection", summary)
            return ReceiptOutcome(out.state, out.summary, keys)
        return ReceiptOutcome(None, f"receipt kind {kind} not expected for a declaration")

    @staticmethod
    def _forward(current: str, new: str, summary: str) -> ReceiptOutcome:
        if current in (states.REJECTED, "deleted", "closed"):
            return ReceiptOutcome(None, summary + f" (after {current}; state kept)")
        if new in (states.REJECTED, "deleted") or RANK.get(new, 0) >= RANK.get(current, 0):
            return ReceiptOutcome(new if new != current else None, summary)
        return ReceiptOutcome(None, summary + f" (older than current state {current}; state kept)")
